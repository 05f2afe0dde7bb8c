// MpiComm: one rank per process over MPI (Open MPI from Debian), behind the Comm interface.
//
// Built when CMake finds MPI (the configure summary says so); without it CreateMpiComm returns an
// error that says how to get it, and everything else still builds and runs on one rank. This
// header does not include <mpi.h>, so the rest of lowbit compiles either way.
//
// Contract:
// - lowbit is started under MPI when the launcher's variables are set (Open MPI's mpirun:
//   OMPI_COMM_WORLD_SIZE; PMIx launchers: PMIX_RANK; MPICH and Slurm: PMI_SIZE). No flag.
// - One process = one rank; the thread pool works inside each rank. Only the calling thread uses
//   MPI (MPI_THREAD_FUNNELED).
// - Every blocking operation runs under a watchdog: a rank that waits longer than `timeout_s` in
//   one operation (another rank is gone or stuck) prints one line saying so and exits with code 1;
//   mpirun then stops the other ranks. A rank that dies is seen by mpirun, which stops the job.
// - The all-reduce is MPI_Allreduce in place (measured against persistent requests and an
//   all-gather-and-sum in docs/PERFORMANCE.md, "Tensor parallelism").
#pragma once

#include <memory>

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
};

// Initializes MPI (once per process) and returns MPI_COMM_WORLD as a Comm. MPI is finalized when
// the returned object is destroyed.
Expected<std::unique_ptr<Comm>> CreateMpiComm(const MpiOptions& o = {});

// Ends every rank of the job now (MPI_Abort) with `code`; for errors found after the ranks have
// parted ways. No-op without MPI or before CreateMpiComm.
void MpiAbortAll(int code);

}  // namespace lowbit
