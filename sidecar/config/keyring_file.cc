// Reading the cluster keyring file (see keyring_file.h).
#include "config/keyring_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "config/config.h"
#include "kernel/unique_fd.h"

namespace mixlb {
namespace {

std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\v\f";
  const std::size_t begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  const std::size_t end = text.find_last_not_of(kSpace);
  return text.substr(begin, end - begin + 1);
}

[[noreturn]] void fail_errno(const std::string& path, std::string_view what, int error) {
  throw ConfigError(fmt::format("{}: {} the keyring file: {}", path, what, std::strerror(error)));
}

// A string holding key material, zeroed when it goes.
struct SecretText {
  std::string text;
  SecretText() = default;
  SecretText(const SecretText&) = delete;
  SecretText& operator=(const SecretText&) = delete;
  ~SecretText() { explicit_bzero(text.data(), text.size()); }
};

// The whole file, read through one descriptor whose mode is checked first
// (fstat on the open file, so the mode judged is that of the file read).
// O_NONBLOCK keeps a FIFO from blocking the open; it is then refused as not
// a regular file.
void read_secret_file(const std::string& path, std::string& text) {
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) fail_errno(path, "cannot open", errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail_errno(path, "cannot stat", errno);
  if (!S_ISREG(st.st_mode)) {
    throw ConfigError(fmt::format("{}: the keyring file is not a regular file", path));
  }
  if ((st.st_mode & 077) != 0) {
    throw ConfigError(
        fmt::format("{}: the keyring file is readable by others (mode {:04o}); chmod 600 it", path,
                    st.st_mode & 07777));
  }
  // Reserved up front so that growing the string leaves no copies behind.
  text.reserve(static_cast<std::size_t>(st.st_size) + 1);
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno(path, "cannot read", errno);
    }
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  // The buffer held key material; do not leave it on the stack.
  explicit_bzero(buffer, sizeof(buffer));
}

}  // namespace

std::vector<gossip::Key> read_keyring_file(const std::string& path) {
  SecretText secret;
  read_secret_file(path, secret.text);
  std::vector<gossip::Key> keys;
  std::vector<std::size_t> lines;  // the line of each key in `keys`
  std::string_view rest = secret.text;
  std::size_t line = 0;
  while (!rest.empty()) {
    ++line;
    const std::size_t newline = rest.find('\n');
    const std::string_view raw = rest.substr(0, newline);
    rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
    const std::string_view content = trim(raw);
    if (content.empty() || content.front() == '#') continue;
    const auto key = gossip::parse_key(content);
    if (!key) {
      throw ConfigError(fmt::format("{}:{}: not a key (expected 64 hex digits)", path, line));
    }
    if (const auto it = std::find(keys.begin(), keys.end(), *key); it != keys.end()) {
      const std::size_t first = lines[static_cast<std::size_t>(it - keys.begin())];
      throw ConfigError(fmt::format("{}:{}: the same key as line {}", path, line, first));
    }
    keys.push_back(*key);
    lines.push_back(line);
  }
  if (keys.empty()) throw ConfigError(fmt::format("{}: no key in the keyring file", path));
  return keys;
}

}  // namespace mixlb
