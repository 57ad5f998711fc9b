// The libuv transport: sockets, the one timer and the request queue around
// a Swim core, all on one thread.
//
// Every input (a datagram, a stream message, a timer, a request from
// another thread) is handed to the core and followed by drain(), which
// sends what the core queued, starts the streams it asked for, delivers
// its events and re-arms the timer to its next deadline. Connections are
// kept in a map by id, and every callback that can outlive one (libuv's
// request callbacks, a timer firing) captures the id and looks it up, so a
// connection closed meanwhile is simply not found.
#include "transport.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <numeric>
#include <random>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>

#include "error.h"
#include "sockaddr.h"
#include "stream_frame.h"
#include "uv_handles.h"

namespace mixlb::gossip {
namespace {

constexpr int kListenBacklog = 128;
// With port 0, how often to try another port when the one TCP got is taken
// for UDP.
constexpr int kPortAttempts = 16;

// Kinds of trouble logged at most once a second each; the counters in
// TransportStats see every occurrence.
enum class Trouble : std::size_t {
  kUdpSend,
  kUdpReceive,
  kDrop,
  kAccept,
  kStreamIn,
  kResolve,
  kCount
};

class Throttle {
 public:
  // Whether to log now; `suppressed` says how many were not logged before.
  bool allow(TimePoint now, std::uint64_t& suppressed) {
    if (logged_ && now - last_ < std::chrono::seconds(1)) {
      ++suppressed_;
      return false;
    }
    logged_ = true;
    last_ = now;
    suppressed = std::exchange(suppressed_, 0);
    return true;
  }

 private:
  bool logged_ = false;
  TimePoint last_{};
  std::uint64_t suppressed_ = 0;
};

std::uint64_t total_drops(const Stats& stats) {
  return std::accumulate(stats.drops.begin(), stats.drops.end(), std::uint64_t{0});
}

std::chrono::milliseconds ceil_ms(Duration d) {
  if (d <= Duration::zero()) return std::chrono::milliseconds(0);
  return std::chrono::ceil<std::chrono::milliseconds>(d);
}

std::uint64_t draw_seed() {
  std::random_device device;
  return (std::uint64_t{device()} << 32) ^ device();
}

// Runs a callback of the caller's (the event handler, a snapshot's `done`)
// on the transport thread: what it throws is logged, as it must not unwind
// through libuv's frames nor skip the requests after it.
template <typename F>
void guarded(const char* what, F&& callback) {
  try {
    std::forward<F>(callback)();
  } catch (const std::exception& e) {
    spdlog::error("gossip: {} threw: {}", what, e.what());
  } catch (...) {
    spdlog::error("gossip: {} threw a non-standard exception", what);
  }
}

// The answer to one asynchronous request (snapshot_async, key_request_async):
// `done` runs exactly once, through answer(), or from the destructor with
// kLeft when the last reference is dropped unanswered (the request was
// dropped unrun, or the loop closed before the core reported), so no path
// can lose the callback.
template <typename Result>
class Reply {
 public:
  using Done = std::function<void(Result)>;

  Reply(const char* what, Done done) : what_(what), done_(std::move(done)) {}
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;
  ~Reply() {
    if (done_) answer(std::unexpected(make_error_code(Errc::kLeft)));
  }

  void answer(Result result) {
    if (!done_) return;
    guarded(what_, [&, done = std::exchange(done_, nullptr)] { done(std::move(result)); });
  }

 private:
  const char* what_;
  Done done_;
};

using SnapshotReply = Reply<Transport::SnapshotResult>;
using KeyReply = Reply<Transport::KeyRequestResult>;

void require(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("gossip transport: ") + what);
}

// What the constructor checks: the core's own validation (with a stand-in
// for a port the transport will pick) and the transport's bounds.
void check(const TransportOptions& options) {
  Config config = options.config;
  if (config.address.port == 0) config.address.port = 1;
  validate(config);
  require(!is_unspecified(options.config.address),
          "config.address must be an address other members can reach; bind to 0.0.0.0 or :: "
          "through TransportOptions::bind instead");
  if (options.bind && options.bind->family == Address::Family::kV4) {
    require(options.config.address.family == Address::Family::kV4,
            "an IPv4 bind address cannot serve an advertised IPv6 address");
  }
  require(options.max_stream_message > 0, "max_stream_message must be positive");
  require(options.max_inbound_streams > 0, "max_inbound_streams must be positive");
  require(options.max_outbound_streams > 0, "max_outbound_streams must be positive");
  require(!options.stream_timeout || *options.stream_timeout > Duration::zero(),
          "stream_timeout must be positive");
  require(options.leave_linger >= Duration::zero(), "leave_linger must not be negative");
}

std::vector<Key> keys_of(const std::optional<Keyring>& keyring) {
  if (!keyring) return {};
  return {keyring->keys().begin(), keyring->keys().end()};
}

}  // namespace

