// Loading and checking the sidecar's configuration (see config.h).
//
// Three steps, each with one job. FileReader walks the TOML tree, rejects
// unknown keys and wrong types at the line where they are, and records in
// Config::locations where every value came from. The flag parser does the
// same for argv, overriding what the file said. validate() then judges the
// values and their combinations; it finds the location of the offending key
// in that map, so a rule is written once and its error points at the file
// line or the flag either way. Keys, flags, types and ranges come from the
// key table (config/keys.h) in all three, so a file value, a flag and a
// Config built in code meet the same limits.
#include "config/config.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <sys/un.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <limits>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "cluster/maglev.h"
#include "cluster/node_id.h"
#include "common/quote.h"
#include "config/keys.h"

namespace mixlb {
namespace {

// Kept equal to the project version in meson.build; a unit test compares them.
constexpr std::string_view kVersion = MIXLB_VERSION;  // from meson.build

constexpr std::size_t kMaxNodeNameLength = 63;
constexpr std::size_t kMaxInterfaceNameLength = 15;  // IFNAMSIZ - 1
constexpr std::size_t kMaxSocketPathLength = sizeof(sockaddr_un::sun_path) - 1;
constexpr std::size_t kMaxClusterNameLength = 64;
constexpr std::uint8_t kProtoTcp = 6;
constexpr std::uint8_t kProtoUdp = 17;

constexpr std::string_view kGossipBindKey = "gossip.bind";
// Text from the file or the command line, shown back in an error: as it
// is, in single quotes, when it is short and plain; otherwise cut, escaped
// and in double quotes (common/quote.h), so a 5 MB value or a NUL byte
// still makes a one-line message.
std::string shown(std::string_view text) {
  const bool plain = text.size() <= 128 && std::all_of(text.begin(), text.end(), [](char c) {
                       return c >= 0x20 && c < 0x7f && c != '\'';
                     });
  return plain ? "'" + std::string(text) + "'" : quote_input(text, 128);
}

// A key path in an error: quoted TOML keys may hold anything.
std::string shown_key(std::string_view key) {
  const bool plain = key.size() <= 128 && std::all_of(key.begin(), key.end(), [](char c) {
                       return c > 0x20 && c < 0x7f;
                     });
  return plain ? std::string(key) : quote_input(key, 128);
}

std::optional<std::string> range_problem(std::int64_t value, std::uint32_t min, std::uint32_t max) {
  if (value < min || value > max) return fmt::format("{} is out of range {}..{}", value, min, max);
  return std::nullopt;
}


std::string choice_problem(const KeySpec& key, std::string_view text) {
  return fmt::format("expected {}, got {}", key.choices, shown(text));
}

// "[node], [datapath], ..., [[vip]] or [[peer]]": the top-level keys.
std::string top_keys() {
  std::string out;
  for (std::string_view s : config_sections()) out += fmt::format("[{}], ", s);
  return out + "[[vip]] or [[peer]]";
}

std::string address_problem(std::string_view text) {
  return fmt::format("{} is not an IP address", shown(text));
}

std::string_view type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

std::string indexed(std::string_view base, std::size_t index) {
  return fmt::format("{}[{}]", base, index);
}

// Walks the parsed TOML document into a Config, checking structure and types.
class FileReader {
 public:
  FileReader(std::string_view file, Config& config) : file_(file), config_(config) {}

  void read(const toml::table& root) {
    const auto sections = config_sections();
    for (auto&& [key, node] : root) {
      const std::string name(key.str());
      if (std::find(sections.begin(), sections.end(), name) != sections.end()) {
        read_plain_table(name, node);
      } else if (name == "vip") {
        read_vips(node);
      } else if (name == "peer") {
        read_peers(node);
      } else {
        fail(key.source(), name, fmt::format("unknown key (expected {})", top_keys()));
      }
    }
  }

 private:
  [[noreturn]] void fail(const toml::source_region& where, std::string_view key,
                         std::string_view what) const {
    throw ConfigError(fmt::format("{}:{}: {}: {}", file_, where.begin.line, shown_key(key), what));
  }

  [[noreturn]] void fail(const toml::node& node, std::string_view key,
                         std::string_view what) const {
    fail(node.source(), key, what);
  }

  void note(const std::string& path, const toml::node& node, std::string shown = {}) {
    config_.locations[path] = SourceLocation{file_, node.source().begin.line, "", std::move(shown)};
  }

  const toml::table& expect_table(const toml::node& node, std::string_view key) const {
    if (const toml::table* table = node.as_table()) return *table;
    fail(node, key, fmt::format("expected a table, got {}", type_name(node)));
  }

  std::string expect_string(const toml::node& node, std::string_view key) const {
    if (const auto* value = node.as_string()) return value->get();
    fail(node, key, fmt::format("expected a string, got {}", type_name(node)));
  }

  bool expect_boolean(const toml::node& node, std::string_view key) const {
    if (const auto* value = node.as_boolean()) return value->get();
    fail(node, key, fmt::format("expected a boolean, got {}", type_name(node)));
  }

  std::int64_t expect_integer(const toml::node& node, std::string_view key) const {
    if (const auto* value = node.as_integer()) return value->get();
    fail(node, key, fmt::format("expected an integer, got {}", type_name(node)));
  }

  std::uint32_t expect_int_in(const toml::node& node, std::string_view key, std::uint32_t min,
                              std::uint32_t max) const {
    const std::int64_t value = expect_integer(node, key);
    if (auto problem = range_problem(value, min, max)) fail(node, key, *problem);
    return static_cast<std::uint32_t>(value);
  }

  Address expect_address(const toml::node& node, std::string_view key) const {
    const std::string text = expect_string(node, key);
    const auto address = Address::parse(text);
    if (!address) fail(node, key, address_problem(text));
    return *address;
  }

  std::uint16_t expect_port(const toml::node& node, std::string_view key) const {
    return static_cast<std::uint16_t>(expect_int_in(node, key, 1, 65535));
  }

  // A section: scalar keys only, each a row of the key table.
  void read_plain_table(const std::string& table_name, const toml::node& node) {
    const toml::table& table = expect_table(node, table_name);
    note(table_name, node);
    for (auto&& [key, value] : table) {
      const std::string path = table_name + "." + std::string(key.str());
      const KeySpec* spec = find_key(path);
      if (!spec) {
        fail(key.source(), path,
             fmt::format("unknown key ([{}] takes {})", table_name, section_key_names(table_name)));
      }
      read_scalar(*spec, value);
      note(path, value);
    }
  }

