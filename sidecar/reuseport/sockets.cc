#include "reuseport/sockets.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "kernel/sock_diag.h"
#include "kernel/unique_fd.h"

namespace mixlb {

DpResult<std::unique_ptr<SocketService>> SocketService::start(boost::asio::io_context& io,
                                                              SocketServiceSettings settings) {
  std::unique_ptr<SocketService> self(new SocketService(io, std::move(settings)));
  auto selector = ReuseportSelector::load(self->settings_.pin_dir, self->settings_.udp_flows);
  if (!selector) return std::unexpected(selector.error());
  self->selector_ = std::move(*selector);
  self->registry_ = std::make_unique<SocketRegistry>(
      *self->selector_, RegistrySettings{self->settings_.policy, self->settings_.udp_idle_ns, self->settings_.managed});
  self->load_state();
  self->arm();
  return self;
}

void SocketService::load_state() {
  if (settings_.state_path.empty()) return;
  std::ifstream in(settings_.state_path);
  if (!in) return;  // nothing registered before
  nlohmann::json state = nlohmann::json::parse(in, nullptr, false);
  if (state.is_discarded()) {
    spdlog::warn("sockets: {} is not JSON; starting with no managed sockets", settings_.state_path);
    return;
  }
  auto kept = registry_->import_state(state);
  if (!kept) {
    spdlog::warn("sockets: {}: {}; starting with no managed sockets", settings_.state_path, kept.error());
    return;
  }
  if (*kept != 0) spdlog::info("sockets: took over {} socket{} registered before", *kept, *kept == 1 ? "" : "s");
  save();
}

void SocketService::save() const {
  if (settings_.state_path.empty()) return;
  const std::string tmp = settings_.state_path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << registry_->export_state().dump() << '\n';
    if (!out) {
      spdlog::warn("sockets: writing {} failed; a restarted sidecar would not know the app's generations", tmp);
      return;
    }
  }
  if (std::rename(tmp.c_str(), settings_.state_path.c_str()) != 0)
    spdlog::warn("sockets: replacing {}: {}", settings_.state_path, std::strerror(errno));
}

void SocketService::unpin() {
  selector_->unpin();
  if (!settings_.state_path.empty()) std::remove(settings_.state_path.c_str());
}

SocketService::~SocketService() {
  *alive_ = false;
  timer_.cancel();
}

void SocketService::arm() {
  timer_.expires_after(settings_.reconcile_every);
  timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    reconcile();
    arm();
  });
}

void SocketService::reconcile() {
  const std::size_t gone = registry_->reconcile();
  if (gone != 0) save();
  if (gone != 0)
    spdlog::info("sockets: {} closed socket{} left {} table{}", gone, gone == 1 ? "" : "s",
                 gone == 1 ? "its" : "their", gone == 1 ? "" : "s");
}

std::expected<std::vector<Registered>, std::string> SocketService::register_sockets(const RegisterRequest& request) {
  auto done = registry_->register_sockets(request);
  save();  // a batch that failed half-way may have registered some
  if (done) {
    for (const auto& r : *done)
      spdlog::info("sockets: {} generation {}: {} socket{} from pid {}{}", r.service.to_string(), r.generation,
                   r.sockets, r.sockets == 1 ? "" : "s", request.pid, r.active ? ", active" : "");
  }
  return done;
}

namespace {

// The open descriptors of `pid` that are sockets, by /proc/<pid>/fd.
std::expected<std::vector<int>, std::string> socket_fds_of(std::int32_t pid) {
  const std::string dir = fmt::format("/proc/{}/fd", pid);
  std::error_code ec;
  std::vector<int> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::error_code link_ec;
    const auto target = std::filesystem::read_symlink(entry.path(), link_ec);
    if (link_ec || !target.string().starts_with("socket:")) continue;
    int fd = 0;
    const std::string name = entry.path().filename().string();
    if (std::from_chars(name.data(), name.data() + name.size(), fd).ec == std::errc{}) out.push_back(fd);
  }
  if (ec) return std::unexpected(fmt::format("reading {}: {}", dir, ec.message()));
  return out;
}

}  // namespace

