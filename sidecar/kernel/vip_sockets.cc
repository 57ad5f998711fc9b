#include "kernel/vip_sockets.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string>

#include "kernel/unique_fd.h"

namespace mixlb {
namespace {

// The kernel's TCP states as /proc/net/tcp prints them.
constexpr unsigned kTimeWait = 0x06, kClose = 0x07, kListen = 0x0A;

bool hex32(std::string_view text, std::uint32_t& out) {
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out, 16);
  return ec == std::errc() && ptr == text.data() + text.size();
}

// "0100007F:0050" (IPv4) or 32 hex digits and a port (IPv6). Each 32-bit
// word is the raw word printed as a number, so it equals the word as
// Address stores it (network order in memory) on any byte order.
bool parse_endpoint(std::string_view text, Address& address, std::uint16_t& port) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return false;
  const std::string_view host = text.substr(0, colon);
  std::uint32_t p = 0;
  if (!hex32(text.substr(colon + 1), p) || p > 0xffff) return false;
  port = static_cast<std::uint16_t>(p);
  address = Address{};
  if (host.size() == 8) {
    address.family = AF_INET;
    return hex32(host, address.words[0]);
  }
  if (host.size() != 32) return false;
  address.family = AF_INET6;
  for (int i = 0; i < 4; ++i)
    if (!hex32(host.substr(8 * i, 8), address.words[i])) return false;
  return true;
}

std::expected<std::string, std::error_code> read_all(const char* path) {
  const UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return std::unexpected(std::error_code(errno, std::system_category()));
  std::string text;
  char buffer[16384];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::unexpected(std::error_code(errno, std::system_category()));
    if (n == 0) return text;
    text.append(buffer, static_cast<std::size_t>(n));
  }
}

}  // namespace

std::size_t count_vip_connections_in(std::string_view text, std::span<const VipPort> vips) {
  std::size_t count = 0;
  std::size_t at = text.find('\n');  // the header line
  while (at != std::string_view::npos && at + 1 < text.size()) {
    const std::size_t end = text.find('\n', at + 1);
    std::string_view line = text.substr(at + 1, end == std::string_view::npos ? std::string_view::npos : end - at - 1);
    at = end;
    // "  sl  local_address rem_address   st ..."
    std::string_view fields[4];
    std::size_t n = 0, pos = 0;
    while (n < 4) {
      pos = line.find_first_not_of(' ', pos);
      if (pos == std::string_view::npos) break;
      const std::size_t stop = line.find(' ', pos);
      fields[n++] = line.substr(pos, stop == std::string_view::npos ? std::string_view::npos : stop - pos);
      pos = stop;
    }
    if (n < 4) continue;
    std::uint32_t state = 0;
    if (!hex32(fields[3], state) || state == kListen || state == kTimeWait || state == kClose) continue;
    Address local;
    std::uint16_t port = 0;
    if (!parse_endpoint(fields[1], local, port)) continue;
    for (const VipPort& v : vips)
      if (v.address == local && (v.port == 0 || v.port == port)) {
        ++count;
        break;
      }
  }
  return count;
}

std::expected<std::size_t, std::error_code> count_vip_connections(std::span<const VipPort> vips) {
  std::size_t count = 0;
  for (const char* path : {"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"}) {
    auto text = read_all(path);
    if (!text) {
      // No IPv6 in this kernel or namespace: nothing to count there.
      if (text.error() == std::errc::no_such_file_or_directory) continue;
      return std::unexpected(text.error());
    }
    count += count_vip_connections_in(*text, vips);
  }
  return count;
}

}  // namespace mixlb