  void read_scalar(const KeySpec& key, const toml::node& value) {
    const std::string_view path = key.path;
    switch (key.type) {
      case KeyType::kString:
        key.string(config_) = expect_string(value, path);
        return;
      case KeyType::kInteger:
        key.integer(config_) = expect_int_in(value, path, key.min, key.max);
        return;
      case KeyType::kBoolean:
        key.boolean(config_) = expect_boolean(value, path);
        return;
      case KeyType::kAddress:
        key.address(config_) = expect_address(value, path);
        return;
      case KeyType::kChoice: {
        const std::string text = expect_string(value, path);
        if (!key.choose(config_, text)) fail(value, path, choice_problem(key, text));
        return;
      }
      case KeyType::kStrings: {
        const toml::array* array = value.as_array();
        if (array == nullptr) fail(value, path, fmt::format("expected an array of strings, got {}", type_name(value)));
        std::vector<std::string>& list = key.strings(config_);
        list.clear();
        for (std::size_t i = 0; i < array->size(); ++i) {
          const std::string item = indexed(path, i);
          list.push_back(expect_string((*array)[i], item));
          note(item, (*array)[i]);
        }
        return;
      }
    }
  }

  const toml::array& expect_table_array(const toml::node& node, std::string_view key) const {
    const toml::array* array = node.as_array();
    if (array == nullptr) {
      fail(node, key,
           fmt::format("expected an array of tables ([[{}]] entries), got {}", key,
                       type_name(node)));
    }
    return *array;
  }

  void read_vips(const toml::node& node) {
    const toml::array& array = expect_table_array(node, "vip");
    note("vip", node);
    for (std::size_t i = 0; i < array.size(); ++i) {
      const std::string entry = indexed("vip", i);
      const toml::table& table = expect_table(array[i], entry);
      note(entry, array[i]);
      VipConfig vip;
      const toml::node* port_key = nullptr;
      std::string port_key_name;
      for (auto&& [key, value] : table) {
        const std::string name(key.str());
        const std::string path = entry + "." + name;
        if (name == "address") {
          vip.address = expect_address(value, path);
          note(path, value);
        } else if (name == "protocol") {
          vip.protocol = read_protocol(value, path);
          note(path, value);
        } else if (name == "port" || name == "ports") {
          if (port_key != nullptr) {
            fail(key.source(), path,
                 fmt::format("give either port or ports, not both ({} is on line {})",
                             port_key_name, port_key->source().begin.line));
          }
          port_key = &value;
          port_key_name = name;
          vip.ports = read_ports(entry, name, value);
        } else if (name == "nodes") {
          vip.nodes = read_nodes(path, value);
        } else if (name == "health") {
          const std::string text = expect_string(value, path);
          Config probe;
          const KeySpec& kind = *find_key("health.kind");
          if (!kind.choose(probe, text)) fail(value, path, choice_problem(kind, text));
          vip.health = probe.health.kind;
          note(path, value);
        } else if (name == "health_port") {
          vip.health_port = expect_port(value, path);
          note(path, value);
        } else if (name == "health_path") {
          vip.health_path = expect_string(value, path);
          note(path, value);
        } else {
          fail(key.source(), path,
               fmt::format("unknown key ([[vip]] takes {})", entry_key_names("vip")));
        }
      }
      // Neither port nor ports: the VIP takes every port of its address.
      config_.vips.push_back(std::move(vip));
    }
  }

  std::uint8_t read_protocol(const toml::node& value, std::string_view path) const {
    const std::string text = expect_string(value, path);
    if (text == "tcp") return kProtoTcp;
    if (text == "udp") return kProtoUdp;
    fail(value, path, fmt::format("expected tcp or udp, got {}", shown(text)));
  }

  // The names of the nodes serving a VIP; whether they exist is judged by
  // validate(), once flags may have replaced the peer list.
  std::vector<std::string> read_nodes(const std::string& path, const toml::node& value) {
    const toml::array* array = value.as_array();
    if (array == nullptr) {
      fail(value, path, fmt::format("expected an array of node names, got {}", type_name(value)));
    }
    if (array->empty()) {
      fail(value, path, "must list at least one node (leave nodes out for every node)");
    }
    note(path, value);
    std::vector<std::string> nodes;
    for (std::size_t j = 0; j < array->size(); ++j) {
      const std::string node_path = indexed(path, j);
      nodes.push_back(expect_string((*array)[j], node_path));
      note(node_path, (*array)[j]);
    }
    return nodes;
  }

  std::vector<std::uint16_t> read_ports(const std::string& entry, const std::string& name,
                                        const toml::node& value) {
    const std::string path = entry + "." + name;
    std::vector<std::uint16_t> ports;
    if (name == "port") {
      ports.push_back(expect_port(value, path));
      note(path, value);
      note(entry + ".ports", value, path);
      note(entry + ".ports[0]", value, path);
      return ports;
    }
    const toml::array* array = value.as_array();
    if (array == nullptr) {
      fail(value, path, fmt::format("expected an array of ports, got {}", type_name(value)));
    }
    if (array->empty()) fail(value, path, "must list at least one port");
    note(path, value);
    for (std::size_t j = 0; j < array->size(); ++j) {
      const std::string port_path = indexed(path, j);
      ports.push_back(expect_port((*array)[j], port_path));
      note(port_path, (*array)[j]);
    }
    return ports;
  }

  void read_peers(const toml::node& node) {
    const toml::array& array = expect_table_array(node, "peer");
    note("peer", node);
    for (std::size_t i = 0; i < array.size(); ++i) {
      const std::string entry = indexed("peer", i);
      const toml::table& table = expect_table(array[i], entry);
      note(entry, array[i]);
      PeerConfig peer;
      for (auto&& [key, value] : table) {
        const std::string name(key.str());
        const std::string path = entry + "." + name;
        if (name == "name") {
          peer.name = expect_string(value, path);
        } else if (name == "address") {
          peer.address = expect_address(value, path);
        } else if (name == "weight") {
          peer.weight = expect_int_in(value, path, 0, kMaxMaglevWeight);
        } else {
          fail(key.source(), path,
               fmt::format("unknown key ([[peer]] takes {})", entry_key_names("peer")));
        }
        note(path, value);
      }
      config_.peers.push_back(std::move(peer));
    }
  }

  std::string file_;
  Config& config_;
};

Config parse_unvalidated(std::string_view text, std::string_view path) {
  Config config;
  config.source = std::string(path);
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("{}:{}:{}: {}", path, e.source().begin.line,
                                  e.source().begin.column, e.description()));
  }
  FileReader(path, config).read(root);
  return config;
}

std::string read_file(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    const int error = errno;
    throw ConfigError(
        fmt::format("{}: cannot open the config file: {}", path, std::strerror(error)));
  }
  errno = 0;
  std::string text;
  char buffer[8192];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) text.append(buffer, n);
  // fread() sets errno on a failed read(); EIO stands in if it did not.
  const int error = std::ferror(file) == 0 ? 0 : (errno != 0 ? errno : EIO);
  std::fclose(file);
  if (error != 0) {
    throw ConfigError(
        fmt::format("{}: cannot read the config file: {}", path, std::strerror(error)));
  }
  return text;
}

Config load_unvalidated(const std::string& path) {
  return parse_unvalidated(read_file(path), path);
}

