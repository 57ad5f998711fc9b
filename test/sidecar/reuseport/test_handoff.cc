// The handoff socket end to end: the request parser and reply encoder on
// canned lines, then a real HandoffServer (handoff_harness.h) driven by the
// plain-C client apps use (client/mixlb_sockets.h), and by its wire step
// for requests the client itself would never send. Real sockets on
// 127.0.0.1 cross the Unix socket, so a fd's SO_COOKIE shows the server got
// the very socket the client sent; /proc/self/fd shows it let them go.
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "client/mixlb_sockets.h"
#include "handoff_harness.h"
#include "kernel/unique_fd.h"
#include "loopback.h"
#include "reuseport/handoff.h"

namespace mixlb {
namespace {

using nlohmann::json;
using test::loopback_socket;
using test::open_fd_count;
using test::RunningHandoff;

// mixlb_register_sockets with its outcome as one value: "" when the sidecar
// took the sockets, the error otherwise.
std::string register_fds(const std::string& path, const std::vector<int>& fds,
                         const char* label = nullptr, int ready = 1) {
  char error[2048];
  const int rc = mixlb_register_sockets(path.c_str(), fds.data(), fds.size(), label, ready, error,
                                        sizeof(error));
  if (rc == 0) {
    CHECK(error[0] == 0);
    return "";
  }
  CHECK(rc == -1);
  REQUIRE(error[0] != 0);
  return error;
}

// One raw request (`line` as given, newline and all) and the server's reply.
json exchange(const std::string& path, const std::string& line, const std::vector<int>& fds) {
  char reply[16384];
  char error[512];
  const int rc = mixlb_sockets_exchange(path.c_str(), line.data(), line.size(), fds.data(),
                                        fds.size(), reply, sizeof(reply), error, sizeof(error));
  INFO("exchange error: " << error);
  REQUIRE(rc == 0);
  return json::parse(reply);
}

// The error of a raw request the server must refuse.
std::string refusal(const std::string& path, const std::string& line, const std::vector<int>& fds) {
  const json reply = exchange(path, line, fds);
  CHECK(reply.size() == 2);
  CHECK(reply.at("ok") == false);
  return reply.at("error").get<std::string>();
}

// A socket file with nobody behind it, as a crashed sidecar leaves.
void make_stale_socket(const std::string& path) {
  const UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
  REQUIRE(fd);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
}

TEST_SUITE("handoff") {
  TEST_CASE("parse_handoff_request: defaults, values, and what is wrong") {
    auto empty = parse_handoff_request("{}");
    REQUIRE(empty);
    CHECK(empty->label.empty());
    CHECK(empty->ready);
    auto full = parse_handoff_request(R"({"label":"web-v2","ready":false})");
    REQUIRE(full);
    CHECK(full->label == "web-v2");
    CHECK_FALSE(full->ready);

    auto error_of = [](std::string_view line) {
      const auto parsed = parse_handoff_request(line);
      REQUIRE_FALSE(parsed);
      return parsed.error();
    };
    CHECK(error_of(R"({"label":"web",)")
              .starts_with("the request line is not JSON: parse error at line 1"));
    CHECK(
        error_of("[1]") ==
        R"(the request line must be a JSON object such as {"label":"web","ready":true}, not array)");
    CHECK(error_of(R"({"label":7})") == R"("label" must be a string, not number)");
    CHECK(error_of(R"({"ready":"yes"})") == R"("ready" must be true or false, not string)");
    CHECK(error_of(R"({"lable":"web"})") ==
          R"(unknown key "lable" (a request takes "label" and "ready"))");
  }

  TEST_CASE("encode_handoff_reply: the protocol's lines") {
    ServiceKey web;
    web.proto = IPPROTO_TCP;
    web.address = Address::v4(0);
    web.port = 80;
    CHECK(
        encode_handoff_reply(std::vector<Registered>{{web, 2, 1, true, 1234}}) ==
        R"({"ok":true,"registered":[{"service":"tcp 0.0.0.0:80","generation":2,"sockets":1,"active":true}]})"
        "\n");
    CHECK(encode_handoff_reply(std::unexpected(std::string("no \"fds\"\n"))) ==
          R"({"ok":false,"error":"no \"fds\"\n"})"
          "\n");
    // Bytes that are not UTF-8 (quoted back from a client) still make a line.
    CHECK(json::parse(encode_handoff_reply(std::unexpected(std::string("bad \xff")))).at("ok") ==
          false);
  }

