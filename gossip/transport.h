#pragma once
// The real transport of the gossip core: one Swim on a libuv loop in a
// thread of its own, with UDP for probes and gossip and TCP for push-pull.
//
//   sidecar thread(s)                       transport thread (libuv loop)
//   -----------------                       -----------------------------
//   bind() ── loop and sockets, no thread
//   start(seeds, names) ── (binds,) spawns ─► core.join(seeds), uv_run;
//                                           names resolved on a uv worker
//                                           ─► core.named_seeds_resolved
//   set_metadata / send_user_event /        async callback: drains the
//   snapshot / snapshot_async /              request queue, calls the core
//   key_request_async / stop ──────────────►
//     (a mutex'd queue + uv_async_send)     UDP datagram ─► core.on_datagram
//                                           TCP stream   ─► core.on_stream
//                                           timer        ─► core.tick
//   on_event(Event) ◄── called here ─────── after every input: datagrams
//   on_keyring(KeyringChanged) ◄────────────  sent, streams started, events
//   key request `done` ◄────────────────────  delivered, timer re-armed
//
// Threading contract:
//   - The core is touched by the transport thread only. Other threads reach
//     it through requests: a closure queued under a mutex, then
//     uv_async_send. Nothing else is shared between the threads.
//   - The event handler runs on the transport thread, in the order the core
//     produced the events, after the inputs that caused them. It must not
//     block: the sidecar posts each event to its io_context
//     (boost::asio::post(io, [e = std::move(event)] { ... })) and returns.
//     From the handler, set_metadata, send_user_event, snapshot,
//     snapshot_async, key_request_async and keys may be called (snapshot
//     answers at once there, the async ones once the handler has returned);
//     stop() may not (it would join its own thread) and returns
//     resource_deadlock_would_occur. An exception thrown by the handler is
//     logged and swallowed. The keyring handler and the callbacks of
//     snapshot_async and key_request_async are held to the same rules.
//   - Every public member may be called from any thread at any time (bind,
//     start and stop are serialised by a mutex of their own); only the
//     destructor must not run concurrently with other calls, nor from the
//     handler. snapshot_async and key_request_async never wait for the
//     transport thread, so a thread that must not block (the sidecar's
//     io_context) uses them, posting the answer to itself.
//
// Keys. key_request_async() starts a key request with this node as its
// origin (swim.h, "Key requests": list, install, use or remove a key on
// every member) and answers once with the KeyResult, every member's
// outcome. Whenever this node's keyring changes — by its own request or by
// another member's — the keyring handler gets the full key list (primary
// first), so the sidecar can rewrite its keyring file; keys() gives the
// same list at any time without waiting.
//
// Streams. Push-pull is one message each way per TCP connection, framed by
// stream_frame.h. The listener serves at most max_inbound_streams
// connections at once (more are accepted and closed at once, and counted),
// refuses announced lengths over max_stream_message before reading them,
// and gives every connection stream_timeout for the whole exchange.
// Outgoing requests from the core are bounded by max_outbound_streams (the
// excess is failed back to the core at once), get the same deadline, and
// report on_stream_reply or on_stream_failed exactly once.
//
// Errors. Start-up errors (bind, listen) are returned by bind(), or by
// start() when it binds itself; bad configuration throws
// std::invalid_argument from the constructor. Once running nothing is
// fatal: socket errors are counted in TransportStats and logged (spdlog, at
// most once a second per kind); datagrams that fail to open or decode are
// dropped and counted by the core (Stats::drops, last_drop says who and
// why).
//
// Ports. UDP and TCP share one port number, the one members advertise. With
// port 0 the transport picks a free port (bound for TCP first, then the same
// number for UDP, retried on a collision) and advertises it; address() says
// which, from bind() on.
//
// Stopping. stop() either announces the leave (StopMode::kLeave: others
// mark the node left) or goes quiet (StopMode::kQuiet: others see it stop
// answering, suspect it, then declare it dead — for a process that is
// restarting, whose successor rejoins under the same name and refutes).
// Either way the loop runs on for leave_linger first, so what is queued is
// still gossiped: the leave, or with kQuiet the updates queued before it,
// such as metadata just published (a leave would replace that: the
// broadcast queue keeps one update per member).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "seed_lookup.h"
#include "swim.h"

namespace mixlb::gossip {

struct TransportOptions {
  // The core's configuration. config.address is the address advertised to
  // other members and must be one they can reach (not 0.0.0.0 or ::); its
  // port may be 0 (see "Ports" above).
  Config config;
  // The cluster keyring; without one, packets travel in plaintext.
  std::optional<Keyring> keyring;
  // Where the sockets bind, when not config.address (e.g. 0.0.0.0:7946 or
  // [::]:7946, dual-stack). Its port 0 picks a free port, as above.
  std::optional<Address> bind;
  // The core's random seed; 0 draws one from std::random_device.
  std::uint64_t seed = 0;

