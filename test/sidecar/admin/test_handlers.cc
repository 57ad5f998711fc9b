// AdminCommands, the daemon's side of the command table: a set of handlers
// that does not match the table one to one is refused when it is built,
// naming what is wrong; a request the table does not allow is refused with
// the table's words before any handler runs. Driven through
// handle_admin_line, so the replies are the server's.
#include <doctest/doctest.h>

// clang-format off
// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>
// clang-format on

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "admin/admin_server.h"
#include "admin/handlers.h"
#include "admin/monitor.h"

namespace mixlb {
namespace {

namespace asio = boost::asio;
using nlohmann::json;
using Handlers = std::vector<AdminCommands::Handler>;

// One handler per command of the table, each answering with its command and
// args and counting its calls; the stream opens a subscription of `hub`.
struct Fixture {
  std::shared_ptr<MonitorHub> hub = std::make_shared<MonitorHub>();
  std::shared_ptr<int> calls = std::make_shared<int>(0);

  Handlers handlers() const {
    Handlers all;
    for (const CommandSpec& c : admin_commands()) {
      const std::string name(c.name);
      if (c.kind == CommandKind::kStream) {
        all.push_back({name, AdminCommands::Stream([name, hub = hub, calls = calls](const json&) {
                         ++*calls;
                         return AdminAnswer(json{{"stream", name}}, hub->subscribe(0));
                       })});
      } else {
        all.push_back({name, AdminCommands::Reply([name, calls = calls](const json& args) {
                         ++*calls;
                         return json{{"cmd", name}, {"args", args}};
                       })});
      }
    }
    return all;
  }
};

// Replaces the handler of `command` in `handlers`.
Handlers with(Handlers handlers, const std::string& command, AdminCommands::Handler handler) {
  for (auto& h : handlers) {
    if (h.command == command) h = std::move(handler);
  }
  return handlers;
}

Handlers without(Handlers handlers, const std::string& command) {
  std::erase_if(handlers, [&](const AdminCommands::Handler& h) { return h.command == command; });
  return handlers;
}

// The reply to `line`, as the server would send it.
json reply_to(const AdminCommands& commands, std::string_view line) {
  return json::parse(handle_admin_line(line, commands.handler()).reply);
}

std::string building_error(Handlers handlers) {
  try {
    const AdminCommands commands(std::move(handlers));
  } catch (const std::logic_error& e) {
    return e.what();
  }
  FAIL("the handlers were accepted");
  return {};
}

AdminCommands::Reply answer(json result) {
  return [result](const json&) { return result; };
}

TEST_SUITE("admin") {
  TEST_CASE("a handler for every command is accepted, and each request reaches its own") {
    const Fixture fixture;
    const AdminCommands commands(fixture.handlers());
    for (const CommandSpec& c : admin_commands()) {
      CAPTURE(c.name);
      // Every positional, as mixlbctl would send it.
      json args = json::object();
      for (const CommandArg& arg : c.args) {
        if (!arg.positional) continue;
        args[std::string(arg.name)] = arg.number             ? json(1)
                                      : arg.choices.empty() ? json("x")
                                                            : json(arg.choices.front());
      }
      const json reply = reply_to(commands, encode_admin_request(c.name, args));
      INFO(reply.dump());
      REQUIRE(reply["ok"] == true);
      if (c.kind == CommandKind::kStream) {
        CHECK(reply["result"] == json{{"stream", c.name}});
      } else {
        CHECK(reply["result"] == json{{"cmd", c.name}, {"args", args}});
      }
    }
    CHECK(*fixture.calls == static_cast<int>(admin_commands().size()));
    // handle_admin_line closed the stream it was given.
    CHECK(fixture.hub->subscribers() == 0);
  }

  TEST_CASE("a command without a handler is named when the daemon builds its handlers") {
    const Fixture fixture;
    CHECK(building_error(without(fixture.handlers(), "vips")) ==
          "admin commands: vips has no handler");
  }

  TEST_CASE("a command with two handlers is named") {
    const Fixture fixture;
    Handlers twice = fixture.handlers();
    twice.push_back({"status", answer(json::object())});
    CHECK(building_error(twice) == "admin commands: status has 2 handlers");
  }

  TEST_CASE("a handler for a command the table lacks is named") {
    const Fixture fixture;
    Handlers extra = fixture.handlers();
    extra.push_back({"frobnicate", answer(json::object())});
    CHECK(building_error(extra) ==
          "admin commands: frobnicate has a handler but no row in the command table");
  }

  TEST_CASE("a handler that streams for a one-reply command, or the other way round, is named") {
    const Fixture fixture;
    CHECK(building_error(with(fixture.handlers(), "monitor", {"monitor", answer(json::object())})) ==
          "admin commands: monitor is a stream in the command table, but its handler answers "
          "once");
    const AdminCommands::Stream stream = [](const json&) { return AdminAnswer(json::object()); };
    CHECK(building_error(with(fixture.handlers(), "status", {"status", stream})) ==
          "admin commands: status is not a stream in the command table, but its handler opens a "
          "stream");
    // An awaiting handler is a one-reply handler too.
    const AdminCommands::AsyncReply waits = [](json) -> asio::awaitable<json> {
      co_return json::object();
    };
    CHECK(building_error(with(fixture.handlers(), "monitor", {"monitor", waits})) ==
          "admin commands: monitor is a stream in the command table, but its handler answers "
          "once");
  }

  TEST_CASE("an empty handler is named, and every problem is named at once") {
    const Fixture fixture;
    CHECK(building_error(with(fixture.handlers(), "drain", {"drain", AdminCommands::Reply()})) ==
          "admin commands: drain has an empty handler");
    Handlers many = without(fixture.handlers(), "leave");
    many.push_back({"reload", answer(json::object())});
    many.push_back({"bogus", answer(json::object())});
    CHECK(building_error(many) ==
          "admin commands: leave has no handler; reload has 2 handlers; bogus has a handler but "
          "no row in the command table");
  }

  TEST_CASE("an unknown command is refused with the table's names before any handler runs") {
    const Fixture fixture;
    const AdminCommands commands(fixture.handlers());
    CHECK(reply_to(commands, R"({"cmd":"frobnicate"})") ==
          json{{"ok", false},
               {"error",
                R"(unknown command "frobnicate" (known: status, stats, vips, ct, members, drain, )"
                R"(undrain, leave, reload, which, monitor, keys, sockets))"}});
    CHECK(*fixture.calls == 0);
  }

  TEST_CASE("arguments the table does not allow are refused before the handler runs") {
    const Fixture fixture;
    const AdminCommands commands(fixture.handlers());
    CHECK(reply_to(commands, R"({"cmd":"status","args":{"verbose":true}})") ==
          json{{"ok", false}, {"error", "status takes no arguments"}});
    CHECK(reply_to(commands, R"({"cmd":"members","args":{"status":"zombie"}})")["error"] ==
          R"(members: --status: "zombie" is not one of alive, suspect, dead, left)");
    CHECK(reply_to(commands, R"({"cmd":"which","args":{"proto":"tcp"}})")["error"] ==
          R"(which: missing argument "src")");
    CHECK(reply_to(commands, R"({"cmd":"monitor","args":{"level":"loud"}})")["error"] ==
          R"(monitor: --level: "loud" is not one of trace, debug, info, warn, error, critical)");
    CHECK(*fixture.calls == 0);
    CHECK(fixture.hub->subscribers() == 0);

    // What passes reaches the handler as it was sent.
    const json ok = reply_to(commands, R"({"cmd":"members","args":{"status":["alive","dead"]}})");
    CHECK(ok["result"] == json{{"cmd", "members"}, {"args", {{"status", {"alive", "dead"}}}}});
    CHECK(*fixture.calls == 1);
  }

  TEST_CASE("an awaiting handler is awaited; what a handler throws becomes the reply's error") {
    const Fixture fixture;
    const AdminCommands::AsyncReply waits = [](json args) -> asio::awaitable<json> {
      asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(20));
      co_await timer.async_wait(asio::use_awaitable);
      co_return json{{"waited", true}, {"args", args}};
    };
    const AdminCommands::Reply refuses = [](const json&) -> json {
      throw AdminError("gossip is off");
    };
    Handlers handlers = with(fixture.handlers(), "reload", {"reload", waits});
    handlers = with(std::move(handlers), "drain", {"drain", refuses});
    const AdminCommands commands(std::move(handlers));
    CHECK(reply_to(commands, R"({"cmd":"reload"})") ==
          json{{"ok", true}, {"result", {{"waited", true}, {"args", json::object()}}}});
    CHECK(reply_to(commands, R"({"cmd":"drain"})") ==
          json{{"ok", false}, {"error", "gossip is off"}});
  }

  TEST_CASE("a table of its own: the handlers are checked against the table given") {
    static constexpr CommandSpec kTable[] = {{.name = "ping", .summary = "answers"}};
    const AdminCommands commands({{"ping", answer(json{{"pong", true}})}}, kTable);
    CHECK(reply_to(commands, R"({"cmd":"ping"})")["result"] == json{{"pong", true}});
    CHECK(reply_to(commands, R"({"cmd":"status"})")["error"] ==
          R"(unknown command "status" (known: ping))");
  }
}  // TEST_SUITE

}  // namespace
}  // namespace mixlb