// The key path one level up: "vip[1].ports[0]" -> "vip[1].ports" -> "vip[1]"
// -> "vip" -> "".
std::string parent_key(std::string_view key) {
  if (!key.empty() && key.back() == ']') {
    const std::size_t open = key.rfind('[');
    return std::string(key.substr(0, open == std::string_view::npos ? 0 : open));
  }
  const std::size_t dot = key.rfind('.');
  return dot == std::string_view::npos ? std::string() : std::string(key.substr(0, dot));
}

// 1..max_length characters of A-Z, a-z, 0-9, '.', '_' and '-': node and
// cluster names.
bool valid_name(std::string_view name, std::size_t max_length) {
  if (name.empty() || name.size() > max_length) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

bool valid_node_name(std::string_view name) { return valid_name(name, kMaxNodeNameLength); }

bool valid_cluster_name(std::string_view name) { return valid_name(name, kMaxClusterNameLength); }

// A DNS host name (RFC 1123): labels of 1..63 letters, digits, '-' (and
// '_', which resolvers pass on), not starting or ending with '-', at most
// 253 characters with an optional final dot, and a last label that is not
// all digits (that is a broken IPv4 address, not a name).
bool valid_host_name(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return false;
  std::string_view last;
  for (std::size_t start = 0; start <= name.size();) {
    const std::size_t end = std::min(name.find('.', start), name.size());
    const std::string_view label = name.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    const bool ok = std::all_of(label.begin(), label.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
             c == '_';
    });
    if (!ok) return false;
    last = label;
    start = end + 1;
  }
  return !std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_unspecified(const Address& address) {
  return address.family != 0 && std::all_of(address.words.begin(), address.words.end(),
                                            [](std::uint32_t word) { return word == 0; });
}

std::string_view family_name(const Address& address) { return address.is_v6() ? "IPv6" : "IPv4"; }

// The kernel's dev_valid_name(): 1..15 bytes, not "." or "..", and none of
// '/', ':' or whitespace.
bool valid_interface_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxInterfaceNameLength || name == "." || name == "..") {
    return false;
  }
  return std::none_of(name.begin(), name.end(), [](char c) {
    return c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
           c == '\r';
  });
}

// Why `address` can be neither a node nor a VIP, or nullopt when it can.
// IPv4: 0.0.0.0, 255.255.255.255 and 224.0.0.0/4. IPv6: ::, ff00::/8,
// link-local fe80::/10 (it names no interface, so neither the upstream router
// nor bpf_fib_lookup can route to it) and IPv4-mapped ::ffff:0:0/96 (the
// data path keys IPv4 in its own form, so the mapped form would never match).
std::optional<std::string> unicast_problem(const Address& address) {
  const std::string text = address.to_string();
  const std::string not_unicast = fmt::format("{} is not a unicast address", text);
  if (address.is_v4()) {
    const std::uint32_t host = ntohl(address.words[0]);
    if (host == 0 || host == 0xffffffffu || (host >> 28) == 0xeu) return not_unicast;
    return std::nullopt;
  }
  const std::uint32_t first = ntohl(address.words[0]);
  const bool unspecified = std::all_of(address.words.begin(), address.words.end(),
                                       [](std::uint32_t word) { return word == 0; });
  if (unspecified || (first >> 24) == 0xffu) return not_unicast;
  if ((first >> 22) == (0xfe80u >> 6)) {
    return fmt::format("{} is a link-local address; use a global or unique-local one", text);
  }
  if (address.words[0] == 0 && address.words[1] == 0 && ntohl(address.words[2]) == 0xffffu) {
    return fmt::format("{} is an IPv4-mapped address; write it as {}", text,
                       Address::v4(address.words[3]).to_string());
  }
  return std::nullopt;
}

std::string protocol_name(std::uint8_t protocol) {
  if (protocol == kProtoTcp) return "tcp";
  if (protocol == kProtoUdp) return "udp";
  return fmt::format("protocol {}", protocol);
}

// "10.100.0.1:80/tcp", "[fd00::1]:*/udp": a VIP entry as messages show it.
std::string vip_entry_name(const Address& address, std::uint16_t port, std::uint8_t protocol) {
  const std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  const std::string port_text = port == 0 ? "*" : std::to_string(port);
  return fmt::format("{}:{}/{}", host, port_text, protocol_name(protocol));
}

// The cross-field and value checks of validate(), with errors located
// through Config::locations.
class Checker {
 public:
  explicit Checker(Config& config) : config_(config) {}

  void run() {
    check_node();
    check_sizes();
    check_vips();
    check_peers();
    check_vip_nodes();
    check_health();
    check_conntrack();
    check_gossip();
    check_metrics();
  }

 private:
  const SourceLocation* location(std::string_view key) const {
    const auto it = config_.locations.find(key);
    return it == config_.locations.end() ? nullptr : &it->second;
  }

  bool is_set(std::string_view key) const { return location(key) != nullptr; }

  // "<file>:<line>: <key>: ", "<flag>: " or "<key>: ", from the nearest
  // recorded location of the key or one of its parents.
  std::string prefix(std::string_view key) const {
    for (std::string k(key); !k.empty(); k = parent_key(k)) {
      const SourceLocation* where = location(k);
      if (where == nullptr) continue;
      if (!where->flag.empty()) return where->flag + ": ";
      const std::string shown = (k == key && !where->key.empty()) ? where->key : std::string(key);
      return fmt::format("{}:{}: {}: ", where->file, where->line, shown);
    }
    if (!config_.source.empty()) return fmt::format("{}:1: {}: ", config_.source, key);
    return fmt::format("{}: ", key);
  }

  // How another entry is named in a message about a clash with it: its key
  // and line, or the flag that gave it.
  std::string describe(std::string_view key) const {
    for (std::string k(key); !k.empty(); k = parent_key(k)) {
      const SourceLocation* where = location(k);
      if (where == nullptr) continue;
      if (!where->flag.empty()) return fmt::format("an earlier {}", where->flag);
      const std::string shown = (k == key && !where->key.empty()) ? where->key : std::string(key);
      return fmt::format("{} (line {})", shown, where->line);
    }
    return std::string(key);
  }

  [[noreturn]] void fail(std::string_view key, std::string_view what) const {
    throw ConfigError(prefix(key) + std::string(what));
  }

  // A required [node] key that is empty: missing from the file, or from the
  // flags when there is no file.
  void require(std::string_view key, std::string_view flag, const std::string& value) const {
    if (!value.empty() || is_set(key)) return;
    if (config_.source.empty()) {
      throw ConfigError(fmt::format("{}: required when no --config file is given", flag));
    }
    fail(key, fmt::format("required key is missing (or give {})", flag));
  }