std::expected<SocketService::Adopted, std::string> SocketService::adopt(std::int32_t pid, bool ready) {
  if (pid <= 0) return std::unexpected(fmt::format("no such process: {}", pid));
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) return std::unexpected(fmt::format("pid {}: pidfd_open: {}", pid, std::strerror(errno)));
  auto fds = socket_fds_of(pid);
  if (!fds) return std::unexpected(fds.error());
  Adopted out;
  std::vector<UniqueFd> copies;
  std::set<std::uint64_t> seen;  // one socket may sit at several descriptors
  for (int fd : *fds) {
    UniqueFd copy(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0)));
    if (!copy) {
      const int err = errno;
      if (err == EPERM)
        return std::unexpected(fmt::format("pid {}: pidfd_getfd: {} (taking another process's sockets needs "
                                           "CAP_SYS_PTRACE, or the same user and a ptrace scope that allows it)",
                                           pid, std::strerror(err)));
      out.skipped.push_back({fd, fmt::format("pidfd_getfd: {}", std::strerror(err))});
      continue;
    }
    auto facts = inspect_socket(copy.get());
    std::string why;
    if (!facts)
      why = facts.error();
    else if (!facts->reuseport)
      why = fmt::format("{}: no SO_REUSEPORT", facts->service.to_string());
    else if (facts->service.proto == IPPROTO_TCP && !facts->listening)
      why = fmt::format("{}: not listening", facts->service.to_string());
    else if (facts->service.port == 0)
      why = "not bound";
    else if (!settings_.managed || !settings_.managed(facts->service))
      why = fmt::format("{}: not a managed VIP port", facts->service.to_string());
    if (!why.empty()) {
      out.skipped.push_back({fd, why});
      continue;
    }
    if (!seen.insert(facts->cookie).second) continue;
    if (auto g = registry_->generation_of(facts->cookie)) {
      out.skipped.push_back({fd, fmt::format("{}: registered already, in generation {}", facts->service.to_string(), *g)});
      continue;
    }
    copies.push_back(std::move(copy));
  }
  if (copies.empty()) {
    std::string held;
    for (const auto& s : out.skipped) held += fmt::format("\n  fd {}: {}", s.fd, s.why);
    return std::unexpected(fmt::format("pid {} holds no SO_REUSEPORT socket on a managed VIP port{}", pid,
                                       held.empty() ? std::string(" (and no socket at all)") : ":" + held));
  }
  std::vector<int> raw;
  for (const auto& c : copies) raw.push_back(c.get());
  auto registered = register_sockets(RegisterRequest{raw, pid, fmt::format("pid:{}", pid), ready});
  if (!registered) return std::unexpected(registered.error());
  out.registered = std::move(*registered);
  return out;  // the copies close here: the process owns its sockets alone again
}

std::expected<std::uint64_t, std::string> SocketService::switch_to(std::string_view service, std::uint32_t generation) {
  auto key = registry_->resolve(service);
  if (!key) return std::unexpected(key.error());
  auto done = registry_->switch_to(*key, generation);
  save();
  if (done) spdlog::info("sockets: {} switched to generation {}", key->to_string(), generation);
  return done;
}

std::expected<void, std::string> SocketService::drain(std::string_view service, std::uint32_t generation) {
  auto key = registry_->resolve(service);
  if (!key) return std::unexpected(key.error());
  auto done = registry_->drain(*key, generation);
  save();
  if (done) spdlog::info("sockets: {} generation {} drained", key->to_string(), generation);
  return done;
}

metrics::SocketsFigures SocketService::figures() const {
  metrics::SocketsFigures out;
  const auto udp_flows = selector_->flows_by_table();
  for (const auto& s : registry_->services()) {
    for (const auto& g : s.generations) {
      metrics::SocketsFigures::Generation row;
      row.service = s.key.to_string();
      row.number = g.number;
      row.state = std::string(to_string(g.state));
      row.sockets = g.workers.size();
      if (auto stats = selector_->stats(g.table)) {
        row.selected = stats->selected;
        row.migrated = stats->migrated;
        row.sticky = stats->sticky;
        row.fallback = stats->fallback;
      }
      if (s.key.proto == IPPROTO_UDP && udp_flows) {
        auto it = udp_flows->find(g.table);
        row.udp_flows = it == udp_flows->end() ? 0 : it->second;
      }
      out.generations.push_back(std::move(row));
    }
  }
  return out;
}

nlohmann::json SocketService::view() const {
  using nlohmann::json;
  auto diag = dump_sockets();
  const auto udp_flows = selector_->flows_by_table();
  json services = json::array();
  for (const auto& s : registry_->services()) {
    json generations = json::array();
    for (const auto& g : s.generations) {
      json workers = json::array();
      for (const auto& w : g.workers) {
        json worker = {{"index", w.index}, {"cookie", w.cookie}, {"incoming_cpu", w.incoming_cpu}};
        if (diag) {
          auto it = diag->find(w.cookie);
          if (it != diag->end()) {
            worker["state"] = s.key.proto == IPPROTO_TCP ? "listen" : "bound";
            worker["queued"] = it->second.queued;
            worker["backlog"] = it->second.backlog;
          } else {
            worker["state"] = "closed";
          }
        }
        workers.push_back(std::move(worker));
      }
      json gen = {{"number", g.number}, {"label", g.label},  {"pid", g.pid},
                  {"state", to_string(g.state)}, {"table", g.table}, {"workers", std::move(workers)}};
      if (auto stats = selector_->stats(g.table)) {
        gen["selected"] = stats->selected;
        gen["migrated"] = stats->migrated;
        gen["sticky"] = stats->sticky;
        gen["fallback"] = stats->fallback;
      }
      if (s.key.proto == IPPROTO_UDP && udp_flows) {
        auto it = udp_flows->find(g.table);
        gen["udp_flows"] = it == udp_flows->end() ? 0 : it->second;
      }
      generations.push_back(std::move(gen));
    }
    services.push_back({{"service", s.key.to_string()}, {"policy", to_string(s.policy)},
                        {"generations", std::move(generations)}});
  }
  return json{{"enabled", true}, {"policy", to_string(settings_.policy)}, {"services", std::move(services)}};
}

}  // namespace mixlb
