#pragma once
// The real transport of the gossip core: one Swim on a libuv loop in a
// thread of its own, with UDP for probes and gossip and TCP for push-pull.
//
//   sidecar thread(s)                       transport thread (libuv loop)
//   -----------------                       -----------------------------
//   start(seeds) ── binds, spawns ─────────► core.join(seeds), uv_run
//   set_metadata / send_user_event /        async callback: drains the
//   snapshot / stop ── mutex'd queue ──────►  request queue, calls the core
//                      + uv_async_send      UDP datagram ─► core.on_datagram
//                                           TCP stream   ─► core.on_stream
//                                           timer        ─► core.tick
//   on_event(Event) ◄── called here ─────── after every input: datagrams
//                                            sent, streams started, events
//                                            delivered, timer re-armed
//
// Threading contract:
//   - The core is touched by the transport thread only. Other threads reach
//     it through requests: a closure queued under a mutex, then
//     uv_async_send. Nothing else is shared between the threads.
//   - The event handler runs on the transport thread, in the order the core
//     produced the events, after the inputs that caused them. It must not
//     block: the sidecar posts each event to its io_context
//     (boost::asio::post(io, [e = std::move(event)] { ... })) and returns.
//     From the handler, set_metadata, send_user_event and snapshot may be
//     called (snapshot answers at once there); stop() may not (it would
//     join its own thread) and returns resource_deadlock_would_occur.
//     An exception thrown by the handler is logged and swallowed.
//   - Every public member may be called from any thread at any time (start
//     and stop are serialised by a mutex of their own); only the destructor
//     must not run concurrently with other calls, nor from the handler.
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
// Errors. Start-up errors (bind, listen) are returned by start(); bad
// configuration throws std::invalid_argument from the constructor. Once
// running nothing is fatal: socket errors are counted in TransportStats and
// logged (spdlog, at most once a second per kind); datagrams that fail to
// open or decode are dropped and counted by the core (Stats::drops,
// last_drop says who and why).
//
// Ports. UDP and TCP share one port number, the one members advertise. With
// port 0 the transport picks a free port (bound for TCP first, then the same
// number for UDP, retried on a collision) and advertises it; address() says
// which.
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
  // After stop() has announced the leave, the loop keeps running this long
  // so the leave is gossiped (and retransmitted) before the sockets close.
  Duration leave_linger = 500ms;
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

  // Checks the configuration (std::invalid_argument naming the field).
  // `on_event` may be empty.
  Transport(TransportOptions options, EventHandler on_event);
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;
  // stop() if still running.
  ~Transport();

  // Binds UDP and TCP, builds the core and starts the transport thread,
  // which joins through `seeds` (this node's own address among them is
  // skipped; empty: the first node of a cluster). Once per Transport:
  // already_connected when running, kLeft after stop().
  std::error_code start(std::span<const Address> seeds);

  // Announces the leave, lets it spread for leave_linger, closes every
  // handle and joins the thread. The result is the loop's close: empty when
  // every handle was released (uv_loop_close() == 0), else the error
  // (UV_EBUSY). Idempotent: later calls return the first result.
  std::error_code stop();

  // Requests, carried out on the transport thread. The bounds are checked
  // here (kTooLarge); after stop() began: kLeft; before start(): not_connected.
  std::error_code set_metadata(Bytes metadata);
  std::error_code send_user_event(Bytes payload);

  // A copy of the core's members and both sets of counters, taken on the
  // transport thread; timed_out if it does not answer in time.
  std::expected<TransportSnapshot, std::error_code> snapshot(
      std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) const;

  // The advertised address (with the port picked, after start()).
  Address address() const;
  bool running() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mixlb::gossip
