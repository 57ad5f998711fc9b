#pragma once
// The daemon's side of the reuseport selector: the selector (kernel/reuseport.h)
// and the registry (reuseport/registry.h) together, the ways sockets come in
// (adopted from a running process, registered by a cooperating one), the
// periodic reconcile, and the view `mixlbctl sockets` prints.
//
// Adopting takes a process's listening sockets with pidfd_getfd(2), which
// needs the right to ptrace the process (CAP_SYS_PTRACE, or the same user
// under a ptrace scope that allows it); the copies are closed as soon as the
// sockets are in the sockarray, so the process stays their only owner.
//
// The registry is saved (settings.state_path) after every change, and a new
// sidecar loads it and checks it against the pinned sockarray: the app's
// generations survive a sidecar restart or crash, and the selector keeps
// placing flows meanwhile (it reads only the pinned maps).
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kernel/reuseport.h"
#include "metrics/collect.h"
#include "reuseport/registry.h"

namespace mixlb {

struct SocketServiceSettings {
  std::string pin_dir;
  // Where the registry is kept between sidecars ("": nowhere): a restarted
  // sidecar takes over the generations its predecessor registered.
  std::string state_path;
  WorkerPolicy policy = WorkerPolicy::kHash;
  std::uint64_t udp_idle_ns = 30'000'000'000ull;
  std::uint32_t udp_flows = MIXLB_RP_DEFAULT_FLOWS;
  std::chrono::milliseconds reconcile_every{500};
  std::function<bool(const ServiceKey&)> managed;
};

// One socket a process held that adopt did not take, and why.
struct SkippedSocket {
  int fd = 0;
  std::string why;
};

class SocketService {
 public:
  // Loads (or adopts, from pin_dir) the selector and starts reconciling.
  static DpResult<std::unique_ptr<SocketService>> start(boost::asio::io_context& io, SocketServiceSettings settings);
  ~SocketService();

  // Registers sockets the caller holds (a cooperating app's, or adopted).
  std::expected<std::vector<Registered>, std::string> register_sockets(const RegisterRequest& request);
  // Takes `pid`'s listening sockets (TCP listening, UDP bound, SO_REUSEPORT,
  // on a managed port) as a generation labelled "pid:<pid>".
  struct Adopted {
    std::vector<Registered> registered;
    std::vector<SkippedSocket> skipped;
  };
  std::expected<Adopted, std::string> adopt(std::int32_t pid, bool ready);

  // Returns how long the switch took (the service's map write), in ns.
  std::expected<std::uint64_t, std::string> switch_to(std::string_view service, std::uint32_t generation);
  std::expected<void, std::string> drain(std::string_view service, std::uint32_t generation);

  // Services, generations, workers with their kernel state and counters,
  // as `mixlbctl sockets --json` prints them.
  nlohmann::json view() const;

  void reconcile();
  // Every generation with its counters, for /metrics.
  metrics::SocketsFigures figures() const;
  // Removes the selector's pins (a leave). Attached groups keep the program
  // until their sockets close.
  void unpin();

 private:
  SocketService(boost::asio::io_context& io, SocketServiceSettings settings)
      : settings_(std::move(settings)), timer_(io) {}
  void arm();
  void save() const;
  void load_state();

  SocketServiceSettings settings_;
  std::unique_ptr<ReuseportSelector> selector_;
  std::unique_ptr<SocketRegistry> registry_;
  boost::asio::steady_timer timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mixlb