struct Transport::Impl {
  struct Connection {
    std::uint64_t id = 0;
    bool outbound = false;
    std::uint64_t request = 0;  // the core's stream id (outbound)
    Address peer;
    uv::Tcp tcp;
    uv::Timer deadline;
    FrameReader reader;
    Bytes pending;         // outbound: the framed request, until connected
    bool replied = false;  // inbound: the reply is being written

    explicit Connection(std::size_t max_message) : reader(max_message) {}
  };

  // Who may post requests (guarded by queue_mutex).
  enum class Gate { kNotStarted, kOpen, kLeaving, kClosed };

  Impl(TransportOptions o, EventHandler handler, KeyringHandler keyring_handler)
      : options(std::move(o)),
        on_event(std::move(handler)),
        on_keyring(std::move(keyring_handler)),
        stream_timeout(options.stream_timeout.value_or(options.config.stream_timeout)),
        address(options.config.address),
        current_keys(keys_of(options.keyring)) {}

  // ---- lifecycle (caller threads)

  std::error_code bind();
  std::error_code start(std::span<const Address> seed_list, std::span<const SeedName> name_list);
  std::error_code stop(StopMode mode);
  std::error_code open_loop();
  std::error_code open_sockets(Address bind_address);
  std::error_code release_handles();
  void run();

  // ---- requests

  std::error_code post(std::function<void()> request);
  std::vector<std::function<void()>> close_gate();
  void on_async();
  void begin_stop(StopMode mode);
  void close_all();
  TransportSnapshot take_snapshot() const;

  // ---- the loop's work

  void drain();
  void arm_timer();
  void deliver(Event event);
  void deliver(KeyEvent event);
  void resolve_names(bool first);
  void on_names_resolved(std::vector<SeedLookup> lookups, bool first);
  void send_datagram(const Datagram& datagram);
  void on_datagram(uv::ByteView bytes, const sockaddr* from, bool truncated);
  void on_connection(std::error_code error);
  void on_inbound_read(std::uint64_t id, std::expected<uv::ByteView, std::error_code> chunk);
  void start_stream(StreamRequest request);
  void on_connected(std::uint64_t id, std::error_code error);
  void on_outbound_read(std::uint64_t id, std::expected<uv::ByteView, std::error_code> chunk);
  void fail_connection(std::uint64_t id, std::error_code error);
  void close_connection(std::uint64_t id);
  Connection* find(std::uint64_t id);
  std::optional<Bytes> feed_message(std::uint64_t id, Connection& c,
                                    const std::expected<uv::ByteView, std::error_code>& chunk);
  std::expected<std::unique_ptr<Connection>, std::error_code> new_connection(bool outbound);
  void trouble(Trouble kind, std::string message, bool is_error = true);

  // Immutable once started.
  TransportOptions options;
  EventHandler on_event;
  KeyringHandler on_keyring;
  Duration stream_timeout;

  // Lifecycle, for the threads calling bind(), start() and stop().
  enum class Phase { kNew, kBound, kRunning, kStopped };
  std::mutex lifecycle_mutex;
  Phase phase = Phase::kNew;
  std::error_code stop_result;
  std::thread thread;
  std::atomic<std::thread::id> loop_thread{};
  std::atomic<bool> is_running{false};
  int loop_close_status = 0;  // written by the loop thread before it ends

  // The requests from other threads.
  mutable std::mutex queue_mutex;
  std::vector<std::function<void()>> queue;
  Gate gate = Gate::kNotStarted;
  Address address;  // final once bound; guarded by queue_mutex for readers

  // The keys as the transport thread last saw them, for keys().
  mutable std::mutex keys_mutex;
  std::vector<Key> current_keys;

  // The loop thread's (and bind()'s and start()'s, before the thread exists).
  std::optional<uv::Loop> loop;
  uv::Async async;
  uv::Timer timer;
  uv::Timer linger;
  uv::Udp udp;
  uv::Tcp listener;
  int socket_family = AF_INET;
  std::optional<Swim> core;
  std::vector<Address> seeds;
  std::vector<SeedName> names;
  // Each name's addresses as last resolved (a name that fails to resolve
  // keeps its previous ones: a resolver outage does not forget the seeds),
  // and all of them, sorted, to tell a change.
  std::vector<std::vector<Address>> name_addresses;
  std::vector<Address> resolved;
  // One resolution of every name, run by a libuv worker: the lookups block,
  // the loop must not. The loop owns it from uv_queue_work() to its
  // completion callback, which always runs (with UV_ECANCELED when
  // cancelled). At most one at a time: `resolution`.
  struct Resolution {
    uv_work_t work{};
    Impl* impl = nullptr;
    std::vector<SeedName> names;
    Address::Family family = Address::Family::kV4;
    SeedLookupFn lookup;
    std::vector<SeedLookup> lookups;
    bool first = false;
  };
  Resolution* resolution = nullptr;
  std::unordered_map<std::uint64_t, std::unique_ptr<Connection>> connections;
  // key_request_async()'s replies, by the core's request id, until the
  // core reports the result.
  std::unordered_map<std::uint64_t, std::shared_ptr<KeyReply>> key_replies;
  std::uint64_t next_connection = 1;
  std::size_t inbound = 0;
  std::size_t outbound = 0;
  TransportStats stats;
  std::array<Throttle, static_cast<std::size_t>(Trouble::kCount)> throttles;
  bool draining = false;
  bool closing = false;
};