  void check_node() {
    require("node.name", "--name", config_.node.name);
    if (!valid_node_name(config_.node.name)) {
      fail("node.name", fmt::format("{} is not a valid node name: use 1..{} characters of A-Z, "
                                    "a-z, 0-9, '.', '_' and '-'",
                                    shown(config_.node.name), kMaxNodeNameLength));
    }
    require("node.interface", "--interface", config_.node.interface);
    if (!valid_interface_name(config_.node.interface)) {
      fail("node.interface", fmt::format("{} is not a valid interface name: 1..{} bytes, not '.' "
                                         "or '..', without '/', ':' or whitespace",
                                         shown(config_.node.interface), kMaxInterfaceNameLength));
    }
    if (config_.node.address) check_host_address("node.address", *config_.node.address);
    if (config_.node.run_dir.empty() || config_.node.run_dir.front() != '/') {
      fail("node.run_dir", fmt::format("{} is not an absolute path", shown(config_.node.run_dir)));
    }
    if (config_.node.admin_socket.empty()) {
      if (is_set("node.admin_socket")) fail("node.admin_socket", "must not be empty");
      config_.node.admin_socket = fmt::format("{}/{}.sock", config_.node.run_dir, config_.node.name);
    }
    if (config_.node.admin_socket.size() > kMaxSocketPathLength) {
      fail("node.admin_socket",
           fmt::format("{} is {} bytes long; a unix socket path holds at most {}",
                       shown(config_.node.admin_socket), config_.node.admin_socket.size(), kMaxSocketPathLength));
    }
    if (config_.node.bpffs_dir.empty() || config_.node.bpffs_dir.front() != '/') {
      fail("node.bpffs_dir", fmt::format("{} is not an absolute path", shown(config_.node.bpffs_dir)));
    }
    // A Config built in code may hold any word; the file and flags hold
    // only the choices.
    const KeySpec& level = *find_key("node.log_level");
    if (Config probe; !level.choose(probe, config_.node.log_level))
      fail("node.log_level", choice_problem(level, config_.node.log_level));
  }

  // The app's checks, one per service (settings.h: service_checks): a
  // timeout shorter than the interval, absolute paths, and a port to check
  // for every VIP entry that asks for a check by its own `health` key (a UDP
  // or every-port entry has no TCP port of its own: health_port says where).
  // [conntrack]: 0 turns a rule (or the sweeper) off; a value below the
  // smallest sensible one is a typo, such as seconds for milliseconds.
  void check_conntrack() const {
    const auto at_least = [&](std::string_view key, std::uint32_t value, std::uint32_t min) {
      if (value != 0 && value < min)
        fail(key, fmt::format("{} is out of range: 0 (off), or {}..{}", value, min, find_key(key)->max));
    };
    if (const auto half = config_.datapath.half_open_entries; half != 0 && half < 1024)
      fail("datapath.half_open_entries",
           fmt::format("{} is out of range: 0 (a quarter of conntrack_entries), or 1024..67108864", half));
    at_least("conntrack.sweep_interval_ms", config_.conntrack.sweep_interval_ms, 100);
    at_least("conntrack.udp_idle_ms", config_.conntrack.udp_idle_ms, 1000);
    at_least("conntrack.tcp_closing_idle_ms", config_.conntrack.tcp_closing_idle_ms, 1000);
    at_least("conntrack.tcp_idle_ms", config_.conntrack.tcp_idle_ms, 1000);
    if (config_.conntrack.invalidation == InvalidationMode::kGossip && !config_.gossip.enabled)
      fail("conntrack.invalidation", "`gossip` needs gossip, which is off (gossip.enabled = false)");
    const auto& group = config_.conntrack.invalidation_group;
    if (!group || group->family == 0) {
      fail("conntrack.invalidation_group", "holds no address");
    } else if (!group->is_v4() || (ntohl(group->words[0]) >> 28) != 0xe) {
      fail("conntrack.invalidation_group",
           fmt::format("{} is not an IPv4 multicast address (224.0.0.0/4)", group->to_string()));
    }
  }

  void check_health() {
    const HealthKind kind = config_.health.kind;
    if (config_.health.timeout_ms >= config_.health.interval_ms) {
      fail("health.timeout_ms",
           fmt::format("{} ms is not shorter than health.interval_ms = {} ms",
                       config_.health.timeout_ms, config_.health.interval_ms));
    }
    if (kind == HealthKind::kHttp) check_http_path("health.path", config_.health.path);
    for (std::size_t i = 0; i < config_.vips.size(); ++i) {
      const VipConfig& v = config_.vips[i];
      if (v.health_path) check_http_path(indexed("vip", i) + ".health_path", *v.health_path);
      const bool own_port = v.protocol == kProtoTcp && !v.ports.empty();
      if (v.health && *v.health != HealthKind::kNone && v.health_port == 0 && !own_port) {
        fail(indexed("vip", i) + ".health",
             fmt::format("a {} entry has no TCP port of its own to check: set health_port "
                         "(the TCP port where the app answers for it)",
                         v.ports.empty() ? "every-port" : "udp"));
      }
    }
  }

  void check_http_path(const std::string& key, const std::string& path) const {
    if (path.empty() || path.front() != '/' || path.find_first_of(" \r\n") != std::string::npos)
      fail(key, fmt::format("{} is not an absolute HTTP path", shown(path)));
  }

  // [gossip]. Its values are checked whether gossip is on or off, so a file
  // that is wrong stays wrong when --no-gossip is dropped; only the bind
  // family, which depends on which address the node uses, is judged only
  // when gossip will run. The keyring file is read by the daemon at start.
  void check_gossip() const {
    if (!valid_cluster_name(config_.gossip.cluster)) {
      fail("gossip.cluster",
           fmt::format("{} is not a valid cluster name: use 1..{} characters of A-Z, a-z, 0-9, "
                       "'.', '_' and '-'",
                       shown(config_.gossip.cluster), kMaxClusterNameLength));
    }
    if (config_.gossip.keyring.empty() && is_set("gossip.keyring")) {
      fail("gossip.keyring", "must not be empty");
    }

    if (config_.gossip.probe_timeout_ms >= config_.gossip.probe_interval_ms) {
      fail("gossip.probe_timeout_ms",
           fmt::format("{} ms is not shorter than gossip.probe_interval_ms = {} ms",
                       config_.gossip.probe_timeout_ms, config_.gossip.probe_interval_ms));
    }
    if (config_.gossip.enabled && config_.node.leave_timeout_ms > config_.gossip.flow_grace_ms) {
      fail("node.leave_timeout_ms",
           fmt::format("{} ms is longer than gossip.flow_grace_ms = {} ms: the other nodes would "
                       "stop forwarding this node's established flows before its leave ends",
                       config_.node.leave_timeout_ms, config_.gossip.flow_grace_ms));
    }
    for (std::size_t i = 0; i < config_.gossip.seeds.size(); ++i) {
      const auto seed = parse_gossip_seed(config_.gossip.seeds[i], 1);
      if (!seed) fail(indexed("gossip.seeds", i), seed.error());
    }
    if (config_.gossip.enabled) check_seed_families();
    if (!config_.gossip.bind) return;
    const Address& bind = *config_.gossip.bind;
    if (bind.family == 0) fail(kGossipBindKey, "holds no address (leave it unset for the default)");
    // The unspecified address (0.0.0.0, ::) binds every local address of its
    // family; members still reach this node at node.address.
    if (!is_unspecified(bind)) check_host_address(kGossipBindKey, bind);
    if (config_.gossip.enabled && config_.node.address &&
        bind.family != config_.node.address->family) {
      fail(kGossipBindKey,
           fmt::format("{} is {} but node.address {} is {}; gossip binds in the family of the "
                       "node's address",
                       bind.to_string(), family_name(bind), config_.node.address->to_string(),
                       family_name(*config_.node.address)));
    }
  }

