// SocketService with the real selector: adopting a running process's
// sockets (this test's own, through pidfd_getfd), the view `mixlbctl
// sockets` prints, and a sidecar restart that takes the generations over
// from the pinned maps and the saved registry.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "kernel/unique_fd.h"
#include "loopback.h"
#include "netns_fixture.h"
#include "pin_dir.h"
#include "reuseport/sockets.h"

namespace mixlb {
namespace {

constexpr std::uint16_t kManaged = 7180, kOther = 7181;

UniqueFd listener(std::uint16_t port, bool reuseport) { return test::loopback_socket(SOCK_STREAM, port, reuseport); }

UniqueFd connect_to(std::uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_port = htons(port);
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&at), sizeof(at)) == 0);
  return fd;
}

// The registry's file, beside the run directory's other files (not on bpffs).
std::string state_file() { return "/tmp/mixlb-test-sockets-" + std::to_string(::getpid()) + ".json"; }

SocketServiceSettings settings_in(const std::string& pin_dir) {
  SocketServiceSettings s;
  s.pin_dir = pin_dir;
  s.state_path = state_file();
  s.managed = [](const ServiceKey& k) { return k.proto == IPPROTO_TCP && k.port == kManaged; };
  return s;
}

}  // namespace

TEST_SUITE("reuseport" * doctest::skip(cannot_run())) {
  TEST_CASE("adopt takes a process's managed reuseport listeners, says why it left the others, and a restart keeps them") {
    test_net();
    test::PinDir pins;
    const std::string state = state_file();
    struct RemoveState {
      std::string path;
      ~RemoveState() { std::filesystem::remove(path); }
    } remove_state{state};
    boost::asio::io_context io;
    UniqueFd managed = listener(kManaged, true);
    UniqueFd plain = listener(kOther + 1, false);
    UniqueFd unmanaged = listener(kOther, true);

    auto service = SocketService::start(io, settings_in(pins.path));
    REQUIRE_MESSAGE(service.has_value(), (service ? "" : service.error().message()));
    auto adopted = (*service)->adopt(::getpid(), true);
    REQUIRE_MESSAGE(adopted.has_value(), (adopted ? "" : adopted.error()));
    REQUIRE(adopted->registered.size() == 1);
    CHECK(adopted->registered[0].service.to_string() == "tcp 127.0.0.1:7180");
    CHECK(adopted->registered[0].active);
    bool said_no_reuseport = false, said_unmanaged = false;
    for (const auto& k : adopted->skipped) {
      if (k.fd == plain.get()) said_no_reuseport = k.why.find("no SO_REUSEPORT") != std::string::npos;
      if (k.fd == unmanaged.get()) said_unmanaged = k.why.find("not a managed VIP port") != std::string::npos;
    }
    CHECK(said_no_reuseport);
    CHECK(said_unmanaged);
    // Adopting again takes nothing new, and says so.
    auto again = (*service)->adopt(::getpid(), true);
    REQUIRE_FALSE(again.has_value());
    CHECK(again.error().find("registered already, in generation 1") != std::string::npos);

    // The view: the socket listening, its accept queue, the selections.
    UniqueFd c1 = connect_to(kManaged), c2 = connect_to(kManaged);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto view = (*service)->view();
    const auto& gen = view["services"][0]["generations"][0];
    CHECK(gen["state"] == "active");
    CHECK(gen["selected"] == 2);
    CHECK(gen["workers"][0]["state"] == "listen");
    CHECK(gen["workers"][0]["queued"] == 2);
    CHECK(gen["workers"][0]["backlog"] == 32);

    // A sidecar restart: the next one takes the generation over.
    service->reset();
    REQUIRE(std::filesystem::exists(state));
    auto next = SocketService::start(io, settings_in(pins.path));
    REQUIRE(next.has_value());
    auto after = (*next)->view();
    REQUIRE(after["services"].size() == 1);
    CHECK(after["services"][0]["generations"][0]["state"] == "active");
    CHECK(after["services"][0]["generations"][0]["selected"] == 2);  // the pinned counters too
    UniqueFd c3 = connect_to(kManaged);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK((*next)->view()["services"][0]["generations"][0]["selected"] == 3);

    // The app closes its listener: the generation goes at the next reconcile.
    managed.reset();
    (*next)->reconcile();
    CHECK((*next)->view()["services"].empty());
    (*next)->unpin();
    CHECK_FALSE(std::filesystem::exists(state));
  }
}

}  // namespace mixlb