  // Push-pull stream bounds.
  std::size_t max_stream_message = 8u << 20;
  std::size_t max_inbound_streams = 64;
  std::size_t max_outbound_streams = 16;
  // The deadline of one whole stream exchange (connect, send, receive);
  // config.stream_timeout when unset.
  std::optional<Duration> stream_timeout;
  // After stop() has begun, the loop keeps running this long so the leave
  // (StopMode::kLeave) or the updates already queued (StopMode::kQuiet) are
  // gossiped, and retransmitted, before the sockets close.
  Duration leave_linger = 500ms;
  // How a seed given by name is resolved, on a libuv worker thread (never
  // the loop), in the family of config.address. Unset: lookup_seed(), the
  // system resolver. Tests give names answers of their own.
  SeedLookupFn lookup;
};

// How stop() takes the node out of the cluster.
enum class StopMode {
  kLeave,  // announce the leave: the others mark the node left
  kQuiet,  // announce nothing: the others suspect it, then declare it dead
};

// The transport's own counters; the core's are in Stats.
struct TransportStats {
  std::uint64_t udp_sent = 0;
  std::uint64_t udp_send_errors = 0;
  std::uint64_t udp_received = 0;
  std::uint64_t udp_receive_errors = 0;
  std::uint64_t udp_truncated = 0;  // longer than the receive buffer: dropped
  std::uint64_t streams_accepted = 0;
  std::uint64_t streams_refused = 0;     // over max_inbound_streams
  std::uint64_t streams_served = 0;      // a reply was written
  std::uint64_t streams_in_failed = 0;   // timeout, bad frame, read error, core refusal
  std::uint64_t streams_out_ok = 0;      // a reply was handed to the core
  std::uint64_t streams_out_failed = 0;  // reported to the core as failed
  std::uint64_t stream_bytes_in = 0;
  std::uint64_t stream_bytes_out = 0;
  std::uint64_t wakeups = 0;   // timer callbacks
  std::uint64_t requests = 0;  // requests from other threads run
  std::string last_error;      // "udp send to 10.0.0.9:7946: ..."
};

struct TransportSnapshot {
  Address address;  // what this node advertises
  Member self;
  std::vector<Member> members;  // every member known, this node included
  Stats core;
  TransportStats transport;
  int health_score = 0;
};

class Transport {
 public:
  using EventHandler = std::function<void(Event)>;
  using KeyringHandler = std::function<void(KeyringChanged)>;

  // Checks the configuration (std::invalid_argument naming the field).
  // Either handler may be empty.
  Transport(TransportOptions options, EventHandler on_event, KeyringHandler on_keyring = {});
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;
  // stop() if still running.
  ~Transport();

  using SnapshotResult = std::expected<TransportSnapshot, std::error_code>;
  using KeyRequestResult = std::expected<KeyResult, std::error_code>;

  // Creates the loop and binds UDP and TCP (listening already), without
  // building the core or starting the thread, so that a port in use is
  // reported before anything else is set up; address() then gives the
  // port. Peers that reach the node before start() wait in the socket
  // buffers. Once per Transport: already_connected when bound or running,
  // kLeft after stop(). A failed bind() leaves nothing open and may be
  // retried.
  std::error_code bind();

  // Binds (unless bind() did), builds the core and starts the transport
  // thread, which joins through `seeds` (this node's own address among them
  // is skipped; empty: the first node of a cluster) and through the
  // addresses `names` resolve to. The names are resolved off the loop, at
  // the start and again at every re-join round (a round whose previous
  // resolution is still running is skipped); each resolution is reported to
  // the event handler as SeedsResolved, the first one before any result of
  // the joins it started. A name that fails to resolve is reported, keeps
  // the addresses it last resolved to (a resolver outage forgets no seed)
  // and is tried again next round. stop() waits for a
  // resolution that is already running (as long as the resolver's own
  // timeouts allow) and cancels one still queued. Once per Transport:
  // already_connected when running, kLeft after stop(). A failed start()
  // releases the sockets, those of an earlier bind() too, and may be
  // retried.
  std::error_code start(std::span<const Address> seeds, std::span<const SeedName> names = {});

  // Announces the leave (kLeave) or nothing (kQuiet), keeps gossiping for
  // leave_linger, closes every handle and joins the thread; a transport
  // only bound just closes its sockets. The result is the loop's close:
  // empty when every handle was released (uv_loop_close() == 0), else the
  // error (UV_EBUSY). Idempotent: later calls return the first result,
  // whatever their mode.
  std::error_code stop(StopMode mode = StopMode::kLeave);

  // Requests, carried out on the transport thread. The bounds are checked
  // here (kTooLarge); after stop() began: kLeft; before start(): not_connected.
  std::error_code set_metadata(Bytes metadata);
  std::error_code send_user_event(Bytes payload);

  // A copy of the core's members and both sets of counters, taken on the
  // transport thread; timed_out if it does not answer in time. Blocks the
  // caller: for tests and tools (snapshot_async for the sidecar).
  SnapshotResult snapshot(
      std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) const;

  // The same snapshot without waiting for it. `done` runs exactly once:
  // on the transport thread with the snapshot, or with the error —
  // not_connected before start(), kLeft once stop() has begun — on this
  // thread before snapshot_async returns, when the request cannot be
  // queued. A request queued before stop() is answered before the loop
  // closes (kLeft, on the transport thread, should it be dropped unrun).
  // An exception thrown by `done` is logged and swallowed.
  void snapshot_async(std::function<void(SnapshotResult)> done) const;

  // Starts a key request with this node as its origin: `op` on every
  // member's keyring, `key` given for install, use and remove (the core's
  // start_key_request). `done` runs exactly once: on the transport thread
  // with the KeyResult once every member alive at the start has answered,
  // or key_request_timeout has passed; on the transport thread with the
  // core's refusal (kBadValue, kNoKeyring, kBusy, kKeyNotInstalled,
  // kKeyIsPrimary, kKeyringFull); at once on this thread with
  // not_connected before start() or kLeft once stop() has begun; or with
  // kLeft on the transport thread when the loop closes before the result
  // (stop() during the request). An exception thrown by `done` is logged
  // and swallowed.
  void key_request_async(KeyOp op, std::optional<Key> key,
                         std::function<void(KeyRequestResult)> done);

  // The keys this node holds, the primary first (empty without a keyring):
  // the options' keyring until the transport thread reports a change, the
  // last reported list after that, and after stop() too. Never waits.
  std::vector<Key> keys() const;

  // The advertised address (with the port picked, after bind()).
  Address address() const;
  bool running() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mixlb::gossip