// ------------------------------------------------------------- lifecycle

std::error_code Transport::Impl::bind() {
  std::lock_guard lifecycle(lifecycle_mutex);
  if (phase == Phase::kBound || phase == Phase::kRunning) {
    return std::make_error_code(std::errc::already_connected);
  }
  if (phase == Phase::kStopped) return Errc::kLeft;
  return open_loop();
}

// The loop, the sockets, the wake-up and the timers: what bind() does, and
// what start() does first when bind() was not called. On failure nothing is
// left open.
std::error_code Transport::Impl::open_loop() {
  auto created = uv::Loop::create();
  if (!created) return created.error();
  loop.emplace(std::move(*created));

  const Address bind_address = options.bind.value_or(options.config.address);
  socket_family = bind_address.family == Address::Family::kV4 ? AF_INET : AF_INET6;
  if (auto error = open_sockets(bind_address)) {
    if (auto busy = release_handles()) {
      spdlog::error("gossip: libuv loop still busy after a failed bind: {}", busy.message());
    }
    return error;
  }
  phase = Phase::kBound;
  return {};
}

std::error_code Transport::Impl::start(std::span<const Address> seed_list,
                                       std::span<const SeedName> name_list) {
  // Requests dropped by a failed start; declared first so they are
  // destroyed (and a snapshot_async() among them answered) after the
  // lifecycle lock is released, in case the answer calls start or stop.
  std::vector<std::function<void()>> dropped;
  std::lock_guard lifecycle(lifecycle_mutex);
  if (phase == Phase::kRunning) return std::make_error_code(std::errc::already_connected);
  if (phase == Phase::kStopped) return Errc::kLeft;
  if (phase == Phase::kNew) {
    if (auto error = open_loop()) return error;
  }
  // From here a failure releases the sockets, bind()'s too, so that a
  // retry starts from nothing.
  auto fail = [this](std::error_code error, Phase after) {
    if (auto busy = release_handles()) {
      spdlog::error("gossip: libuv loop still busy after a failed start: {}", busy.message());
    }
    phase = after;
    return error;
  };

  if (auto error =
          udp.start_receive([this](uv::ByteView bytes, const sockaddr* from,
                                   bool truncated) { on_datagram(bytes, from, truncated); },
                            [this](std::error_code error) {
                              ++stats.udp_receive_errors;
                              trouble(Trouble::kUdpReceive, "udp receive: " + error.message());
                            })) {
    return fail(error, Phase::kNew);
  }
  udp.set_send_error_handler([this](std::error_code error) {
    ++stats.udp_send_errors;
    trouble(Trouble::kUdpSend, "udp send (queued): " + error.message());
  });

  // Last, as it takes the keyring: nothing after it can fail (the
  // constructor has checked the configuration the core checks again).
  Config config = options.config;
  config.address = address;
  seeds.assign(seed_list.begin(), seed_list.end());
  names.assign(name_list.begin(), name_list.end());
  if (!options.lookup) options.lookup = lookup_seed;
  core.emplace(std::move(config), std::move(options.keyring),
               options.seed != 0 ? options.seed : draw_seed(), Clock::now());

  {
    std::lock_guard lock(queue_mutex);
    gate = Gate::kOpen;
  }
  try {
    thread = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    // The keyring went into the core: this transport cannot start again.
    // Requests queued meanwhile are dropped (snapshot_async answers kLeft).
    dropped = close_gate();
    core.reset();
    return fail(e.code(), Phase::kStopped);
  }
  is_running = true;
  phase = Phase::kRunning;
  return {};
}

