// `mixlbctl monitor`'s plumbing without a socket: MonitorHub's per-subscriber
// queues (every subscriber gets every event it wants, a slow one loses
// events and is told how many, never holds a publisher up), ChangeWatch's
// events between two views of the cluster, LogTap's log lines, and the text
// each event renders as.
#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "admin/commands.h"
#include "admin/log_tap.h"
#include "admin/monitor.h"
#include "admin/results.h"

namespace mixlb {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const std::chrono::system_clock::time_point kNow{std::chrono::milliseconds(1714557600123)};
constexpr const char* kNowText = "2024-05-01T10:00:00.123Z";

int rank(std::string_view level) { return log_level_rank(level).value(); }

MonitorEvent log_line(std::string level, std::string message) {
  return {LogLine{"t", std::move(level), std::move(message)}};
}

MonitorEvent member(std::string name, std::string state) {
  return {MemberChange{"t", std::move(name), std::move(state), std::nullopt, {}, {}, {}}};
}

// The JSON lines of what a subscriber took.
std::vector<json> lines_of(const std::string& taken) {
  std::vector<json> lines;
  std::istringstream in(taken);
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  return lines;
}

std::string rendered(const MonitorEvent& event) {
  return render_event(*find_command("monitor"), json(event));
}

WatchedMember watched(std::string state, std::optional<std::uint32_t> weight = 1,
                      std::optional<bool> app_healthy = true, bool restarting = false) {
  return {std::move(state), weight, app_healthy, restarting};
}

// The events as their rendered lines, the easiest form to read in a check.
std::vector<std::string> texts(const std::vector<MonitorEvent>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(rendered(e));
  return out;
}

TEST_SUITE("admin") {
  TEST_CASE("MonitorHub: every subscriber gets every event, as one JSON line each, in order") {
    MonitorHub hub;
    const auto a = hub.subscribe(rank("info"));
    const auto b = hub.subscribe(rank("info"));
    CHECK(hub.subscribers() == 2);
    const MonitorEvent first = member("mix2", "suspect");
    const MonitorEvent second = log_line("warn", "quote \" and\nnewline");
    hub.publish(first);
    hub.publish(second);
    for (const auto& s : {a, b}) {
      CHECK(s->take() == json(first).dump() + "\n" + json(second).dump() + "\n");
      CHECK(s->take().empty());
    }
    // A subscriber gets only what is published after it came.
    const auto late = hub.subscribe(rank("info"));
    CHECK(late->take().empty());
    CHECK(hub.dropped() == 0);
  }

  TEST_CASE("MonitorHub: log lines below a subscriber's level are not sent; other events are") {
    MonitorHub hub;
    const auto warn = hub.subscribe(rank("warn"));
    const auto debug = hub.subscribe(rank("debug"));
    for (const char* level : {"trace", "debug", "info", "warn", "error", "critical"})
      hub.publish(log_line(level, level));
    hub.publish(member("mix3", "dead"));
    hub.publish(MonitorEvent{HealthChange{"t", "mix3", false, ""}});

    std::vector<std::string> got;
    for (const auto& line : lines_of(warn->take()))
      got.push_back(line["event"] == "log" ? line["level"].get<std::string>() : line["event"].get<std::string>());
    CHECK(got == std::vector<std::string>{"warn", "error", "critical", "member", "health"});
    CHECK(lines_of(debug->take()).size() == 7);
    CHECK(hub.dropped() == 0);  // filtered is not lost
  }

  TEST_CASE("MonitorHub: a slow subscriber's queue is bounded in lines; its next take says what it lost") {
    MonitorHub hub({.lines = 3, .bytes = 1u << 20}, [] { return kNow; });
    const auto slow = hub.subscribe(rank("info"));
    const auto other = hub.subscribe(rank("error"));
    for (int i = 0; i < 5; ++i) hub.publish(log_line("info", std::to_string(i)));

    const auto lines = lines_of(slow->take());
    REQUIRE(lines.size() == 4);
    CHECK(lines[0]["message"] == "0");
    CHECK(lines[2]["message"] == "2");
    CHECK(lines[3] == json{{"event", "dropped"}, {"time", kNowText}, {"count", 2}, {"total", 2}});
    CHECK(other->take().empty());  // the other one wanted none of them: it lost nothing
    CHECK(hub.dropped() == 2);

    // Room again; no notice once nothing more was lost.
    hub.publish(log_line("info", "5"));
    const auto after = lines_of(slow->take());
    REQUIRE(after.size() == 1);
    CHECK(after[0]["message"] == "5");

    // Another overflow: this notice's count, and the total since subscribing.
    for (int i = 0; i < 4; ++i) hub.publish(log_line("info", "x"));
    const auto again = lines_of(slow->take());
    REQUIRE(again.size() == 4);
    CHECK(again[3]["count"] == 1);
    CHECK(again[3]["total"] == 3);
    CHECK(hub.dropped() == 3);
    CHECK(rendered(again[3].get<MonitorEvent>()) ==
          std::string(kNowText) +
              " monitor: 1 event(s) lost, this client read too slowly (3 in all)\n");
  }

  TEST_CASE("MonitorHub: a slow subscriber's queue is bounded in bytes") {
    const MonitorEvent event = log_line("info", std::string(100, 'x'));
    const std::size_t line = json(event).dump().size() + 1;
    MonitorHub hub({.lines = 1000, .bytes = 2 * line + line / 2}, [] { return kNow; });
    const auto slow = hub.subscribe(rank("info"));
    for (int i = 0; i < 10; ++i) hub.publish(event);
    const auto lines = lines_of(slow->take());
    REQUIRE(lines.size() == 3);
    CHECK(lines[1] == json(event));
    CHECK(lines[2]["event"] == "dropped");
    CHECK(lines[2]["count"] == 8);
    // A line larger than the whole queue is lost, and said to be.
    hub.publish(log_line("info", std::string(3 * line, 'y')));
    const auto big = lines_of(slow->take());
    REQUIRE(big.size() == 1);
    CHECK(big[0]["count"] == 1);
    CHECK(big[0]["total"] == 9);
  }

  TEST_CASE("MonitorHub: the wake comes once per batch, outside the locks, at once when lines wait") {
    MonitorHub hub;
    const auto s = hub.subscribe(rank("info"));
    hub.publish(member("mix2", "alive"));  // before on_ready
    int wakes = 0;
    std::string taken;
    // The wake takes the lines itself: it would deadlock if it ran under
    // the subscription's or the hub's lock.
    s->on_ready([&] {
      ++wakes;
      taken += s->take();
      (void)hub.subscribers();
    });
    CHECK(wakes == 1);
    CHECK(lines_of(taken).size() == 1);

    hub.publish(member("mix2", "suspect"));
    CHECK(wakes == 2);
    CHECK(lines_of(taken).size() == 2);

    // Without a take in between, one wake covers every line.
    s->on_ready([&] { ++wakes; });
    hub.publish(member("mix2", "dead"));
    hub.publish(member("mix2", "left"));
    CHECK(wakes == 3);
    CHECK(lines_of(s->take()).size() == 2);
    hub.publish(member("mix2", "alive"));
    CHECK(wakes == 4);
  }

  TEST_CASE("MonitorHub: a closed subscriber is removed and gets nothing more") {
    auto hub = std::make_unique<MonitorHub>();
    const auto gone = hub->subscribe(rank("info"));
    const auto stays = hub->subscribe(rank("info"));
    gone->close();
    CHECK(hub->subscribers() == 1);
    hub->publish(member("mix2", "alive"));
    CHECK(gone->take().empty());
    CHECK(lines_of(stays->take()).size() == 1);
    gone->close();  // twice is harmless
    CHECK(hub->subscribers() == 1);
    // A subscription may outlive its hub (the server closes it later).
    hub.reset();
    stays->close();
    CHECK(stays->take().empty());
  }

  TEST_CASE("MonitorHub: publishing from several threads at once loses nothing uncounted") {
    MonitorHub hub({.lines = 64, .bytes = 1u << 20});
    constexpr int kThreads = 4;
    constexpr int kEach = 5000;
    std::vector<std::shared_ptr<AdminStream>> subscribers;
    for (int i = 0; i < 3; ++i) subscribers.push_back(hub.subscribe(rank("trace")));
    std::atomic<bool> done = false;
    // Each subscriber is read on a thread of its own meanwhile, as the
    // server's io_context would; it counts what it got and what it lost.
    struct Count {
      std::uint64_t events = 0, lost = 0, last_total = 0;
    };
    std::vector<Count> counts(subscribers.size());
    auto tally = [&](std::size_t i, const std::string& taken) {
      for (const auto& line : lines_of(taken)) {
        if (line["event"] == "dropped") {
          counts[i].lost += line["count"].get<std::uint64_t>();
          counts[i].last_total = line["total"].get<std::uint64_t>();
        } else {
          ++counts[i].events;
        }
      }
    };
    std::vector<std::thread> readers;
    for (std::size_t i = 0; i < subscribers.size(); ++i) {
      readers.emplace_back([&, i] {
        while (!done) {
          tally(i, subscribers[i]->take());
          std::this_thread::yield();
        }
      });
    }
    std::vector<std::thread> publishers;
    for (int t = 0; t < kThreads; ++t) {
      publishers.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          hub.publish(i % 2 ? log_line("info", std::to_string(t)) : member("mix2", "alive"));
        }
      });
    }
    // A subscriber coming and going meanwhile.
    for (int i = 0; i < 100; ++i) hub.subscribe(rank("info"))->close();
    for (auto& p : publishers) p.join();
    done = true;
    for (auto& r : readers) r.join();
    std::uint64_t lost = 0;
    for (std::size_t i = 0; i < subscribers.size(); ++i) {
      CAPTURE(i);
      tally(i, subscribers[i]->take());
      CHECK(counts[i].events + counts[i].lost == kThreads * kEach);
      CHECK(counts[i].last_total == counts[i].lost);
      lost += counts[i].lost;
    }
    // The subscribers that came and went may have lost events too.
    CHECK(hub.dropped() >= lost);
    CHECK(hub.subscribers() == subscribers.size());
  }

  TEST_CASE("ChangeWatch: nothing on the first view; then appear, state, weight, restart, forgotten") {
    ChangeWatch watch;
    ClusterView view;
    view.self = "mix1";
    view.members = {{"mix1", watched("alive")}, {"mix2", watched("alive")}, {"mix3", watched("alive")}};
    CHECK(watch.update(view, "t0").empty());
    CHECK(watch.update(view, "t1").empty());  // nothing changed

    view.members["mix2"].state = "suspect";
    view.members["mix3"].weight = 0;
    view.members["mix4"] = watched("alive", 2);
    auto events = watch.update(view, "t2");
    CHECK(texts(events) == std::vector<std::string>{
                               "t2 member mix2: alive -> suspect\n",
                               "t2 member mix3: weight 1 -> 0\n",
                               "t2 member mix4: appeared, alive\n",
                           });
    const auto& appeared = std::get<MemberChange>(events[2].event);
    CHECK_FALSE(appeared.previous.has_value());
    const auto& weight = std::get<MemberChange>(events[1].event);
    CHECK(weight.state == "alive");
    CHECK(weight.previous == "alive");
    CHECK(weight.weight == 0u);
    CHECK(weight.previous_weight == 1u);
    CHECK_FALSE(weight.restarting.has_value());

    view.members["mix2"] = watched("dead", 3, true, true);
    view.members.erase("mix4");
    CHECK(texts(watch.update(view, "t3")) ==
          std::vector<std::string>{
              "t3 member mix2: suspect -> dead, weight 1 -> 3, restarting its sidecar\n",
              "t3 member mix4: alive -> forgotten\n",
          });
    view.members["mix2"].restarting = false;
    CHECK(texts(watch.update(view, "t4")) ==
          std::vector<std::string>{"t4 member mix2: sidecar back from a restart\n"});
    // A weight no longer published (metadata that did not decode) is no change.
    view.members["mix3"].weight.reset();
    CHECK(watch.update(view, "t5").empty());
  }

  TEST_CASE("ChangeWatch: app health, this node's from its own check with the reason") {
    ChangeWatch watch;
    ClusterView view;
    view.self = "mix1";
    view.members = {{"mix1", watched("alive")}, {"mix2", watched("alive")}};
    view.self_app_healthy = true;
    view.self_app_reason = "HTTP 200";
    CHECK(watch.update(view, "t0").empty());

    view.members["mix2"].app_healthy = false;
    // What this node publishes about itself is not its verdict...
    view.members["mix1"].app_healthy = false;
    auto events = watch.update(view, "t1");
    CHECK(texts(events) == std::vector<std::string>{"t1 health mix2: app UNHEALTHY\n"});

    // ...its own check's is, with the probe's result.
    view.self_app_healthy = false;
    view.self_app_reason = "HTTP 503";
    events = watch.update(view, "t2");
    REQUIRE(events.size() == 1);
    const auto& own = std::get<HealthChange>(events[0].event);
    CHECK(own.node == "mix1");
    CHECK_FALSE(own.healthy);
    CHECK(own.reason == "HTTP 503");
    CHECK(rendered(events[0]) == "t2 health mix1: app UNHEALTHY (HTTP 503)\n");

    view.self_app_healthy = true;
    view.self_app_reason = "HTTP 200";
    view.members["mix2"].app_healthy = true;
    CHECK(texts(watch.update(view, "t3")) ==
          std::vector<std::string>{"t3 health mix2: app healthy\n",
                                   "t3 health mix1: app healthy (HTTP 200)\n"});
    // A verdict that appears or goes (no check, metadata gone) is no change.
    view.self_app_healthy.reset();
    view.members["mix2"].app_healthy.reset();
    CHECK(watch.update(view, "t4").empty());
    view.self_app_healthy = false;
    view.members["mix2"].app_healthy = false;
    CHECK(watch.update(view, "t5").empty());
  }

  TEST_CASE("monitor renders its first reply and each kind of event as one line") {
    CHECK(render_result(*find_command("monitor"), json(MonitorStarted{"mix1", "info"})) ==
          "monitoring mix1: member and app-health changes, log lines at info and above; interrupt "
          "to stop\n");
    CHECK(rendered({MemberChange{"t", "mix2", "alive", "suspect", {}, {}, {}}}) ==
          "t member mix2: suspect -> alive\n");
    CHECK(rendered({MemberChange{"t", "mix2", "alive", "alive", 3, std::nullopt, {}}}) ==
          "t member mix2: weight - -> 3\n");
    CHECK(rendered({HealthChange{"t", "mix2", true, ""}}) == "t health mix2: app healthy\n");
    CHECK(rendered(log_line("error", "gossip: bad key")) == "t log error: gossip: bad key\n");
    CHECK(rendered({LogLine{"", "", "bare"}}) == "- log -: bare\n");
  }

  TEST_CASE("LogTap sends the daemon's log lines to the hub until it is gone") {
    const auto logger = spdlog::default_logger();
    const auto level = logger->level();
    logger->set_level(spdlog::level::info);
    const auto hub = std::make_shared<MonitorHub>();
    const auto s = hub->subscribe(rank("warn"));
    {
      const LogTap tap(hub);
      spdlog::warn("monitor test: tapped {}", 1);
      spdlog::info("monitor test: below the subscriber's level");
      spdlog::debug("monitor test: below the logger's level");
      const auto lines = lines_of(s->take());
      REQUIRE(lines.size() == 1);
      CHECK(lines[0]["event"] == "log");
      CHECK(lines[0]["level"] == "warn");
      CHECK(lines[0]["message"] == "monitor test: tapped 1");
      CHECK(lines[0]["time"].get<std::string>().ends_with("Z"));
    }
    spdlog::warn("monitor test: after the tap");
    CHECK(s->take().empty());
    logger->set_level(level);
  }
}  // TEST_SUITE

}  // namespace
}  // namespace mixlb
