// The libuv wrappers: trampolines from libuv's C callbacks to the stored
// std::functions, and the request types that own their buffers and
// callbacks until libuv hands them back.
//
// An exception must not unwind through libuv's C frames, so every
// trampoline catches what a callback throws, logs it and goes on: one bad
// packet or handler must not take the gossip thread down.
#include "uv_handles.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <string>

namespace mixlb::gossip::uv {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "libuv"; }
  std::string message(int value) const override { return uv_strerror(value); }
  // On Unix every UV_E* except the getaddrinfo ones is a negated errno.
  std::error_condition default_error_condition(int value) const noexcept override {
    if (value < 0 && value > -4000) return {-value, std::generic_category()};
    return {value, *this};
  }
};

template <typename F, typename... Args>
void guarded(const char* where, F& callback, Args&&... args) {
  if (!callback) return;
  try {
    callback(std::forward<Args>(args)...);
  } catch (const std::exception& e) {
    spdlog::error("gossip: {} callback threw: {}", where, e.what());
  } catch (...) {
    spdlog::error("gossip: {} callback threw a non-standard exception", where);
  }
}

std::expected<sockaddr_storage, std::error_code> name_of(int (*get)(const uv_tcp_t*, sockaddr*,
                                                                    int*),
                                                         const uv_tcp_t* tcp) {
  sockaddr_storage address{};
  int length = sizeof address;
  const int rc = get(tcp, reinterpret_cast<sockaddr*>(&address), &length);
  if (rc < 0) return std::unexpected(error(rc));
  return address;
}

struct UdpSend {
  uv_udp_send_t req{};
  std::vector<std::uint8_t> bytes;
};

struct TcpConnect {
  uv_connect_t req{};
  std::function<void(std::error_code)> on_connected;
};

struct TcpWrite {
  uv_write_t req{};
  std::vector<std::uint8_t> bytes;
  std::function<void(std::error_code)> on_written;
};

}  // namespace

const std::error_category& category() noexcept {
  static const Category instance;
  return instance;
}

// ---- loop

std::expected<Loop, std::error_code> Loop::create() {
  Loop loop;
  loop.loop_.reset(new uv_loop_t());
  if (const int rc = uv_loop_init(loop.loop_.get()); rc < 0) {
    loop.closed_ = true;  // nothing to close; the memory is simply freed
    return std::unexpected(error(rc));
  }
  return loop;
}

Loop& Loop::operator=(Loop&& other) noexcept {
  if (this != &other) {
    finish();
    loop_ = std::move(other.loop_);
    closed_ = other.closed_;
  }
  return *this;
}

Loop::~Loop() { finish(); }

void Loop::finish() noexcept {
  if (!loop_ || closed_) return;
  uv_run(loop_.get(), UV_RUN_NOWAIT);  // close callbacks still pending
  if (close() != 0) {
    spdlog::error("gossip: libuv loop destroyed with handles still open; leaking it");
    (void)loop_.release();
  }
}

int Loop::run(uv_run_mode mode) { return uv_run(loop_.get(), mode); }

int Loop::close() {
  if (closed_) return 0;
  const int rc = uv_loop_close(loop_.get());
  if (rc == 0) closed_ = true;
  return rc;
}

// ---- timer

std::expected<Timer, std::error_code> Timer::create(uv_loop_t* loop,
                                                    std::function<void()> on_fire) {
  Block* block = allocate();
  if (const int rc = uv_timer_init(loop, &block->raw); rc < 0) {
    delete block;
    return std::unexpected(error(rc));
  }
  block->state.on_fire = std::move(on_fire);
  return Timer(block);
}

std::error_code Timer::start(std::chrono::milliseconds after) {
  const auto ms = after.count() < 0 ? 0 : static_cast<std::uint64_t>(after.count());
  return error(uv_timer_start(
      raw(), [](uv_timer_t* t) { guarded("timer", state_of(t).on_fire); }, ms, 0));
}

