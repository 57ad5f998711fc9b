#pragma once
// Sockets on 127.0.0.1 for the reuseport tests: what an app would hand over.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <doctest/doctest.h>

#include <cstdint>

#include "kernel/unique_fd.h"

namespace mixlb::test {

// A socket of `type` on 127.0.0.1:port (0: a fresh port), with SO_REUSEPORT
// unless told not; a TCP one listening (backlog 32) unless told not.
inline UniqueFd loopback_socket(int type, std::uint16_t port, bool reuseport = true, bool listen = true) {
  UniqueFd fd(::socket(AF_INET, type, 0));
  REQUIRE(fd);
  const int one = 1;
  if (reuseport) REQUIRE(::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_port = htons(port);
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&at), sizeof(at)) == 0);
  if (type == SOCK_STREAM && listen) REQUIRE(::listen(fd.get(), 32) == 0);
  return fd;
}

}  // namespace mixlb::test