// Binds TCP first: with port 0 the kernel picks a port TCP can have, and
// UDP then takes the same number (retried when UDP finds it taken).
std::error_code Transport::Impl::open_sockets(Address bind_address) {
  const bool pick = bind_address.port == 0;
  std::error_code last;
  for (int attempt = 0; attempt < (pick ? kPortAttempts : 1); ++attempt) {
    auto tcp = uv::Tcp::create(loop->get());
    if (!tcp) return tcp.error();
    const sockaddr_storage tcp_at = to_sockaddr(bind_address);
    if (auto error = tcp->bind(reinterpret_cast<const sockaddr*>(&tcp_at))) return error;
    auto local = tcp->local_address();
    if (!local) return local.error();
    const auto bound = from_sockaddr(reinterpret_cast<const sockaddr*>(&*local));
    if (!bound) return std::make_error_code(std::errc::address_family_not_supported);

    auto socket = uv::Udp::create(loop->get());
    if (!socket) return socket.error();
    Address udp_address = bind_address;
    udp_address.port = bound->port;
    const sockaddr_storage udp_at = to_sockaddr(udp_address);
    // uv_tcp_bind reports some errors (EADDRINUSE among them) only at listen().
    if (auto error = socket->bind(reinterpret_cast<const sockaddr*>(&udp_at))) {
      last = error;
      if (pick && error == std::errc::address_in_use) {
        tcp->close();
        socket->close();
        loop->run(UV_RUN_NOWAIT);
        continue;
      }
      return error;
    }
    if (auto error = tcp->listen(kListenBacklog, [this](std::error_code e) { on_connection(e); })) {
      return error;
    }
    listener = std::move(*tcp);
    udp = std::move(*socket);
    {
      std::lock_guard lock(queue_mutex);
      if (address.port == 0) address.port = bound->port;
    }

    auto wake = uv::Async::create(loop->get(), [this] { on_async(); });
    if (!wake) return wake.error();
    async = std::move(*wake);
    auto tick = uv::Timer::create(loop->get(), [this] {
      ++stats.wakeups;
      core->tick(Clock::now());
      drain();
    });
    if (!tick) return tick.error();
    timer = std::move(*tick);
    auto end = uv::Timer::create(loop->get(), [this] { close_all(); });
    if (!end) return end.error();
    linger = std::move(*end);
    return {};
  }
  return last;
}

// Closes what bind() opened, and the loop with it, without the thread: for
// a failed start, and for stop() on a transport that was only bound. The
// result is the loop's close, as stop() reports it.
std::error_code Transport::Impl::release_handles() {
  async.close();
  timer.close();
  linger.close();
  udp.close();
  listener.close();
  loop->run(UV_RUN_NOWAIT);  // the close callbacks, which free the handles
  const std::error_code result = uv::error(loop->close());
  loop.reset();
  return result;
}

void Transport::Impl::run() {
  loop_thread = std::this_thread::get_id();
  core->join(seeds, Clock::now());
  if (!names.empty()) resolve_names(true);
  drain();
  loop->run(UV_RUN_DEFAULT);
  loop_close_status = loop->close();
}

std::error_code Transport::Impl::stop(StopMode mode) {
  if (std::this_thread::get_id() == loop_thread.load()) {
    return std::make_error_code(std::errc::resource_deadlock_would_occur);
  }
  std::lock_guard lifecycle(lifecycle_mutex);
  if (phase == Phase::kStopped) return stop_result;
  if (phase == Phase::kNew || phase == Phase::kBound) {
    // No thread, no core and so no requests: only the sockets, if bound.
    close_gate();
    if (loop) stop_result = release_handles();
    phase = Phase::kStopped;
    return stop_result;
  }
  {
    std::lock_guard lock(queue_mutex);
    if (gate == Gate::kOpen) {
      queue.emplace_back([this, mode] { begin_stop(mode); });
      gate = Gate::kLeaving;
      if (auto error = async.send()) {
        spdlog::error("gossip: cannot wake the transport thread to stop: {}", error.message());
      }
    }
  }
  thread.join();
  core.reset();
  stop_result = uv::error(loop_close_status);
  loop.reset();
  phase = Phase::kStopped;
  is_running = false;
  return stop_result;
}

// ------------------------------------------------------------- requests

// On error the request is not queued (and is destroyed by the caller,
// outside the lock).
std::error_code Transport::Impl::post(std::function<void()> request) {
  std::lock_guard lock(queue_mutex);
  switch (gate) {
    case Gate::kNotStarted:
      return std::make_error_code(std::errc::not_connected);
    case Gate::kLeaving:
    case Gate::kClosed:
      return Errc::kLeft;
    case Gate::kOpen:
      break;
  }
  queue.push_back(std::move(request));
  if (auto error = async.send()) {
    request = std::move(queue.back());
    queue.pop_back();
    return error;
  }
  return {};
}

// Refuses every later request and closes the wake-up (under the one mutex,
// so no post() is sending on it meanwhile). Returns the requests still
// queued, for the caller to drop outside the lock: destroying one may run
// a callback (SnapshotReply) that posts again.
std::vector<std::function<void()>> Transport::Impl::close_gate() {
  std::vector<std::function<void()>> dropped;
  std::lock_guard lock(queue_mutex);
  gate = Gate::kClosed;
  async.close();
  dropped.swap(queue);
  return dropped;
}

void Transport::Impl::on_async() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(queue_mutex);
    batch.swap(queue);
  }
  for (auto& request : batch) {
    ++stats.requests;
    request();
  }
}

// Runs after every request queued before stop(). A quiet stop announces
// nothing, but the core keeps running through the linger as before (it
// still probes and answers), so updates it has queued are gossiped on.
void Transport::Impl::begin_stop(StopMode mode) {
  if (mode == StopMode::kLeave) core->leave(Clock::now());
  drain();
  if (options.leave_linger <= Duration::zero()) {
    close_all();
    return;
  }
  if (auto error = linger.start(ceil_ms(options.leave_linger))) {
    spdlog::error("gossip: cannot arm the linger timer ({}); closing at once", error.message());
    close_all();
  }
}