  // Gossip runs over one family, the one of the address it binds (or of
  // node.address, or of this node's own [[peer]] entry, or IPv4 from the
  // interface): a seed of the other family could never be reached, and the
  // node would try to join through it forever.
  void check_seed_families() const {
    std::string source;
    const Address* own = nullptr;
    if (config_.gossip.bind) {
      own = &*config_.gossip.bind;
      source = "gossip.bind";
    } else if (config_.node.address) {
      own = &*config_.node.address;
      source = "node.address";
    } else {
      for (const PeerConfig& p : config_.peers)
        if (p.name == config_.node.name) {
          own = &p.address;
          source = "this node's [[peer]] entry";
        }
    }
    const int family = own ? own->family : AF_INET;
    const std::string because =
        own ? fmt::format("{} {}", source, own->to_string())
            : std::string("its address comes from the interface's first IPv4 address");
    for (std::size_t i = 0; i < config_.peers.size(); ++i) {
      const PeerConfig& p = config_.peers[i];
      if (p.name == config_.node.name || p.address.family == 0 || p.address.family == family) continue;
      fail(indexed("peer", i) + ".address",
           fmt::format("{} is {} but this node gossips over {} ({}); a gossip seed must be in the "
                       "node's family",
                       p.address.to_string(), family_name(p.address),
                       family == AF_INET6 ? "IPv6" : "IPv4", because));
    }
    for (std::size_t i = 0; i < config_.gossip.seeds.size(); ++i) {
      const auto seed = parse_gossip_seed(config_.gossip.seeds[i], 1);
      if (!seed->address || seed->address->family == family) continue;
      fail(indexed("gossip.seeds", i),
           fmt::format("{} is {} but this node gossips over {} ({}); a gossip seed must be in the "
                       "node's family",
                       seed->address->to_string(), family_name(*seed->address),
                       family == AF_INET6 ? "IPv6" : "IPv4", because));
    }
  }

