#include "kernel/host_record.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <nlohmann/json.hpp>

#include "kernel/unique_fd.h"

namespace mixlb {
namespace {

std::error_code errno_code(int value) { return {value, std::system_category()}; }

template <typename T, typename Key>
bool add_once(std::vector<T>& list, T value, Key key_of) {
  const auto key = key_of(value);
  if (std::any_of(list.begin(), list.end(), [&](const T& x) { return key_of(x) == key; }))
    return false;
  list.push_back(std::move(value));
  return true;
}

template <typename T, typename Key, typename K>
bool remove_all_of(std::vector<T>& list, const K& key, Key key_of) {
  return std::erase_if(list, [&](const T& x) { return key_of(x) == key; }) != 0;
}

const auto identity = [](const std::string& s) -> std::string_view { return s; };
const auto sysctl_key = [](const HostRecord::Sysctl& s) -> std::string_view { return s.key; };

}  // namespace

const HostRecord::Sysctl* HostRecord::sysctl(std::string_view key) const {
  auto it = std::find_if(sysctls.begin(), sysctls.end(), [&](const Sysctl& s) { return s.key == key; });
  return it == sysctls.end() ? nullptr : &*it;
}

bool HostRecord::has_vip(std::string_view vip) const {
  return std::find(vips.begin(), vips.end(), vip) != vips.end();
}

bool HostRecord::has_neighbour(std::string_view address) const {
  return std::find(neighbours.begin(), neighbours.end(), address) != neighbours.end();
}

bool HostRecord::add_sysctl(std::string key, std::string original) {
  return add_once(sysctls, Sysctl{std::move(key), std::move(original)}, sysctl_key);
}
bool HostRecord::remove_sysctl(std::string_view key) { return remove_all_of(sysctls, key, sysctl_key); }
bool HostRecord::add_vip(std::string vip) { return add_once(vips, std::move(vip), identity); }
bool HostRecord::remove_vip(std::string_view vip) { return remove_all_of(vips, vip, identity); }
bool HostRecord::add_neighbour(std::string address) {
  return add_once(neighbours, std::move(address), identity);
}
bool HostRecord::remove_neighbour(std::string_view address) {
  return remove_all_of(neighbours, address, identity);
}

std::string host_record_path(std::string_view run_dir, std::string_view node) {
  return fmt::format("{}/{}.host.json", run_dir, node);
}

std::uint64_t current_netns() {
  struct stat st {};
  if (::stat("/proc/thread-self/ns/net", &st) != 0 && ::stat("/proc/self/ns/net", &st) != 0) return 0;
  return st.st_ino;
}

std::expected<std::optional<HostRecord>, std::string> load_host_record(const std::string& path) {
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::optional<HostRecord>{};
    return std::unexpected(
        fmt::format("{}: cannot read the host record: {}", path, errno_code(errno).message()));
  }
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return std::unexpected(
          fmt::format("{}: cannot read the host record: {}", path, errno_code(errno).message()));
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  try {
    const auto j = nlohmann::json::parse(text);
    if (j.value("version", 0) != HostRecord::kVersion)
      return std::unexpected(fmt::format("{}: host record version {} is not {}", path,
                                         j.value("version", 0), HostRecord::kVersion));
    HostRecord r;
    r.node = j.at("node").get<std::string>();
    r.interface = j.at("interface").get<std::string>();
    r.netns = j.at("netns").get<std::uint64_t>();
    r.pin_dir = j.at("pin_dir").get<std::string>();
    r.created_pin_parent = j.at("created_pin_parent").get<bool>();
    for (const auto& s : j.at("sysctls"))
      r.sysctls.push_back({s.at("key").get<std::string>(), s.at("original").get<std::string>()});
    r.vips = j.at("vips").get<std::vector<std::string>>();
    r.neighbours = j.at("neighbours").get<std::vector<std::string>>();
    return r;
  } catch (const nlohmann::json::exception& e) {
    return std::unexpected(fmt::format("{}: not a host record: {}", path, e.what()));
  }
}

std::error_code save_host_record(const std::string& path, const HostRecord& r) {
  nlohmann::json sysctls = nlohmann::json::array();
  for (const auto& s : r.sysctls) sysctls.push_back({{"key", s.key}, {"original", s.original}});
  const nlohmann::json j{{"version", HostRecord::kVersion},
                         {"node", r.node},
                         {"interface", r.interface},
                         {"netns", r.netns},
                         {"pin_dir", r.pin_dir},
                         {"created_pin_parent", r.created_pin_parent},
                         {"sysctls", sysctls},
                         {"vips", r.vips},
                         {"neighbours", r.neighbours}};
  const std::string text = j.dump(2) + "\n";
  const std::string temp = path + ".tmp";
  {
    const UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) return errno_code(errno);
    std::size_t written = 0;
    while (written < text.size()) {
      const ssize_t n = ::write(fd.get(), text.data() + written, text.size() - written);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        ::unlink(temp.c_str());
        return errno_code(err);
      }
      written += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0) {
      const int err = errno;
      ::unlink(temp.c_str());
      return errno_code(err);
    }
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return errno_code(err);
  }
  return {};
}

std::error_code remove_host_record(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_code(errno);
  return {};
}

}  // namespace mixlb