  TEST_CASE("a client's sockets reach the callback, and the server closes its copies") {
    RunningHandoff server;
    const UniqueFd tcp = loopback_socket(SOCK_STREAM, 0);
    const UniqueFd udp = loopback_socket(SOCK_DGRAM, 0);
    const std::size_t before = open_fd_count();

    CHECK(register_fds(server.path(), {tcp.get(), udp.get()}, "web-v2") == "");

    const auto seen = server.seen();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].pid == ::getpid());
    CHECK(seen[0].label == "web-v2");
    CHECK(seen[0].ready);
    REQUIRE(seen[0].fds.size() == 2);
    CHECK(seen[0].fds[0].cookie == test::socket_cookie(tcp.get()));
    CHECK(seen[0].fds[1].cookie == test::socket_cookie(udp.get()));
    for (const auto& fd : seen[0].fds) {
      CHECK(fd.socket);
      CHECK(fd.cloexec);
    }
    // While the callback ran, the two received fds were open besides both
    // ends of the connection; once it has answered they are all gone.
    CHECK(seen[0].open_fds >= before + 2);
    CHECK(test::eventually([&] { return open_fd_count() == before; }));
    CHECK(server.shutdown());
  }

  TEST_CASE("the label and ready as the app gives them, escaped on the wire") {
    RunningHandoff server;
    const UniqueFd tcp = loopback_socket(SOCK_STREAM, 0);
    CHECK(register_fds(server.path(), {tcp.get()}, nullptr, 0) == "");
    CHECK(register_fds(server.path(), {tcp.get()}, "", 1) == "");
    const std::string odd = "we\"b\\v2\n\t\x01 ü";
    CHECK(register_fds(server.path(), {tcp.get()}, odd.c_str(), 1) == "");
    const auto seen = server.seen();
    REQUIRE(seen.size() == 3);
    CHECK(seen[0].label.empty());
    CHECK_FALSE(seen[0].ready);
    CHECK(seen[1].label.empty());
    CHECK(seen[1].ready);
    CHECK(seen[2].label == odd);
  }

  TEST_CASE("the callback's refusal reaches the client") {
    RunningHandoff server;
    const UniqueFd tcp = loopback_socket(SOCK_STREAM, 0);
    server.refuse_with("socket 1 (tcp 127.0.0.1:9): not a VIP port this node serves");
    CHECK(register_fds(server.path(), {tcp.get()}) ==
          "the sidecar refused: socket 1 (tcp 127.0.0.1:9): not a VIP port this node serves");
    // The client decodes what JSON escaped in the reply.
    server.refuse_with("\"quoted\"\tand \\ \x01 \u00fc");
    CHECK(register_fds(server.path(), {tcp.get()}) == "the sidecar refused: \"quoted\"\tand \\ \x01 \u00fc");
    // And an error cut to fit the caller's buffer still ends in a NUL.
    char small[32];
    const int fd = tcp.get();
    CHECK(mixlb_register_sockets(server.path().c_str(), &fd, 1, nullptr, 1, small, sizeof(small)) == -1);
    CHECK(std::string(small) == std::string("the sidecar refused: \"quoted\"\tand \\ \x01 \u00fc").substr(0, 31));
  }

  TEST_CASE(
      "bad requests get an error that says what was wrong, close every fd, and stop nothing") {
    RunningHandoff server;
    const UniqueFd tcp = loopback_socket(SOCK_STREAM, 0);
    const std::size_t before = open_fd_count();
    const std::vector<int> one{tcp.get()};

    CHECK(refusal(server.path(), "{\"label\":\"web\"}\n", {}) ==
          "the request carried no fds: send 1 to 64 sockets as SCM_RIGHTS with the request line");
    CHECK(refusal(server.path(), "{\"label\":web}\n", one)
              .starts_with("the request line is not JSON: "));
    CHECK(refusal(server.path(), "{\"lable\":\"web\"}\n", one) ==
          R"(unknown key "lable" (a request takes "label" and "ready"))");
    CHECK(refusal(server.path(), "{\"ready\":1}\n", one) ==
          R"("ready" must be true or false, not number)");
    CHECK(refusal(server.path(), "{}\n{}\n", one) ==
          "a request is one line; 3 more byte(s) followed its newline");
    CHECK(refusal(server.path(), "{\"label\":\"" + std::string(5000, 'x') + "\"}\n", one) ==
          "the request line is longer than 4096 bytes");
    // 65 fds: the server's buffer holds 64, so the kernel cuts the message.
    const std::vector<int> many(kHandoffMaxFds + 1, tcp.get());
    CHECK(refusal(server.path(), "{}\n", many) == "too many fds: a request may carry at most 64");

    CHECK(server.seen().empty());
    CHECK(test::eventually([&] { return open_fd_count() == before; }));
    // The longest line the protocol allows still goes.
    const std::string longest = "{\"label\":\"" + std::string(kHandoffMaxLine - 12, 'x') + "\"}\n";
    REQUIRE(longest.size() == kHandoffMaxLine + 1);
    CHECK(exchange(server.path(), longest, one).at("ok") == true);
    CHECK(server.seen().size() == 1);
    CHECK(server.shutdown());
  }

  TEST_CASE("the client refuses what the server would, without connecting") {
    RunningHandoff server;
    const UniqueFd tcp = loopback_socket(SOCK_STREAM, 0);
    CHECK(register_fds(server.path(), {}) == "0 sockets: register 1 to 64 at a time");
    CHECK(register_fds(server.path(), std::vector<int>(65, tcp.get())) ==
          "65 sockets: register 1 to 64 at a time");
    CHECK(register_fds(server.path(), {tcp.get()}, std::string(5000, 'x').c_str()) ==
          "the label is too long: the request line has at most 4096 bytes");
    CHECK(
        register_fds(server.dir().file("nobody.sock"), {tcp.get()}) ==
        "cannot connect to " + server.dir().file("nobody.sock") +
            ": No such file or directory (is the mixlb sidecar running with its handoff socket?)");
    CHECK(server.seen().empty());
  }

  TEST_CASE("a connection that sends no complete request in time gets an error") {
    HandoffServerOptions options;
    options.request_timeout = std::chrono::milliseconds(150);
    RunningHandoff server(options);
    const UniqueFd tcp = loopback_socket(SOCK_STREAM, 0);
    CHECK(refusal(server.path(), "", {}) == "no complete request within 150 ms");
    CHECK(refusal(server.path(), "{\"label\":", {tcp.get()}) ==
          "no complete request within 150 ms");
    CHECK(test::eventually([&] { return server.connections() == 0; }));
  }

  TEST_CASE("only root and the daemon's own uid may register") {
    HandoffServerOptions options;
    options.allowed_uids = {0, 4321};
    options.peer_credentials = [](int) -> std::expected<PeerCredentials, std::string> {
      return PeerCredentials{77, 1234, 1234};
    };
    RunningHandoff server(options);
    const UniqueFd tcp = loopback_socket(SOCK_STREAM, 0);
    CHECK(register_fds(server.path(), {tcp.get()}) ==
          "the sidecar refused: uid 1234 may not register sockets here (allowed: 0, 4321)");
    CHECK(server.seen().empty());
  }

  TEST_CASE("connections beyond the limit are refused") {
    HandoffServerOptions options;
    options.max_connections = 1;
    RunningHandoff server(options);
    const UniqueFd tcp = loopback_socket(SOCK_STREAM, 0);
    // A silent connection holds the only slot until its deadline.
    const UniqueFd silent(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, server.path().c_str(), sizeof(address.sun_path) - 1);
    REQUIRE(::connect(silent.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    REQUIRE(test::eventually([&] { return server.connections() == 1; }));
    CHECK(register_fds(server.path(), {tcp.get()}) ==
          "the sidecar refused: too many handoff connections (limit 1); try again later");
  }

  TEST_CASE(
      "start: 0600, a live server's path refused, a stale file replaced; stop removes only its "
      "own") {
    test::ScratchDir dir;
    boost::asio::io_context io;
    const auto ignore =
        [](const RegisterRequest&) -> std::expected<std::vector<Registered>, std::string> {
      return std::vector<Registered>{};
    };
    const std::string path = dir.file("handoff.sock");

    HandoffServer first(io, ignore);
    first.start(path);
    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == 0600);

    HandoffServer second(io, ignore);
    CHECK_THROWS_WITH_AS(second.start(path),
                         ("another mixlb is already serving " + path).c_str(),
                         std::runtime_error);
    CHECK_THROWS_WITH_AS(first.start(path), doctest::Contains("already serves"),
                         std::runtime_error);
    first.stop();
    CHECK_FALSE(std::filesystem::exists(path));

    make_stale_socket(path);
    second.start(path);
    CHECK(second.path() == path);
    // Someone else's file now: stop() leaves it.
    REQUIRE(::unlink(path.c_str()) == 0);
    make_stale_socket(path);
    second.stop();
    CHECK(std::filesystem::exists(path));

    const std::string plain = dir.file("plain");
    std::ofstream(plain) << "not a socket";
    CHECK_THROWS_WITH_AS(first.start(plain),
                         (plain + " exists and is not a socket; refusing to replace it").c_str(),
                         std::runtime_error);
    CHECK_THROWS_WITH_AS(first.start(dir.file(std::string(200, 'x'))),
                         doctest::Contains("longer than 107 bytes"), std::runtime_error);
    // A missing directory is made, private (admin/socket_file.h).
    const std::string deeper = dir.file("missing/handoff.sock");
    first.start(deeper);
    REQUIRE(::lstat(dir.file("missing").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);
    first.stop();
    CHECK_FALSE(std::filesystem::exists(deeper));
  }
}

}  // namespace
}  // namespace mixlb