  // "off", or ADDRESS:PORT with an IPv6 address in brackets; the parts go
  // to metrics.address and metrics.port.
  void check_metrics() {
    MetricsSection& m = config_.metrics;
    m.address.reset();
    m.port = 0;
    const std::string_view text = m.listen;
    if (text == "off") return;
    const auto bad = [&] {
      fail("metrics.listen", fmt::format("expected ADDRESS:PORT ([ADDRESS]:PORT for IPv6) or off, "
                                         "got {}", shown(text)));
    };
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) bad();
    std::string_view host = text.substr(0, colon);
    if (host.starts_with('[') != host.ends_with(']')) bad();
    if (host.starts_with('[')) host = host.substr(1, host.size() - 2);
    else if (host.find(':') != std::string_view::npos) bad();
    const auto address = Address::parse(host);
    if (!address) bad();
    std::uint32_t port = 0;
    const std::string_view port_text = text.substr(colon + 1);
    const auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port == 0 || port > 65535)
      bad();
    m.address = *address;
    m.port = static_cast<std::uint16_t>(port);
  }

  void check_host_address(std::string_view key, const Address& address) const {
    if (address.family == 0) fail(key, "required key is missing");
    if (auto problem = unicast_problem(address)) fail(key, *problem);
  }

  // Every integer key's range, from the key table: a Config built in code
  // meets the same limits as the file and the flags.
  void check_sizes() const {
    for (const KeySpec& key : config_keys()) {
      if (key.type != KeyType::kInteger) continue;
      const std::uint32_t value = key.integer(config_);
      if (auto problem = range_problem(value, key.min, key.max)) fail(key.path, *problem);
    }
    if (!is_prime(config_.datapath.maglev_table_size)) {
      fail("datapath.maglev_table_size",
           fmt::format("{} is not a prime (Maglev needs a prime table size; 65537 is one)",
                       config_.datapath.maglev_table_size));
    }
    const std::uint64_t slots =
        std::uint64_t{config_.datapath.max_vips} * 2 * std::uint64_t{config_.datapath.maglev_table_size};
    if (slots > std::numeric_limits<std::uint32_t>::max()) {
      // Within their ranges only a large max_vips can overflow, so blame it.
      fail("datapath.max_vips",
           fmt::format("max_vips * 2 * maglev_table_size = {} * 2 * {} = {} Maglev slots do "
                       "not fit in 32 bits; lower one of them",
                       config_.datapath.max_vips, config_.datapath.maglev_table_size, slots));
    }
  }

  // Every (address, protocol, port) is one VIP entry, and so is an address
  // without ports (every port, key port 0). An exact port and the all-ports
  // entry of the same address may coexist: the data path tries the exact port
  // first. Only the same entry twice is an error.
  void check_vips() const {
    // (address, protocol, port) -> key path of the entry that has it.
    std::map<std::tuple<Address, std::uint8_t, std::uint16_t>, std::string> seen;
    std::uint32_t entries = 0;
    auto count = [&](const VipConfig& vip, std::uint16_t port, const std::string& key) {
      const auto [it, inserted] = seen.emplace(std::tuple(vip.address, vip.protocol, port), key);
      if (!inserted) {
        fail(key,
             fmt::format("{} is already configured by {}",
                         vip_entry_name(vip.address, port, vip.protocol), describe(it->second)));
      }
      if (++entries > config_.datapath.max_vips) {
        fail(key, fmt::format("this is VIP entry {}, more than datapath.max_vips = {} (each "
                              "address and port is one entry, and so is an address with all "
                              "ports)",
                              entries, config_.datapath.max_vips));
      }
    };
    for (std::size_t i = 0; i < config_.vips.size(); ++i) {
      const VipConfig& vip = config_.vips[i];
      const std::string entry = indexed("vip", i);
      const std::string address_key = entry + ".address";
      if (vip.address.family == 0) fail(address_key, "required key is missing");
      if (auto problem = unicast_problem(vip.address)) fail(address_key, *problem);
      if (vip.protocol != kProtoTcp && vip.protocol != kProtoUdp) {
        fail(entry + ".protocol",
             fmt::format("expected tcp or udp, got {}", protocol_name(vip.protocol)));
      }
      if (vip.ports.empty()) count(vip, 0, entry);
      for (std::size_t j = 0; j < vip.ports.size(); ++j) {
        const std::string port_key = indexed(entry + ".ports", j);
        if (vip.ports[j] == 0) fail(port_key, "0 is out of range 1..65535");
        count(vip, vip.ports[j], port_key);
      }
    }
  }

  // A VIP's serving nodes are this node or peers, each named once. Runs after
  // check_peers(), so the names it compares with are valid.
  void check_vip_nodes() const {
    std::set<std::string, std::less<>> known{config_.node.name};
    for (const PeerConfig& peer : config_.peers) known.insert(peer.name);
    for (std::size_t i = 0; i < config_.vips.size(); ++i) {
      const std::vector<std::string>& nodes = config_.vips[i].nodes;
      const std::string nodes_key = indexed("vip", i) + ".nodes";
      std::map<std::string, std::string, std::less<>> listed;  // name -> key path
      for (std::size_t j = 0; j < nodes.size(); ++j) {
        const std::string key = indexed(nodes_key, j);
        const std::string& name = nodes[j];
        if (!known.contains(name)) {
          fail(key, fmt::format("{} is neither this node ('{}') nor one of its peers", shown(name),
                                config_.node.name));
        }
        if (const auto it = listed.find(name); it != listed.end()) {
          fail(key, fmt::format("'{}' is already listed as {}", name, describe(it->second)));
        }
        listed.emplace(name, key);
      }
    }
  }

  void check_peers() {
    std::map<std::string, std::string, std::less<>> names;  // name -> entry
    std::map<Address, std::size_t> addresses;               // address -> peer index
    std::map<std::uint32_t, std::string> ids;               // node id -> name
    ids.emplace(node_id_for(config_.node.name), config_.node.name);
    std::uint32_t nodes = 1;  // this one
    for (std::size_t i = 0; i < config_.peers.size(); ++i) {
      const PeerConfig& peer = config_.peers[i];
      const std::string entry = indexed("peer", i);
      const std::string name_key = entry + ".name";
      const std::string address_key = entry + ".address";
      if (peer.name.empty() && !is_set(name_key)) fail(name_key, "required key is missing");
      if (!valid_node_name(peer.name)) {
        fail(name_key, fmt::format("{} is not a valid node name: use 1..{} characters of A-Z, "
                                   "a-z, 0-9, '.', '_' and '-'",
                                   shown(peer.name), kMaxNodeNameLength));
      }
      check_host_address(address_key, peer.address);
      if (auto problem = range_problem(peer.weight, 0, kMaxMaglevWeight)) {
        fail(entry + ".weight", *problem);
      }
      if (const auto it = names.find(peer.name); it != names.end()) {
        fail(name_key, fmt::format("'{}' is already used by {}", peer.name, describe(it->second)));
      }
      names.emplace(peer.name, entry);
      if (const auto it = addresses.find(peer.address); it != addresses.end()) {
        fail(address_key,
             fmt::format("{} is already the address of '{}', {}", peer.address.to_string(),
                         config_.peers[it->second].name, describe(indexed("peer", it->second))));
      }
      addresses.emplace(peer.address, i);

      const bool self = peer.name == config_.node.name;
      if (self && config_.node.address && peer.address != *config_.node.address) {
        fail(address_key,
             fmt::format("this is the entry of this node ('{}') but its address {} "
                         "differs from node.address {}",
                         peer.name, peer.address.to_string(), config_.node.address->to_string()));
      }
      if (!self && config_.node.address && peer.address == *config_.node.address) {
        fail(address_key, fmt::format("{} is node.address, the address of this node ('{}'), but "
                                      "this entry is named '{}'",
                                      peer.address.to_string(), config_.node.name, peer.name));
      }
      if (self) {
        check_own_weight(entry, peer);
        continue;
      }
      const std::uint32_t id = node_id_for(peer.name);
      if (const auto it = ids.find(id); it != ids.end()) {
        fail(name_key, fmt::format("'{}' and '{}' have the same node id {:#010x}; rename one of "
                                   "them",
                                   peer.name, it->second, id));
      }
      ids.emplace(id, peer.name);
      if (++nodes > config_.datapath.max_nodes) {
        fail(entry, fmt::format("{} nodes (this one and its peers) are more than "
                                "datapath.max_nodes = {}",
                                nodes, config_.datapath.max_nodes));
      }
    }
    if (config_.datapath.maglev_table_size <= nodes) {
      fail("datapath.maglev_table_size",
           fmt::format("{} slots are too few for {} nodes; the table must be larger than the "
                       "number of nodes",
                       config_.datapath.maglev_table_size, nodes));
    }
  }

  // The weight of this node's own [[peer]] entry is what the other nodes,
  // reading the same list, give it in their tables, so node.weight must agree
  // with it; when node.weight is not set, the entry sets it. A Config built in
  // code has no record of what was set, so there both count as set.
  void check_own_weight(const std::string& entry, const PeerConfig& peer) {
    const bool in_code = config_.locations.empty();
    if (!in_code && !is_set(entry + ".weight")) return;
    if ((in_code || is_set("node.weight")) && peer.weight != config_.node.weight) {
      fail(entry + ".weight",
           fmt::format("this is the entry of this node ('{}') but its weight {} differs from "
                       "node.weight {}",
                       peer.name, peer.weight, config_.node.weight));
    }
    config_.node.weight = peer.weight;
  }

  Config& config_;
};

// --- flags -----------------------------------------------------------------

constexpr std::string_view kUsageHead = R"(Usage: mixlb [--config FILE] [flags]
       mixlb cleanup --name NODE [--run-dir DIR] [--bpffs-dir DIR]
       mixlb keygen FILE

mixlb is the per-node sidecar of the mixlb layer-4 load balancer. Settings come
from the TOML file given with --config; the flags below override it. Without
--config, the flags alone must name the node and its interface. SIGTERM stops
it for a restart (the data path stays for the next sidecar); `mixlbctl leave`
leaves the cluster and removes everything; `mixlb cleanup` (see its --help)
removes what a sidecar that is gone left on the host; `mixlb keygen FILE`
writes a new keyring file.

  -c, --config FILE            configuration file (see docs/configuration.md)
)";

constexpr std::string_view kUsageTail = R"(      --peer NAME=ADDR[@WEIGHT]
                               a cluster member, with its Maglev weight (default
                               1); repeat for each. Together the --peer flags
                               replace the file's [[peer]] list. With gossip
                               they are the seeds, and weights apply only
                               with --no-gossip.
      --vip ADDR:PORT[/PROTO]  a VIP: one port, or * for every port; PROTO is
                               tcp (the default) or udp; an IPv6 address goes in
                               brackets ([fd00::1]:443/tcp). Repeat for each.
                               Together the --vip flags replace the file's
                               [[vip]] list.
  -h, --help                   print this help and exit
      --version                print the version and exit

Flags with a value take "--flag value" or "--flag=value".
)";

struct Flag {
  std::string name;  // long form, "--config"
  std::string value;
};