// Closes every handle; uv_run returns once their close callbacks have run.
// Requests still queued are dropped (a snapshot_async() among them answers
// kLeft).
void Transport::Impl::close_all() {
  if (closing) return;
  closing = true;
  close_gate();  // the requests it returns are destroyed here, outside the lock
  timer.close();
  linger.close();
  udp.close();
  listener.close();
  connections.clear();
  inbound = outbound = 0;
  key_replies.clear();  // requests still collecting answers: kLeft
  // A resolution still queued is cancelled; one already running keeps the
  // loop alive until it ends, and its result is then dropped.
  if (resolution != nullptr) uv_cancel(reinterpret_cast<uv_req_t*>(&resolution->work));
}

TransportSnapshot Transport::Impl::take_snapshot() const {
  TransportSnapshot snapshot;
  snapshot.address = address;
  snapshot.self = core->self();
  snapshot.members = core->members();
  snapshot.core = core->stats();
  snapshot.transport = stats;
  snapshot.health_score = core->health_score();
  return snapshot;
}

// ------------------------------------------------------------- the loop

void Transport::Impl::drain() {
  if (draining || !core) return;  // the outer drain() picks up what this call would
  draining = true;
  for (;;) {
    auto datagrams = core->take_datagrams();
    auto requests = core->take_stream_requests();
    auto events = core->take_events();
    auto key_events = core->take_key_events();
    if (datagrams.empty() && requests.empty() && events.empty() && key_events.empty()) break;
    for (const auto& datagram : datagrams) send_datagram(datagram);
    for (auto& request : requests) start_stream(std::move(request));
    for (auto& event : events) deliver(std::move(event));
    for (auto& event : key_events) deliver(std::move(event));
  }
  draining = false;
  if (core->take_resolve_request() && !closing) resolve_names(false);
  arm_timer();
}

// ------------------------------------------------------------- seed names

void Transport::Impl::resolve_names(bool first) {
  if (resolution != nullptr || names.empty()) return;  // this round is skipped
  auto job = std::make_unique<Resolution>();
  job->work.data = job.get();
  job->impl = this;
  job->names = names;
  job->family = address.family;
  job->lookup = options.lookup;
  job->first = first;
  const int status = uv_queue_work(
      loop->get(), &job->work,
      [](uv_work_t* work) {
        auto* r = static_cast<Resolution*>(work->data);
        for (const auto& name : r->names) {
          SeedLookup lookup{.name = name};
          try {
            auto found = r->lookup(name, r->family);
            if (found) {
              lookup.addresses = std::move(*found);
            } else {
              lookup.error = found.error();
            }
          } catch (const std::exception& e) {
            lookup.error = std::make_error_code(std::errc::io_error);
            spdlog::error("gossip: looking up seed {} threw: {}", name.to_string(), e.what());
          }
          r->lookups.push_back(std::move(lookup));
        }
      },
      [](uv_work_t* work, int status) {
        std::unique_ptr<Resolution> r(static_cast<Resolution*>(work->data));
        Impl* impl = r->impl;
        impl->resolution = nullptr;
        if (status != 0 || impl->closing) return;
        impl->on_names_resolved(std::move(r->lookups), r->first);
      });
  if (status != 0) {
    trouble(Trouble::kResolve, "cannot queue the lookup of the seed names: " + uv::error(status).message());
    if (first) on_names_resolved({}, true);  // the join must not wait for it
    return;
  }
  resolution = job.release();
}

void Transport::Impl::on_names_resolved(std::vector<SeedLookup> lookups, bool first) {
  // Failures are the event's to report (the sidecar logs each name).
  name_addresses.resize(names.size());
  std::vector<Address> all;
  for (std::size_t i = 0; i < lookups.size() && i < names.size(); ++i) {
    if (!lookups[i].error) name_addresses[i] = lookups[i].addresses;
    for (const auto& a : name_addresses[i])
      if (std::find(all.begin(), all.end(), a) == all.end()) all.push_back(a);
  }
  SeedsResolved event{.lookups = std::move(lookups), .first = first};
  std::vector<Address> sorted = all;
  std::sort(sorted.begin(), sorted.end());
  event.changed = first || sorted != resolved;
  resolved = std::move(sorted);
  event.joins = core->named_seeds_resolved(all, Clock::now());
  deliver(std::move(event));
  drain();
}

void Transport::Impl::arm_timer() {
  if (closing) return;
  const TimePoint deadline = core->next_deadline();
  if (deadline == TimePoint::max()) {
    timer.stop();
    return;
  }
  // libuv counts from its cached loop time; refresh it so the timer is not
  // early by however long this iteration has run.
  uv_update_time(loop->get());
  if (auto error = timer.start(ceil_ms(deadline - Clock::now()))) {
    spdlog::error("gossip: cannot arm the protocol timer: {}", error.message());
  }
}