void Timer::stop() { uv_timer_stop(raw()); }

// ---- async

std::expected<Async, std::error_code> Async::create(uv_loop_t* loop,
                                                    std::function<void()> on_wake) {
  Block* block = allocate();
  block->state.on_wake = std::move(on_wake);
  const int rc = uv_async_init(loop, &block->raw,
                               [](uv_async_t* a) { guarded("async", state_of(a).on_wake); });
  if (rc < 0) {
    delete block;
    return std::unexpected(error(rc));
  }
  return Async(block);
}

std::error_code Async::send() const { return error(uv_async_send(raw())); }

// ---- UDP

std::expected<Udp, std::error_code> Udp::create(uv_loop_t* loop) {
  Block* block = allocate();
  if (const int rc = uv_udp_init(loop, &block->raw); rc < 0) {
    delete block;
    return std::unexpected(error(rc));
  }
  return Udp(block);
}

std::error_code Udp::bind(const sockaddr* address, unsigned flags) {
  return error(uv_udp_bind(raw(), address, flags));
}

std::expected<sockaddr_storage, std::error_code> Udp::local_address() const {
  sockaddr_storage address{};
  int length = sizeof address;
  const int rc = uv_udp_getsockname(raw(), reinterpret_cast<sockaddr*>(&address), &length);
  if (rc < 0) return std::unexpected(error(rc));
  return address;
}

std::error_code Udp::start_receive(std::function<void(ByteView, const sockaddr*, bool)> on_datagram,
                                   std::function<void(std::error_code)> on_error) {
  UdpState& s = state();
  s.on_datagram = std::move(on_datagram);
  s.on_receive_error = std::move(on_error);
  s.buffer.resize(kReceiveBuffer);
  return error(uv_udp_recv_start(
      raw(),
      [](uv_handle_t* h, std::size_t, uv_buf_t* buf) {
        auto& b = state_of(h).buffer;
        *buf = uv_buf_init(b.data(), static_cast<unsigned>(b.size()));
      },
      [](uv_udp_t* u, ssize_t nread, const uv_buf_t* buf, const sockaddr* from, unsigned flags) {
        UdpState& st = state_of(u);
        if (nread < 0) {
          guarded("udp receive error", st.on_receive_error, error(static_cast<int>(nread)));
          return;
        }
        if (from == nullptr) return;  // nothing more to read for now
        const ByteView bytes(reinterpret_cast<const std::uint8_t*>(buf->base),
                             static_cast<std::size_t>(nread));
        guarded("udp receive", st.on_datagram, bytes, from, (flags & UV_UDP_PARTIAL) != 0);
      }));
}

void Udp::set_send_error_handler(std::function<void(std::error_code)> on_error) {
  state().on_send_error = std::move(on_error);
}

std::error_code Udp::send(const sockaddr* to, ByteView bytes) {
  uv_buf_t buf = uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(bytes.data())),
                             static_cast<unsigned>(bytes.size()));
  const int sent = uv_udp_try_send(raw(), &buf, 1, to);
  if (sent >= 0) return {};
  if (sent != UV_EAGAIN) return error(sent);
  // The socket's buffer is full or sends are already queued: queue a copy.
  auto* send = new UdpSend();
  send->bytes.assign(bytes.begin(), bytes.end());
  buf = uv_buf_init(reinterpret_cast<char*>(send->bytes.data()),
                    static_cast<unsigned>(send->bytes.size()));
  send->req.data = send;
  const int rc = uv_udp_send(&send->req, raw(), &buf, 1, to, [](uv_udp_send_t* req, int status) {
    std::unique_ptr<UdpSend> owned(static_cast<UdpSend*>(req->data));
    if (status < 0 && status != UV_ECANCELED) {
      guarded("udp send error", state_of(req->handle).on_send_error, error(status));
    }
  });
  if (rc < 0) {
    delete send;
    return error(rc);
  }
  return {};
}

// ---- TCP