// A flag that takes a value: one of a key (but a boolean's), or a list's.
bool takes_value(std::string_view flag) {
  if (flag == "--config" || flag == "--peer" || flag == "--vip") return true;
  const KeySpec* key = find_flag(flag);
  return key && key->type != KeyType::kBoolean;
}

// A flag without a value: the flag of a boolean key ("--no-gossip").
bool is_switch(std::string_view flag) {
  const KeySpec* key = find_flag(flag);
  return key && key->type == KeyType::kBoolean;
}

std::uint32_t parse_flag_int(const Flag& flag, const KeySpec& key) {
  std::int64_t value = 0;
  const char* end = flag.value.data() + flag.value.size();
  const auto [ptr, ec] = std::from_chars(flag.value.data(), end, value);
  if (ec != std::errc() || ptr != end || flag.value.empty()) {
    throw ConfigError(fmt::format("{}: expected an integer, got {}", flag.name, shown(flag.value)));
  }
  if (auto problem = range_problem(value, key.min, key.max)) {
    throw ConfigError(fmt::format("{}: {}", flag.name, *problem));
  }
  return static_cast<std::uint32_t>(value);
}

// The help of a key, as short as --help wants it: its first sentence.
std::string_view first_sentence(std::string_view help) {
  const auto end = help.find(". ");
  return end == std::string_view::npos ? help : help.substr(0, end + 1);
}

// Wraps `text` to lines of at most `width`, each after `indent` spaces.
std::string wrap(std::string_view text, std::size_t indent, std::size_t width) {
  std::string out, line;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t space = text.find(' ', at);
    const std::string_view word =
        text.substr(at, space == std::string_view::npos ? std::string_view::npos : space - at);
    if (!line.empty() && indent + line.size() + 1 + word.size() > width) {
      out += std::string(indent, ' ') + line + "\n";
      line.clear();
    }
    if (!line.empty()) line += ' ';
    line += word;
    if (space == std::string_view::npos) break;
    at = space + 1;
  }
  if (!line.empty()) out += std::string(indent, ' ') + line + "\n";
  return out;
}

// A --peer flag's member, and whether it gave a weight.
struct PeerFlag {
  PeerConfig peer;
  bool weight_given = false;
};

// NAME=ADDRESS[@WEIGHT]; an address has no '@', so the last one splits.
PeerFlag parse_peer_flag(const Flag& flag) {
  const auto malformed = [&] {
    return ConfigError(
        fmt::format("{}: expected NAME=ADDRESS[@WEIGHT], got {}", flag.name, shown(flag.value)));
  };
  const std::size_t eq = flag.value.find('=');
  if (eq == std::string::npos || eq == 0) throw malformed();
  PeerFlag parsed;
  parsed.peer.name = flag.value.substr(0, eq);
  std::string text = flag.value.substr(eq + 1);
  if (const std::size_t at = text.rfind('@'); at != std::string::npos) {
    const std::string weight_text = text.substr(at + 1);
    std::int64_t weight = 0;
    const char* end = weight_text.data() + weight_text.size();
    const auto [ptr, ec] = std::from_chars(weight_text.data(), end, weight);
    if (ec != std::errc() || ptr != end || weight_text.empty()) throw malformed();
    if (auto problem = range_problem(weight, 0, kMaxMaglevWeight)) {
      throw ConfigError(fmt::format("{}: weight {}", flag.name, *problem));
    }
    parsed.peer.weight = static_cast<std::uint32_t>(weight);
    parsed.weight_given = true;
    text.resize(at);
  }
  const auto address = Address::parse(text);
  if (!address) throw ConfigError(fmt::format("{}: {}", flag.name, address_problem(text)));
  parsed.peer.address = *address;
  return parsed;
}

// ADDRESS:PORT[/PROTO], PORT a number or * (every port), PROTO tcp (the
// default) or udp. An IPv6 address goes in brackets ("[fd00::1]:80/udp"),
// so the colon before the port is never ambiguous.
VipConfig parse_vip_flag(const Flag& flag) {
  const auto malformed = [&] {
    return ConfigError(
        fmt::format("{}: expected ADDRESS:PORT, ADDRESS:* or either with /tcp or "
                    "/udp after it, got {}",
                    flag.name, shown(flag.value)));
  };
  std::string_view text = flag.value;
  VipConfig vip;
  vip.protocol = kProtoTcp;
  if (const std::size_t slash = text.rfind('/'); slash != std::string_view::npos) {
    const std::string_view protocol = text.substr(slash + 1);
    if (protocol == "udp") {
      vip.protocol = kProtoUdp;
    } else if (protocol != "tcp") {
      throw ConfigError(
          fmt::format("{}: expected tcp or udp after '/', got {}", flag.name, shown(protocol)));
    }
    text = text.substr(0, slash);
  }
  std::string_view host;
  std::string_view port_text;
  if (text.starts_with('[')) {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      throw malformed();
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) throw malformed();
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      throw ConfigError(fmt::format("{}: an IPv6 address goes in brackets, as in [{}]:{}",
                                    flag.name, host, port_text));
    }
  }
  const auto address = Address::parse(host);
  if (!address) throw ConfigError(fmt::format("{}: {}", flag.name, address_problem(host)));
  vip.address = *address;
  if (port_text == "*") return vip;  // no ports: every port
  std::int64_t port = 0;
  const char* end = port_text.data() + port_text.size();
  const auto [ptr, ec] = std::from_chars(port_text.data(), end, port);
  if (ec != std::errc() || ptr != end || port_text.empty()) throw malformed();
  if (auto problem = range_problem(port, 1, 65535)) {
    throw ConfigError(fmt::format("{}: port {}", flag.name, *problem));
  }
  vip.ports.push_back(static_cast<std::uint16_t>(port));
  return vip;
}

// Drops the recorded locations of a list ("vip", "vip[0]", "vip[0].ports"...)
// that flags replace.
void forget_locations(Config& config, std::string_view list) {
  std::erase_if(config.locations, [&](const auto& entry) {
    const std::string_view key = entry.first;
    return key == list ||
           (key.starts_with(list) && key.size() > list.size() && key[list.size()] == '[');
  });
}

void apply_flag(Config& config, const Flag& flag) {
  const KeySpec* key = find_flag(flag.name);
  if (!key) return;
  switch (key->type) {
    case KeyType::kString:
      key->string(config) = flag.value;
      break;
    case KeyType::kInteger:
      key->integer(config) = parse_flag_int(flag, *key);
      break;
    case KeyType::kBoolean:
      key->boolean(config) = key->flag_sets;
      break;
    case KeyType::kAddress: {
      const auto address = Address::parse(flag.value);
      if (!address) throw ConfigError(fmt::format("{}: {}", flag.name, address_problem(flag.value)));
      key->address(config) = *address;
      break;
    }
    case KeyType::kChoice:
      if (!key->choose(config, flag.value))
        throw ConfigError(fmt::format("{}: {}", flag.name, choice_problem(*key, flag.value)));
      break;
    case KeyType::kStrings: {
      // The first of these flags replaces the file's list, the others add.
      const auto set = config.locations.find(key->path);
      if (set == config.locations.end() || set->second.flag != flag.name) {
        key->strings(config).clear();
        forget_locations(config, key->path);
      }
      key->strings(config).push_back(flag.value);
      break;
    }
  }
  config.locations[std::string(key->path)] = SourceLocation{"", 0, flag.name, ""};
}

}  // namespace

