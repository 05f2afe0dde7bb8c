// MpiComm: one rank per process over MPI (Open MPI from Debian), behind the Comm interface.
//
// Built when CMake finds MPI (the configure summary says so); without it CreateMpiComm returns an
// error that says how to get it, and everything else still builds and runs on one rank. This
// header does not include <mpi.h>, so the rest of lowbit compiles either way.
//
// Contract:
// - lowbit is started under MPI when the launcher's variables are set (Open MPI's mpirun:
//   OMPI_COMM_WORLD_SIZE; PMIx launchers: PMIX_RANK; MPICH and Slurm: PMI_SIZE). No flag.
// - One process = one rank; the thread pool works inside each rank. One thread at a time uses MPI
//   (MPI_THREAD_SERIALIZED): the command's thread, or the server's scheduler thread while it runs.
// - Every blocking operation runs under a watchdog when the caller gives one (MpiOptions::
//   on_timeout): a rank that waits longer than `timeout_s` in one operation (another rank is gone or
//   stuck) has on_timeout called, from the watchdog's thread, with a line saying so; the tools print
//   it and exit, and mpirun then stops the other ranks. A rank that dies is seen by mpirun, which
//   stops the job.
// - The all-reduce is MPI_Allreduce in place (measured against persistent requests and an
//   all-gather-and-sum in docs/PERFORMANCE.md, "Tensor parallelism"). Before MPI_Init the
//   shared-memory transport's eager limit is raised to 64 KiB (OMPI_MCA_btl_vader_eager_limit and
//   _max_send_size, unless set already; LOWBIT_MPI_DEFAULTS=1 keeps Open MPI's defaults), so that a
//   decode step's vectors are sent without a rendezvous.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "lowbit/base/status.h"
#include "lowbit/parallel/comm.h"

namespace lowbit {

// Whether lowbit was built with MPI.
bool MpiBuilt();
// Whether this process was started by an MPI launcher (see the contract above).
bool StartedByMpiLauncher();

struct MpiOptions {
  // Seconds one operation may wait for the other ranks (LOWBIT_TP_TIMEOUT overrides it).
  double timeout_s = 600;
  // Called (once, from another thread) when an operation waited longer; it should end the process.
  // Empty: no watchdog.
  std::function<void(const std::string& line)> on_timeout;
};

// Initializes MPI (once per process) and returns MPI_COMM_WORLD as a Comm. MPI is finalized when
// the returned object is destroyed.
Expected<std::unique_ptr<Comm>> CreateMpiComm(const MpiOptions& o = {});

}  // namespace lowbit