void Transport::Impl::deliver(Event event) {
  if (!on_event) return;
  guarded("the event handler", [&] { on_event(std::move(event)); });
}

void Transport::Impl::deliver(KeyEvent event) {
  if (auto* changed = std::get_if<KeyringChanged>(&event)) {
    {
      std::lock_guard lock(keys_mutex);
      current_keys = changed->keys;
    }
    if (on_keyring) guarded("the keyring handler", [&] { on_keyring(std::move(*changed)); });
    return;
  }
  auto& result = std::get<KeyResult>(event);
  auto it = key_replies.find(result.id);
  if (it == key_replies.end()) return;  // started by no one waiting (cannot happen)
  const auto reply = std::move(it->second);
  key_replies.erase(it);
  reply->answer(std::move(result));
}

void Transport::Impl::trouble(Trouble kind, std::string message, bool is_error) {
  if (is_error) stats.last_error = message;
  std::uint64_t suppressed = 0;
  if (!throttles[static_cast<std::size_t>(kind)].allow(Clock::now(), suppressed)) return;
  if (suppressed > 0) {
    spdlog::warn("gossip: {} ({} more like it in the last second)", message, suppressed);
  } else {
    spdlog::warn("gossip: {}", message);
  }
}

void Transport::Impl::send_datagram(const Datagram& datagram) {
  if (closing) return;
  auto to = to_sockaddr_for(datagram.to, socket_family);
  std::error_code error =
      to ? udp.send(reinterpret_cast<const sockaddr*>(&*to), datagram.bytes) : to.error();
  if (error) {
    ++stats.udp_send_errors;
    trouble(Trouble::kUdpSend, "udp send to " + datagram.to.to_string() + ": " + error.message());
    return;
  }
  ++stats.udp_sent;
}

void Transport::Impl::on_datagram(uv::ByteView bytes, const sockaddr* from, bool truncated) {
  ++stats.udp_received;
  const auto sender = from_sockaddr(from);
  if (truncated) {
    ++stats.udp_truncated;
    trouble(Trouble::kUdpReceive,
            "udp datagram from " + (sender ? sender->to_string() : std::string("?")) +
                " longer than " + std::to_string(uv::Udp::kReceiveBuffer) + " bytes: dropped");
    return;
  }
  if (!sender || closing) return;
  const std::uint64_t drops = total_drops(core->stats());
  core->on_datagram(*sender, bytes, Clock::now());
  if (total_drops(core->stats()) != drops) {
    trouble(Trouble::kDrop, "dropped a datagram: " + core->stats().last_drop, false);
  }
  drain();
}

Transport::Impl::Connection* Transport::Impl::find(std::uint64_t id) {
  auto it = connections.find(id);
  return it == connections.end() ? nullptr : it->second.get();
}

std::expected<std::unique_ptr<Transport::Impl::Connection>, std::error_code>
Transport::Impl::new_connection(bool outbound_side) {
  auto connection = std::make_unique<Connection>(options.max_stream_message);
  connection->id = next_connection++;
  connection->outbound = outbound_side;
  auto tcp = uv::Tcp::create(loop->get());
  if (!tcp) return std::unexpected(tcp.error());
  connection->tcp = std::move(*tcp);
  const std::uint64_t id = connection->id;
  auto deadline = uv::Timer::create(
      loop->get(), [this, id] { fail_connection(id, std::make_error_code(std::errc::timed_out)); });
  if (!deadline) return std::unexpected(deadline.error());
  connection->deadline = std::move(*deadline);
  return connection;
}

void Transport::Impl::close_connection(std::uint64_t id) {
  auto it = connections.find(id);
  if (it == connections.end()) return;
  --(it->second->outbound ? outbound : inbound);
  connections.erase(it);  // the wrappers close the socket and the timer
}

void Transport::Impl::fail_connection(std::uint64_t id, std::error_code error) {
  Connection* c = find(id);
  if (c == nullptr) return;
  const Address peer = c->peer;
  if (!c->outbound) {
    ++stats.streams_in_failed;
    close_connection(id);
    trouble(Trouble::kStreamIn, "push-pull from " + peer.to_string() + ": " + error.message());
    return;
  }
  const std::uint64_t request = c->request;
  close_connection(id);
  ++stats.streams_out_failed;
  stats.last_error = "push-pull to " + peer.to_string() + ": " + error.message();
  spdlog::debug("gossip: {}", stats.last_error);
  core->on_stream_failed(request, error, Clock::now());
  drain();
}

// ---- inbound streams

