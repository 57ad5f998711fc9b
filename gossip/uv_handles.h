#pragma once
// RAII owners for the libuv handles the gossip transport uses: the loop, a
// timer, an async wake-up, a UDP socket and a TCP socket (listener or
// connection).
//
// libuv owns a handle's memory until the handle's close callback has run, so
// a wrapper cannot simply free it in its destructor. Each wrapper allocates
// one block holding the raw handle and its callbacks; destroying (or
// close()-ing) the wrapper calls uv_close, and the block is deleted in the
// close callback, when libuv is done with it. The loop must therefore run
// once more after handles are closed, and a loop test proves that nothing
// leaked by checking that Loop::close() (uv_loop_close) returns 0.
//
// Callbacks stored in a handle (timer, async, receive, read, accept) never
// run after close(); destroying the wrapper from inside one of its own
// callbacks is allowed (the block, and the callback being run, live on until
// the close callback). Callbacks of requests (connect, write, queued UDP
// sends) do run after close(), with UV_ECANCELED: they must not reach
// objects that may be gone — capture ids, not pointers to the owner.
//
// Errors are std::error_code in uv::category(), holding libuv's negative
// status as returned by the call; they compare equal to the matching
// std::errc (ECONNREFUSED and the like), and their message is uv_strerror's.
//
// (Not named uv.h: gossip/ is an include directory, and <uv.h> must still
// find libuv's own header.)
#include <sys/socket.h>
#include <uv.h>

#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <span>
#include <system_error>
#include <utility>
#include <vector>

namespace mixlb::gossip::uv {

const std::error_category& category() noexcept;

// The error_code for a libuv status (< 0); an empty code for status >= 0.
inline std::error_code error(int status) noexcept {
  return status < 0 ? std::error_code(status, category()) : std::error_code();
}

using ByteView = std::span<const std::uint8_t>;

class Loop {
 public:
  static std::expected<Loop, std::error_code> create();
  Loop(Loop&&) noexcept = default;
  Loop& operator=(Loop&&) noexcept;
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
  // Runs pending close callbacks and closes the loop. If handles are still
  // open (a bug: a wrapper outlived its loop) the uv_loop_t is leaked on
  // purpose rather than freed under them.
  ~Loop();

  uv_loop_t* get() const { return loop_.get(); }
  // uv_run; returns non-zero when active handles remain (UV_RUN_NOWAIT/ONCE).
  int run(uv_run_mode mode = UV_RUN_DEFAULT);
  // uv_loop_close: 0, or UV_EBUSY when a handle or request is still alive.
  // After a successful close the loop cannot be used again.
  int close();

 private:
  Loop() = default;
  void finish() noexcept;
  struct Free {
    void operator()(uv_loop_t* loop) const { delete loop; }
  };
  std::unique_ptr<uv_loop_t, Free> loop_;
  bool closed_ = false;
};

namespace detail {

// The one block a handle wrapper allocates: the raw handle first, then the
// callbacks and buffers the trampolines reach through handle->data.
template <typename Raw, typename State>
struct Block {
  Raw raw{};
  State state;
};

}  // namespace detail

template <typename Raw, typename State>
class Handle {
 public:
  Handle() = default;
  Handle(Handle&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      close();
      block_ = std::exchange(other.block_, nullptr);
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { close(); }

  explicit operator bool() const { return block_ != nullptr; }
  Raw* raw() const { return &block_->raw; }
  uv_handle_t* handle() const { return reinterpret_cast<uv_handle_t*>(&block_->raw); }

  // Starts closing the handle; its memory is freed in the close callback.
  // Afterwards the wrapper is empty. Closing an empty wrapper does nothing.
  void close() {
    if (block_ == nullptr) return;
    Block* block = std::exchange(block_, nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&block->raw),
             [](uv_handle_t* h) { delete static_cast<Block*>(h->data); });
  }

 protected:
  using Block = detail::Block<Raw, State>;

  // A block whose raw handle the caller initialises; if that fails the
  // caller deletes it (an uninitialised handle cannot be uv_close'd).
  static Block* allocate() {
    auto* block = new Block();
    block->raw.data = block;
    return block;
  }
  static State& state_of(const void* raw) {
    return static_cast<Block*>(static_cast<const uv_handle_t*>(raw)->data)->state;
  }