std::expected<Tcp, std::error_code> Tcp::create(uv_loop_t* loop) {
  Block* block = allocate();
  if (const int rc = uv_tcp_init(loop, &block->raw); rc < 0) {
    delete block;
    return std::unexpected(error(rc));
  }
  return Tcp(block);
}

std::error_code Tcp::bind(const sockaddr* address, unsigned flags) {
  return error(uv_tcp_bind(raw(), address, flags));
}

std::error_code Tcp::listen(int backlog, std::function<void(std::error_code)> on_connection) {
  state().on_connection = std::move(on_connection);
  return error(uv_listen(reinterpret_cast<uv_stream_t*>(raw()), backlog,
                         [](uv_stream_t* server, int status) {
                           guarded("tcp accept", state_of(server).on_connection, error(status));
                         }));
}

std::error_code Tcp::accept(Tcp& client) const {
  return error(uv_accept(reinterpret_cast<uv_stream_t*>(raw()),
                         reinterpret_cast<uv_stream_t*>(client.raw())));
}

std::error_code Tcp::connect(const sockaddr* address,
                             std::function<void(std::error_code)> on_connected) {
  auto* connect = new TcpConnect();
  connect->req.data = connect;
  connect->on_connected = std::move(on_connected);
  const int rc = uv_tcp_connect(&connect->req, raw(), address, [](uv_connect_t* req, int status) {
    std::unique_ptr<TcpConnect> owned(static_cast<TcpConnect*>(req->data));
    guarded("tcp connect", owned->on_connected, error(status));
  });
  if (rc < 0) {
    delete connect;
    return error(rc);
  }
  return {};
}

std::error_code Tcp::read_start(
    std::function<void(std::expected<ByteView, std::error_code>)> on_read) {
  TcpState& s = state();
  s.on_read = std::move(on_read);
  s.buffer.resize(kReadBuffer);
  return error(uv_read_start(
      reinterpret_cast<uv_stream_t*>(raw()),
      [](uv_handle_t* h, std::size_t, uv_buf_t* buf) {
        auto& b = state_of(h).buffer;
        *buf = uv_buf_init(b.data(), static_cast<unsigned>(b.size()));
      },
      [](uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
        TcpState& st = state_of(stream);
        if (nread == 0) return;  // EAGAIN: nothing this time
        if (nread < 0) {
          guarded("tcp read", st.on_read,
                  std::expected<ByteView, std::error_code>(
                      std::unexpected(error(static_cast<int>(nread)))));
          return;
        }
        guarded("tcp read", st.on_read,
                std::expected<ByteView, std::error_code>(
                    ByteView(reinterpret_cast<const std::uint8_t*>(buf->base),
                             static_cast<std::size_t>(nread))));
      }));
}

void Tcp::read_stop() { uv_read_stop(reinterpret_cast<uv_stream_t*>(raw())); }

std::error_code Tcp::write(std::vector<std::uint8_t> bytes,
                           std::function<void(std::error_code)> on_written) {
  auto* write = new TcpWrite();
  write->req.data = write;
  write->bytes = std::move(bytes);
  write->on_written = std::move(on_written);
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(write->bytes.data()),
                             static_cast<unsigned>(write->bytes.size()));
  const int rc = uv_write(&write->req, reinterpret_cast<uv_stream_t*>(raw()), &buf, 1,
                          [](uv_write_t* req, int status) {
                            std::unique_ptr<TcpWrite> owned(static_cast<TcpWrite*>(req->data));
                            guarded("tcp write", owned->on_written, error(status));
                          });
  if (rc < 0) {
    delete write;
    return error(rc);
  }
  return {};
}

std::expected<sockaddr_storage, std::error_code> Tcp::local_address() const {
  return name_of(&uv_tcp_getsockname, raw());
}

std::expected<sockaddr_storage, std::error_code> Tcp::peer_address() const {
  return name_of(&uv_tcp_getpeername, raw());
}

}  // namespace mixlb::gossip::uv