void Transport::Impl::on_connection(std::error_code error) {
  if (error) {
    ++stats.streams_in_failed;
    trouble(Trouble::kAccept, "accept: " + error.message());
    return;
  }
  auto made = new_connection(false);
  if (!made) {
    trouble(Trouble::kAccept, "accept: " + made.error().message());
    return;
  }
  auto connection = std::move(*made);
  if (auto e = listener.accept(connection->tcp)) {
    trouble(Trouble::kAccept, "accept: " + e.message());
    return;
  }
  if (closing) return;
  if (inbound >= options.max_inbound_streams) {
    ++stats.streams_refused;
    trouble(Trouble::kAccept, "push-pull connection refused: " + std::to_string(inbound) +
                                  " streams already open (max_inbound_streams)");
    return;  // the wrapper closes it
  }
  ++stats.streams_accepted;
  if (auto peer = connection->tcp.peer_address()) {
    if (auto a = from_sockaddr(reinterpret_cast<const sockaddr*>(&*peer))) connection->peer = *a;
  }
  const std::uint64_t id = connection->id;
  if (auto e = connection->deadline.start(ceil_ms(stream_timeout))) {
    trouble(Trouble::kAccept, "stream timer: " + e.message());
    return;
  }
  if (auto e = connection->tcp.read_start(
          [this, id](std::expected<uv::ByteView, std::error_code> chunk) {
            on_inbound_read(id, std::move(chunk));
          })) {
    trouble(Trouble::kAccept, "read: " + e.message());
    return;
  }
  connections.emplace(id, std::move(connection));
  ++inbound;
}

// Feeds one read of a stream connection to its frame reader: the whole
// message once it is complete, nullopt while it is not (or after a read or
// framing error, which fails the connection).
std::optional<Bytes> Transport::Impl::feed_message(
    std::uint64_t id, Connection& c, const std::expected<uv::ByteView, std::error_code>& chunk) {
  if (!chunk) {
    fail_connection(id, chunk.error());
    return std::nullopt;
  }
  stats.stream_bytes_in += chunk->size();
  auto done = c.reader.feed(*chunk);
  if (!done) {
    fail_connection(id, done.error());
    return std::nullopt;
  }
  if (!*done) return std::nullopt;
  return c.reader.take();
}

void Transport::Impl::on_inbound_read(std::uint64_t id,
                                      std::expected<uv::ByteView, std::error_code> chunk) {
  Connection* c = find(id);
  if (c == nullptr || c->replied) return;
  auto message = feed_message(id, *c, chunk);
  if (!message) return;
  c->tcp.read_stop();
  const Bytes request = std::move(*message);
  auto reply = core->on_stream(c->peer, request, Clock::now());
  if (!reply) {
    fail_connection(id, reply.error());
    drain();
    return;
  }
  auto framed = frame_message(*reply);
  if (!framed) {
    fail_connection(id, framed.error());
    drain();
    return;
  }
  c->replied = true;
  stats.stream_bytes_out += framed->size();
  if (auto e = c->tcp.write(std::move(*framed), [this, id](std::error_code error) {
        if (error == std::errc::operation_canceled) return;  // closed meanwhile
        if (error) {
          fail_connection(id, error);
          return;
        }
        ++stats.streams_served;
        close_connection(id);
      })) {
    fail_connection(id, e);
  }
  drain();
}

// ---- outbound streams

void Transport::Impl::start_stream(StreamRequest request) {
  if (closing) return;
  const TimePoint now = Clock::now();
  auto refuse = [&](std::error_code error) {
    ++stats.streams_out_failed;
    stats.last_error = "push-pull to " + request.to.to_string() + ": " + error.message();
    spdlog::debug("gossip: {}", stats.last_error);
    core->on_stream_failed(request.id, error, now);  // drain()'s loop delivers the result
  };
  if (outbound >= options.max_outbound_streams) {
    refuse(std::make_error_code(std::errc::resource_unavailable_try_again));
    return;
  }
  auto to = to_sockaddr_for(request.to, socket_family);
  if (!to) {
    refuse(to.error());
    return;
  }
  auto framed = frame_message(request.bytes);
  if (!framed) {
    refuse(framed.error());
    return;
  }
  auto made = new_connection(true);
  if (!made) {
    refuse(made.error());
    return;
  }
  auto connection = std::move(*made);
  connection->request = request.id;
  connection->peer = request.to;
  connection->pending = std::move(*framed);
  const std::uint64_t id = connection->id;
  if (auto e = connection->deadline.start(ceil_ms(stream_timeout))) {
    refuse(e);
    return;
  }
  if (auto e =
          connection->tcp.connect(reinterpret_cast<const sockaddr*>(&*to),
                                  [this, id](std::error_code error) { on_connected(id, error); })) {
    refuse(e);
    return;
  }
  connections.emplace(id, std::move(connection));
  ++outbound;
}