std::expected<GossipSeed, std::string> parse_gossip_seed(std::string_view text,
                                                         std::uint16_t default_port) {
  const auto malformed = [&] {
    return std::unexpected(fmt::format(
        "{} is not a seed: write HOST, HOST:PORT, an IPv4 address (with :PORT or without) or an "
        "IPv6 address in brackets ([2001:db8::5] or [2001:db8::5]:7946)",
        shown(text)));
  };
  GossipSeed seed;
  std::string_view host = text;
  std::string_view port_text;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return malformed();
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':' || rest.size() == 1) return malformed();
      port_text = rest.substr(1);
    }
    const auto address = Address::parse(host);
    if (!address) return std::unexpected(address_problem(host));
    if (!address->is_v6()) {
      return std::unexpected(fmt::format("{} is in brackets: only an IPv6 address goes in them",
                                         shown(host)));
    }
    seed.address = address;
  } else if (std::count(text.begin(), text.end(), ':') > 1) {
    // A bare IPv6 address: no port (it would be ambiguous).
    const auto address = Address::parse(text);
    if (!address) {
      return std::unexpected(fmt::format("{}; with a port, put the IPv6 address in brackets, as "
                                         "in [2001:db8::5]:7946",
                                         address_problem(text)));
    }
    seed.address = address;
  } else {
    if (const auto colon = text.find(':'); colon != std::string_view::npos) {
      host = text.substr(0, colon);
      port_text = text.substr(colon + 1);
      if (port_text.empty()) return malformed();
    }
    if (const auto address = Address::parse(host)) {
      seed.address = address;
    } else if (!valid_host_name(host)) {
      return std::unexpected(fmt::format(
          "{} is neither an IP address nor a host name (labels of letters, digits and '-', "
          "separated by dots)",
          shown(host)));
    }
  }
  seed.host = std::string(host);
  seed.port = default_port;
  if (!port_text.empty()) {
    std::int64_t port = 0;
    const char* end = port_text.data() + port_text.size();
    const auto [ptr, ec] = std::from_chars(port_text.data(), end, port);
    if (ec != std::errc() || ptr != end) return malformed();
    if (auto problem = range_problem(port, 1, 65535)) return std::unexpected("port " + *problem);
    seed.port = static_cast<std::uint16_t>(port);
  }
  return seed;
}

std::string_view mixlb_version() { return kVersion; }

std::string usage_text() {
  std::string out(kUsageHead);
  for (const KeySpec& key : config_keys()) {
    if (key.flag.empty()) continue;
    std::string left = "      " + std::string(key.flag);
    if (key.type != KeyType::kBoolean) left += " " + std::string(key.flag_value);
    const std::string text = fmt::format("{} ([{}] {})", first_sentence(key.help), key.section(), key.name());
    std::string body = wrap(text, 31, 80);
    if (left.size() < 31) {
      body.replace(0, left.size(), left);
    } else {
      body = left + "\n" + body;
    }
    out += body;
  }
  return out + std::string(kUsageTail);
}

Config parse_config(std::string_view text, std::string_view path) {
  Config config = parse_unvalidated(text, path);
  validate(config);
  return config;
}

Config load_config_file(const std::string& path) {
  Config config = load_unvalidated(path);
  validate(config);
  return config;
}

void validate(Config& config) { Checker(config).run(); }

std::optional<Config> config_from_args(int argc, const char* const* argv) {
  return config_from_args(argc, argv, std::cout);
}

std::optional<Config> config_from_args(int argc, const char* const* argv, std::ostream& out) {
  std::vector<Flag> flags;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    Flag flag;
    std::optional<std::string> inline_value;
    if (arg == "-h") {
      flag.name = "--help";
    } else if (arg == "-c") {
      flag.name = "--config";
    } else if (arg.starts_with("--")) {
      const std::size_t eq = arg.find('=');
      flag.name = std::string(arg.substr(0, eq));
      if (eq != std::string_view::npos) inline_value = std::string(arg.substr(eq + 1));
    } else {
      throw ConfigError(fmt::format("unexpected argument {} (see --help)", shown(arg)));
    }
    if (flag.name == "--help" || flag.name == "--version") {
      if (inline_value) throw ConfigError(fmt::format("{}: takes no value", flag.name));
      if (flag.name == "--help") {
        out << usage_text();
      } else {
        out << "mixlb " << kVersion << "\n";
      }
      return std::nullopt;
    }
    if (is_switch(flag.name)) {
      if (inline_value) throw ConfigError(fmt::format("{}: takes no value", flag.name));
      flags.push_back(std::move(flag));
      continue;
    }
    if (!takes_value(flag.name)) {
      throw ConfigError(fmt::format("unknown flag {} (see --help)", shown(flag.name)));
    }
    if (inline_value) {
      flag.value = *inline_value;
    } else if (i + 1 < argc) {
      flag.value = argv[++i];
    } else {
      throw ConfigError(fmt::format("{}: missing value", flag.name));
    }
    flags.push_back(std::move(flag));
  }

  // The last --config wins, like every other single-valued flag.
  Config config;
  const auto config_flag = std::find_if(flags.rbegin(), flags.rend(),
                                        [](const Flag& flag) { return flag.name == "--config"; });
  if (config_flag != flags.rend()) config = load_unvalidated(config_flag->value);
  std::vector<PeerFlag> peers;
  std::vector<VipConfig> vips;
  for (const Flag& flag : flags) {
    if (flag.name == "--config") continue;
    if (flag.name == "--peer") {
      peers.push_back(parse_peer_flag(flag));
    } else if (flag.name == "--vip") {
      vips.push_back(parse_vip_flag(flag));
    } else {
      apply_flag(config, flag);
    }
  }
  if (!peers.empty()) {
    forget_locations(config, "peer");
    config.peers.clear();
    for (std::size_t i = 0; i < peers.size(); ++i) {
      config.peers.push_back(std::move(peers[i].peer));
      config.locations[indexed("peer", i)] = SourceLocation{"", 0, "--peer", ""};
      if (peers[i].weight_given) {
        config.locations[indexed("peer", i) + ".weight"] = SourceLocation{"", 0, "--peer", ""};
      }
    }
  }
  if (!vips.empty()) {
    forget_locations(config, "vip");
    config.vips = std::move(vips);
    for (std::size_t i = 0; i < config.vips.size(); ++i) {
      config.locations[indexed("vip", i)] = SourceLocation{"", 0, "--vip", ""};
    }
  }
  validate(config);
  return config;
}

}  // namespace mixlb
