// A user-space network emulator for bench/tp_netns.sh, for kernels without sch_netem: N TUN devices
// (one per simulated host, moved into its network namespace by the script), and every IPv4 packet
// a host sends is delivered to the destination host's device after the host's egress serialization
// (size / rate, packets of one host queued behind each other) plus a fixed one-way delay.
//
// Usage: lowbit_netem_tun --count N --delay-us D --rate-mbit R [--name lbtun] [--max-seconds S]
// Creates <name>0 .. <name>N-1, prints "ready" on stdout, then forwards until SIGTERM/SIGINT or S
// seconds (a bound, so a forgotten emulator ends). Host i is 10.x.y.(i + 1): the destination is the
// last byte of the IPv4 destination address minus one. On exit it prints how late deliveries were
// against their due time (the emulator's own error, which a loaded machine makes larger).
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <queue>
#include <string>
#include <vector>

namespace {

std::atomic<bool> g_stop{false};
extern "C" void OnSignal(int) { g_stop = true; }

int64_t NowNs() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
}

int OpenTun(const std::string& name) {
  const int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  ifreq ifr{};
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name.c_str());
  if (::ioctl(fd, TUNSETIFF, &ifr) < 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

struct Packet {
  int64_t due_ns;
  uint64_t seq;  // FIFO among equal due times
  int dest;
  std::vector<uint8_t> bytes;
  bool operator>(const Packet& o) const { return due_ns != o.due_ns ? due_ns > o.due_ns : seq > o.seq; }
};

}  // namespace

int main(int argc, char** argv) {
  int count = 2;
  double delay_us = 0, rate_mbit = 0, max_seconds = 3600;
  std::string name = "lbtun";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--count") count = std::atoi(argv[i + 1]);
    else if (k == "--delay-us") delay_us = std::atof(argv[i + 1]);
    else if (k == "--rate-mbit") rate_mbit = std::atof(argv[i + 1]);
    else if (k == "--name") name = argv[i + 1];
    else if (k == "--max-seconds") max_seconds = std::atof(argv[i + 1]);
    else {
      std::fprintf(stderr, "lowbit_netem_tun: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (count < 1 || count > 64) {
    std::fprintf(stderr, "lowbit_netem_tun: --count must be 1..64\n");
    return 2;
  }
  ::prctl(PR_SET_TIMERSLACK, 1UL);  // wake-ups to the microsecond, not the default 50 us
  std::vector<pollfd> fds(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    fds[i].fd = OpenTun(name + std::to_string(i));
    fds[i].events = POLLIN;
    if (fds[i].fd < 0) {
      std::fprintf(stderr, "lowbit_netem_tun: cannot create %s%d: %s (needs CAP_NET_ADMIN and /dev/net/tun)\n", name.c_str(), i,
                   std::strerror(errno));
      return 1;
    }
  }
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  std::printf("ready\n");
  std::fflush(stdout);
  const int64_t delay_ns = static_cast<int64_t>(delay_us * 1e3), end_ns = NowNs() + static_cast<int64_t>(max_seconds * 1e9);
  const double ns_per_byte = rate_mbit > 0 ? 8e3 / rate_mbit : 0;
  std::vector<int64_t> egress_free(static_cast<size_t>(count), 0);
  std::priority_queue<Packet, std::vector<Packet>, std::greater<>> queue;
  size_t queued_bytes = 0;
  constexpr size_t kMaxQueued = size_t{64} << 20;  // drop beyond, as a full interface queue would
  uint64_t seq = 0, delivered = 0, dropped = 0;
  std::vector<int64_t> late_ns;
  std::vector<uint8_t> buf(65536);
  while (!g_stop && NowNs() < end_ns) {
    // Deliver what is due.
    for (int64_t now = NowNs(); !queue.empty() && queue.top().due_ns <= now; now = NowNs()) {
      const Packet& p = queue.top();
      if (::write(fds[p.dest].fd, p.bytes.data(), p.bytes.size()) < 0) ++dropped;
      else ++delivered;
      if (late_ns.size() < 1'000'000) late_ns.push_back(now - p.due_ns);
      queued_bytes -= p.bytes.size();
      queue.pop();
    }
    int64_t wait_ns = 100'000'000;
    if (!queue.empty()) wait_ns = std::max<int64_t>(0, queue.top().due_ns - NowNs());
    const timespec ts{static_cast<time_t>(wait_ns / 1'000'000'000), static_cast<long>(wait_ns % 1'000'000'000)};
    if (::ppoll(fds.data(), fds.size(), &ts, nullptr) <= 0) continue;
    for (int src = 0; src < count; ++src) {
      if (!(fds[src].revents & POLLIN)) continue;
      for (;;) {
        const ssize_t n = ::read(fds[src].fd, buf.data(), buf.size());
        if (n <= 0) break;
        if (n < 20 || (buf[0] >> 4) != 4) continue;  // IPv4 only
        const int dest = static_cast<int>(buf[19]) - 1;
        if (dest < 0 || dest >= count || dest == src || queued_bytes + static_cast<size_t>(n) > kMaxQueued) {
          ++dropped;
          continue;
        }
        const int64_t now = NowNs();
        const int64_t depart = std::max(now, egress_free[src]) + static_cast<int64_t>(static_cast<double>(n) * ns_per_byte);
        egress_free[src] = depart;
        queue.push(Packet{depart + delay_ns, seq++, dest, std::vector<uint8_t>(buf.begin(), buf.begin() + n)});
        queued_bytes += static_cast<size_t>(n);
      }
    }
  }
  std::sort(late_ns.begin(), late_ns.end());
  auto pct = [&](double q) { return late_ns.empty() ? 0.0 : static_cast<double>(late_ns[static_cast<size_t>(q * (late_ns.size() - 1))]) / 1e3; };
  std::fprintf(stderr, "lowbit_netem_tun: %llu packets delivered, %llu dropped; delivered late by median %.1f us, p90 %.1f us, p99 %.1f us\n",
               static_cast<unsigned long long>(delivered), static_cast<unsigned long long>(dropped), pct(0.5), pct(0.9), pct(0.99));
  return 0;
}
