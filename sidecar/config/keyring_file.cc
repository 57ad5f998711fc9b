// Reading and writing the cluster keyring file (see keyring_file.h).
#include "config/keyring_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
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

std::error_code last_error() { return {errno, std::system_category()}; }

// Writes all of `text` to `fd`, through short writes and interruptions.
std::error_code write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    text.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

// Flushes a directory, so the names changed in it survive a crash.
std::error_code sync_directory(const std::string& dir) {
  const UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return last_error();
  if (::fsync(fd.get()) != 0) return last_error();
  return {};
}

// The keyring file's text: the header, then one key per line.
void format_keys(std::span<const gossip::Key> keys, std::string& text) {
  text.reserve(std::string_view(kKeyringFileHeader).size() + 1 + keys.size() * 65);
  text.append(kKeyringFileHeader).push_back('\n');
  for (const auto& key : keys) {
    std::string hex = gossip::key_to_hex(key);
    text.append(hex).push_back('\n');
    explicit_bzero(hex.data(), hex.size());
  }
}

std::string directory_of(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

// A file beside `path` holding `text`, with `mode`, on disk: what the final
// rename or link makes visible under the name. Returns its path; on error
// nothing is left behind.
std::expected<std::string, std::error_code> write_temporary(const std::string& path,
                                                            std::string_view text, mode_t mode) {
  const std::string leaf = std::filesystem::path(path).filename().string();
  std::string name = directory_of(path) + "/." + leaf + ".XXXXXX";
  const UniqueFd fd(::mkostemp(name.data(), O_CLOEXEC));
  if (!fd) return std::unexpected(last_error());
  std::error_code error;
  if (::fchmod(fd.get(), mode) != 0) error = last_error();
  if (!error) error = write_all(fd.get(), text);
  if (!error && ::fsync(fd.get()) != 0) error = last_error();
  if (error) {
    ::unlink(name.c_str());
    return std::unexpected(error);
  }
  return name;
}

}  // namespace

const char* const kKeyringFileHeader =
    "# mixlb gossip keyring: one key per line, the primary first (mixlb rewrites this file when "
    "the cluster's keys change)";

std::error_code write_keyring_file(const std::string& path, std::span<const gossip::Key> keys) {
  if (keys.empty()) return std::make_error_code(std::errc::invalid_argument);
  SecretText secret;
  format_keys(keys, secret.text);
  auto temporary = write_temporary(path, secret.text, 0600);
  if (!temporary) return temporary.error();
  if (::rename(temporary->c_str(), path.c_str()) != 0) {
    const std::error_code error = last_error();
    ::unlink(temporary->c_str());
    return error;
  }
  return sync_directory(directory_of(path));
}

std::expected<gossip::Key, std::error_code> generate_keyring_file(const std::string& path) {
  const gossip::Key key = gossip::generate_key();
  SecretText secret;
  format_keys(std::span(&key, 1), secret.text);
  auto temporary = write_temporary(path, secret.text, 0400);
  if (!temporary) return std::unexpected(temporary.error());
  // link(), unlike rename(), refuses an existing name: the file appears
  // whole under `path`, or not at all.
  const int linked = ::link(temporary->c_str(), path.c_str());
  const std::error_code link_error = linked != 0 ? last_error() : std::error_code();
  ::unlink(temporary->c_str());
  if (link_error) return std::unexpected(link_error);
  if (auto error = sync_directory(directory_of(path))) return std::unexpected(error);
  return key;
}

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
  if (keys.size() > gossip::kMaxKeys) {
    throw ConfigError(fmt::format("{}: {} keys in the keyring file; a keyring holds at most {}",
                                  path, keys.size(), gossip::kMaxKeys));
  }
  return keys;
}

}  // namespace mixlb