  explicit Handle(Block* block) : block_(block) {}
  State& state() const { return block_->state; }

  Block* block_ = nullptr;
};

// ---- timer

struct TimerState {
  std::function<void()> on_fire;
};

class Timer : public Handle<uv_timer_t, TimerState> {
 public:
  Timer() = default;
  static std::expected<Timer, std::error_code> create(uv_loop_t* loop,
                                                      std::function<void()> on_fire);
  // (Re)arms the timer to fire once, `after` from the loop's cached time.
  std::error_code start(std::chrono::milliseconds after);
  void stop();

 private:
  using Handle::Handle;
};

// ---- async: the one libuv call that is safe from any thread

struct AsyncState {
  std::function<void()> on_wake;
};

class Async : public Handle<uv_async_t, AsyncState> {
 public:
  Async() = default;
  static std::expected<Async, std::error_code> create(uv_loop_t* loop,
                                                      std::function<void()> on_wake);
  // Thread-safe, but the caller must make sure the handle is not being
  // closed concurrently (the transport holds one mutex around both).
  // Wake-ups sent before the callback runs are coalesced into one.
  std::error_code send() const;

 private:
  using Handle::Handle;
};

// ---- UDP

struct UdpState {
  // bytes, sender, whether the datagram was cut to the buffer's size.
  std::function<void(ByteView, const sockaddr*, bool)> on_datagram;
  std::function<void(std::error_code)> on_receive_error;
  // Failures of sends that had to be queued (the immediate ones are returned).
  std::function<void(std::error_code)> on_send_error;
  std::vector<char> buffer;
};

class Udp : public Handle<uv_udp_t, UdpState> {
 public:
  // The largest datagram received whole; longer ones are reported truncated.
  static constexpr std::size_t kReceiveBuffer = 65536;

  Udp() = default;
  static std::expected<Udp, std::error_code> create(uv_loop_t* loop);
  std::error_code bind(const sockaddr* address, unsigned flags = 0);
  std::expected<sockaddr_storage, std::error_code> local_address() const;
  std::error_code start_receive(std::function<void(ByteView, const sockaddr*, bool)> on_datagram,
                                std::function<void(std::error_code)> on_error);
  // Sends one datagram: at once when the socket takes it (uv_udp_try_send),
  // else queued with a copy of the bytes, whose failure goes to
  // `on_send_error` (set_send_error_handler). Returns immediate failures.
  std::error_code send(const sockaddr* to, ByteView bytes);
  void set_send_error_handler(std::function<void(std::error_code)> on_error);

 private:
  using Handle::Handle;
};

// ---- TCP

struct TcpState {
  std::function<void(std::error_code)> on_connection;
  // A chunk of the stream, or its end: UV_EOF or a read error.
  std::function<void(std::expected<ByteView, std::error_code>)> on_read;
  std::vector<char> buffer;
};

class Tcp : public Handle<uv_tcp_t, TcpState> {
 public:
  static constexpr std::size_t kReadBuffer = 65536;

  Tcp() = default;
  static std::expected<Tcp, std::error_code> create(uv_loop_t* loop);
  std::error_code bind(const sockaddr* address, unsigned flags = 0);
  std::error_code listen(int backlog, std::function<void(std::error_code)> on_connection);
  // Accepts a pending connection of this listener into `client` (a fresh Tcp).
  std::error_code accept(Tcp& client) const;
  // `on_connected` runs exactly once: the outcome, or UV_ECANCELED when the
  // handle is closed first (it is kept by the request, not the handle).
  std::error_code connect(const sockaddr* address,
                          std::function<void(std::error_code)> on_connected);
  std::error_code read_start(std::function<void(std::expected<ByteView, std::error_code>)> on_read);
  void read_stop();
  // Writes the bytes (the request owns them); `on_written` runs exactly once,
  // with UV_ECANCELED when the handle is closed first.
  std::error_code write(std::vector<std::uint8_t> bytes,
                        std::function<void(std::error_code)> on_written);
  std::expected<sockaddr_storage, std::error_code> local_address() const;
  std::expected<sockaddr_storage, std::error_code> peer_address() const;

 private:
  using Handle::Handle;
};

}  // namespace mixlb::gossip::uv