void Transport::Impl::on_connected(std::uint64_t id, std::error_code error) {
  if (error == std::errc::operation_canceled) return;
  Connection* c = find(id);
  if (c == nullptr) return;
  if (error) {
    fail_connection(id, error);
    return;
  }
  stats.stream_bytes_out += c->pending.size();
  if (auto e = c->tcp.write(std::move(c->pending), [this, id](std::error_code written) {
        if (written && written != std::errc::operation_canceled) fail_connection(id, written);
      })) {
    fail_connection(id, e);
    return;
  }
  if (auto e = c->tcp.read_start([this, id](std::expected<uv::ByteView, std::error_code> chunk) {
        on_outbound_read(id, std::move(chunk));
      })) {
    fail_connection(id, e);
  }
}

void Transport::Impl::on_outbound_read(std::uint64_t id,
                                       std::expected<uv::ByteView, std::error_code> chunk) {
  Connection* c = find(id);
  if (c == nullptr) return;
  auto message = feed_message(id, *c, chunk);
  if (!message) return;
  const std::uint64_t request = c->request;
  const Bytes reply = std::move(*message);
  close_connection(id);
  ++stats.streams_out_ok;
  core->on_stream_reply(request, reply, Clock::now());
  drain();
}

// ------------------------------------------------------------- public API

Transport::Transport(TransportOptions options, EventHandler on_event, KeyringHandler on_keyring) {
  check(options);
  impl_ = std::make_unique<Impl>(std::move(options), std::move(on_event), std::move(on_keyring));
}

Transport::~Transport() {
  if (auto error = impl_->stop(StopMode::kLeave)) {
    spdlog::error("gossip: transport stopped with an open libuv handle: {}", error.message());
  }
}

std::error_code Transport::bind() { return impl_->bind(); }

std::error_code Transport::start(std::span<const Address> seeds, std::span<const SeedName> names) {
  return impl_->start(seeds, names);
}

std::error_code Transport::stop(StopMode mode) { return impl_->stop(mode); }

std::error_code Transport::set_metadata(Bytes metadata) {
  if (metadata.size() > impl_->options.config.max_metadata_size) return Errc::kTooLarge;
  Impl* impl = impl_.get();
  return impl->post([impl, metadata = std::move(metadata)]() mutable {
    if (auto error = impl->core->set_metadata(std::move(metadata), Clock::now())) {
      spdlog::debug("gossip: set_metadata: {}", error.message());
    }
    impl->drain();
  });
}

std::error_code Transport::send_user_event(Bytes payload) {
  if (payload.size() > impl_->options.config.max_event_payload) return Errc::kTooLarge;
  Impl* impl = impl_.get();
  return impl->post([impl, payload = std::move(payload)] {
    if (auto sent = impl->core->send_event(payload, Clock::now()); !sent) {
      spdlog::debug("gossip: send_user_event: {}", sent.error().message());
    }
    impl->drain();
  });
}

Transport::SnapshotResult Transport::snapshot(std::chrono::milliseconds timeout) const {
  Impl* impl = impl_.get();
  if (std::this_thread::get_id() == impl->loop_thread.load()) {
    if (impl->closing || !impl->core) return std::unexpected(make_error_code(Errc::kLeft));
    return impl->take_snapshot();
  }
  // Shared: after a timeout the transport thread still sets it.
  auto promise = std::make_shared<std::promise<SnapshotResult>>();
  auto future = promise->get_future();
  snapshot_async([promise](SnapshotResult result) { promise->set_value(std::move(result)); });
  if (future.wait_for(timeout) != std::future_status::ready) {
    return std::unexpected(std::make_error_code(std::errc::timed_out));
  }
  return future.get();
}

void Transport::snapshot_async(std::function<void(SnapshotResult)> done) const {
  Impl* impl = impl_.get();
  // This reference keeps the reply alive until post() has decided, so a
  // refused request is answered here with post()'s own error, not kLeft.
  auto reply = std::make_shared<SnapshotReply>("a snapshot callback", std::move(done));
  if (auto error = impl->post([impl, reply] { reply->answer(impl->take_snapshot()); })) {
    reply->answer(std::unexpected(error));
  }
}

void Transport::key_request_async(KeyOp op, std::optional<Key> key,
                                  std::function<void(KeyRequestResult)> done) {
  Impl* impl = impl_.get();
  auto reply = std::make_shared<KeyReply>("a key request callback", std::move(done));
  // As in snapshot_async: this reference lets a refused post answer here.
  if (auto error = impl->post([impl, op, key, reply] {
        auto id = impl->core->start_key_request(op, key, Clock::now());
        if (!id) {
          reply->answer(std::unexpected(id.error()));
          return;
        }
        // Registered before drain() hands out the result, which may already
        // be waiting (a cluster of one).
        impl->key_replies.emplace(*id, reply);
        impl->drain();
      })) {
    reply->answer(std::unexpected(error));
  }
}

std::vector<Key> Transport::keys() const {
  std::lock_guard lock(impl_->keys_mutex);
  return impl_->current_keys;
}

Address Transport::address() const {
  std::lock_guard lock(impl_->queue_mutex);
  return impl_->address;
}

bool Transport::running() const { return impl_->is_running; }

}  // namespace mixlb::gossip
