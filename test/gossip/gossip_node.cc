// gossip_node: one gossip member in a process of its own, for the
// multi-process loopback tests (test_cluster.cc) and for trying the
// transport by hand. It joins through its seeds and prints one line per
// happening on stdout:
//
//   listening 127.0.0.1:40123
//   member joined node-1 127.0.0.1:40125 0
//   member dead node-2 127.0.0.1:40127 0
//   sync join 127.0.0.1:40123 ok            (or the error)
//   event node-1 <payload>
//
// and answers commands on stdin, one a line: `members`, `stats`,
// `event TEXT`, `meta TEXT`, `quit`. The end of stdin also stops it, so a
// test that dies takes its nodes with it; --lifetime-s bounds a forgotten
// one. It stops gracefully (leave, then every handle closed) and prints
// `stopped ok` when the loop closed with nothing left open; the exit status
// is 0 then, 1 when the stop reported an error, 2 for a usage or start error.
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "keyring.h"
#include "transport.h"

namespace {

using namespace mixlb::gossip;
using namespace std::chrono_literals;

std::mutex out_mutex;

// One whole line per call, flushed at once: stdout is a pipe to the test.
void say(const std::string& line) {
  std::lock_guard lock(out_mutex);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

std::string text_of(const Bytes& bytes) { return std::string(bytes.begin(), bytes.end()); }

struct Options {
  std::string name;
  Address bind = Address::v4(127, 0, 0, 1, 0);
  std::vector<Address> seeds;
  std::optional<Key> key;
  std::string cluster = "mixlb-test";
  int probe_ms = 200;
  int lifetime_s = 120;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "gossip_node: %s\nusage: gossip_node --name NAME [--bind ADDR:PORT] "
               "[--seed ADDR:PORT]... [--key HEX] [--cluster NAME] [--probe-ms N] "
               "[--lifetime-s N]\n",
               why.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) usage("missing value for " + std::string(flag));
    const std::string value = argv[++i];
    auto address = [&] {
      auto a = Address::parse(value);
      if (!a) usage("not an address: " + value);
      return *a;
    };
    if (flag == "--name") {
      o.name = value;
    } else if (flag == "--bind") {
      o.bind = address();
    } else if (flag == "--seed") {
      o.seeds.push_back(address());
    } else if (flag == "--key") {
      auto key = parse_key(value);
      if (!key) usage("not a 64-digit hex key");
      o.key = *key;
    } else if (flag == "--cluster") {
      o.cluster = value;
    } else if (flag == "--probe-ms") {
      o.probe_ms = std::stoi(value);
    } else if (flag == "--lifetime-s") {
      o.lifetime_s = std::stoi(value);
    } else {
      usage("unknown flag " + std::string(flag));
    }
  }
  if (o.name.empty()) usage("--name is required");
  return o;
}

void print_event(const Event& event) {
  if (const auto* m = std::get_if<MemberEvent>(&event)) {
    say("member " + std::string(to_string(m->kind)) + " " + m->member.name + " " +
        m->member.address.to_string() + " " + std::to_string(m->member.incarnation));
  } else if (const auto* u = std::get_if<UserEventDelivery>(&event)) {
    say("event " + u->origin + " " + text_of(u->payload));
  } else if (const auto* r = std::get_if<SyncResult>(&event)) {
    say("sync " + std::string(to_string(r->purpose)) + " " + r->peer.to_string() + " " +
        (r->error ? r->error.message() : std::string("ok")));
  }
}

void command(Transport& transport, const std::string& line) {
  const auto space = line.find(' ');
  const std::string verb = line.substr(0, space);
  const std::string rest = space == std::string::npos ? "" : line.substr(space + 1);
  if (verb == "members") {
    auto s = transport.snapshot();
    if (!s) return say("error members: " + s.error().message());
    std::string out = "members";
    for (const auto& m : s->members) {
      out += " " + m.name + ":" + std::string(to_string(m.state)) + ":" +
             std::to_string(m.incarnation);
    }
    say(out);
  } else if (verb == "stats") {
    auto s = transport.snapshot();
    if (!s) return say("error stats: " + s.error().message());
    std::string out = "stats";
    for (std::size_t i = 0; i < s->core.drops.size(); ++i) {
      std::string reason(to_string(static_cast<DropReason>(i)));
      for (auto& c : reason) c = c == ' ' ? '_' : c;
      out += " drop:" + reason + "=" + std::to_string(s->core.drops[i]);
    }
    out += " udp_sent=" + std::to_string(s->transport.udp_sent) +
           " streams_in_failed=" + std::to_string(s->transport.streams_in_failed);
    say(out);
  } else if (verb == "event") {
    if (auto e = transport.send_user_event(Bytes(rest.begin(), rest.end())))
      say("error event: " + e.message());
  } else if (verb == "meta") {
    if (auto e = transport.set_metadata(Bytes(rest.begin(), rest.end())))
      say("error meta: " + e.message());
  } else {
    say("error unknown command: " + verb);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  TransportOptions t;
  t.config.name = o.name;
  t.config.address = o.bind;
  t.config.probe_interval = std::chrono::milliseconds(o.probe_ms);
  t.config.probe_timeout = std::chrono::milliseconds(o.probe_ms / 2);
  t.config.gossip_interval = std::chrono::milliseconds(std::max(10, o.probe_ms / 4));
  t.config.push_pull_interval = 5s;
  t.config.rejoin_interval = 2s;
  t.config.stream_timeout = 2s;
  t.leave_linger = 300ms;
  if (o.key) t.keyring.emplace(o.cluster, *o.key);

  std::optional<Transport> transport;
  try {
    transport.emplace(std::move(t), print_event);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gossip_node: %s\n", e.what());
    return 2;
  }
  if (auto error = transport->start(o.seeds)) {
    std::fprintf(stderr, "gossip_node: cannot start on %s: %s\n", o.bind.to_string().c_str(),
                 error.message().c_str());
    return 2;
  }
  say("listening " + transport->address().to_string());

  // Commands until `quit`, the end of stdin, or the end of the lifetime.
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(o.lifetime_s);
  std::string pending;
  bool more = true;
  while (more) {
    if (std::chrono::steady_clock::now() >= end) {
      say("lifetime over");
      break;
    }
    pollfd in{STDIN_FILENO, POLLIN, 0};
    if (::poll(&in, 1, 100) <= 0) continue;
    char buffer[4096];
    const ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
    if (n <= 0) break;
    pending.append(buffer, static_cast<std::size_t>(n));
    for (auto newline = pending.find('\n'); newline != std::string::npos;
         newline = pending.find('\n')) {
      const std::string line = pending.substr(0, newline);
      pending.erase(0, newline + 1);
      if (line == "quit") {
        more = false;
        break;
      }
      if (!line.empty()) command(*transport, line);
    }
  }
  const std::error_code stopped = transport->stop();
  say(stopped ? "stopped " + stopped.message() : "stopped ok");
  return stopped ? 1 : 0;
}
