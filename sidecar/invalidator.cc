#include "invalidator.h"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>
#include <time.h>

#include <algorithm>
#include <boost/asio/ip/multicast.hpp>
#include <boost/asio/post.hpp>
#include <cstring>

namespace mixlb {
namespace {

namespace ip = boost::asio::ip;

// The largest datagram, envelope included (the gossip layer's packet size).
constexpr std::size_t kDatagramSize = 1400;
constexpr std::size_t kLatencySamples = 8192;

std::string associated_data(const std::string& cluster) { return cluster + "/invalidate"; }

ip::address to_asio(const Address& a) {
  if (a.is_v4()) {
    ip::address_v4::bytes_type bytes;
    std::memcpy(bytes.data(), a.words.data(), 4);
    return ip::address_v4(bytes);
  }
  ip::address_v6::bytes_type bytes;
  std::memcpy(bytes.data(), a.words.data(), 16);
  return ip::address_v6(bytes);
}

Address from_node(const mixlb_node& n) {
  Address a;
  a.family = n.family == MIXLB_AF_INET6 ? AF_INET6 : AF_INET;
  std::memcpy(a.words.data(), n.addr, sizeof(n.addr));
  return a;
}

// A connection this node made to its own VIP (a health check): the client
// is the VIP itself, this node's address or loopback. No peer forwarded it.
bool local_client(const mixlb_flow_key& f, const Address& self) {
  if (std::memcmp(f.src, f.dst, sizeof(f.src)) == 0) return true;
  if (f.family == MIXLB_AF_INET) {
    if ((ntohl(f.src[0]) >> 24) == 127) return true;
    return self.is_v4() && f.src[0] == self.words[0];
  }
  const std::uint32_t loopback6[4] = {0, 0, 0, htonl(1)};
  if (std::memcmp(f.src, loopback6, sizeof(f.src)) == 0) return true;
  return self.is_v6() && std::memcmp(f.src, self.words.data(), sizeof(f.src)) == 0;
}

// The Unix time of a bpf_ktime_get_ns() stamp (CLOCK_MONOTONIC).
std::int64_t unix_us_of_monotonic(std::uint64_t at_ns) {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const std::int64_t mono_ns = std::int64_t{now.tv_sec} * 1000000000 + now.tv_nsec;
  const std::int64_t ago_ns = std::max<std::int64_t>(0, mono_ns - static_cast<std::int64_t>(at_ns));
  return unix_now_us() - ago_ns / 1000;
}

}  // namespace

std::vector<std::pair<std::string_view, std::uint64_t>> invalidation_counter_list(
    const InvalidationCounters& c) {
  return {{"closes", c.closes},
          {"local_only", c.local_only},
          {"fallback", c.fallback},
          {"sent_messages", c.sent_messages},
          {"sent_flows", c.sent_flows},
          {"send_errors", c.send_errors},
          {"dropped", c.dropped},
          {"received_messages", c.received_messages},
          {"received_flows", c.received_flows},
          {"applied", c.applied},
          {"unmatched", c.unmatched},
          {"refused_unauthenticated", c.refused_unauthenticated},
          {"refused_malformed", c.refused_malformed},
          {"refused_replayed", c.refused_replayed},
          {"refused_stale", c.refused_stale},
          {"refused_unknown_sender", c.refused_unknown_sender}};
}

Invalidator::Invalidator(boost::asio::io_context& io, InvalidatorSettings settings, DatapathMaps& maps,
                         GossipSend gossip_send)
    : io_(io),
      settings_(std::move(settings)),
      maps_(maps),
      gossip_send_(std::move(gossip_send)),
      guard_(settings_.max_age),
      rx_(io),
      tx_(io),
      rx_buffer_(65536),
      sequence_(static_cast<std::uint64_t>(unix_now_us())) {
  set_keys(settings_.keys);
}

Invalidator::~Invalidator() {
  *alive_ = false;
  stop();
}

void Invalidator::set_keys(const std::vector<gossip::Key>& keys) {
  settings_.keys = keys;
  keyring_.reset();
  if (keys.empty()) return;
  keyring_.emplace(associated_data(settings_.cluster), keys.front());
  for (std::size_t i = 1; i < keys.size(); ++i) keyring_->add(keys[i]);
}

std::error_code Invalidator::start(std::string& what) {
  boost::system::error_code ec;
  const auto mode = settings_.mode;
  if (mode == InvalidationMode::kOff) return {};
  if (settings_.kernel_apply && !kernel_) {
    auto loaded = CtInvalidateProgram::load(maps_.conntrack_fd());
    if (loaded) {
      kernel_ = std::move(*loaded);
    } else {
      spdlog::warn("invalidation: {}; received invalidations are applied one flow per syscall",
                   loaded.error().message());
    }
  }
  if (mode == InvalidationMode::kGossip) return {};
  const Address& self = settings_.self_address;
  if ((mode == InvalidationMode::kMulticast || mode == InvalidationMode::kBroadcast) && !self.is_v4()) {
    what = fmt::format("{} invalidation needs an IPv4 node address, this node has {}", to_string(mode),
                       self.to_string());
    return std::make_error_code(std::errc::address_family_not_supported);
  }
  // The receiving socket: at the group, at the broadcast address, or at
  // this node's address, so each sees only what is meant for it.
  const Address& at = mode == InvalidationMode::kMulticast   ? settings_.group
                      : mode == InvalidationMode::kBroadcast ? settings_.broadcast
                                                             : self;
  const ip::udp::endpoint rx_at(to_asio(at), settings_.port);
  what = fmt::format("binding the invalidation socket to {}:{}", at.to_string(), settings_.port);
  rx_.open(rx_at.protocol(), ec);
  if (!ec) rx_.set_option(ip::udp::socket::reuse_address(true), ec);
  if (!ec) rx_.bind(rx_at, ec);
  if (ec) return ec;
  if (mode == InvalidationMode::kMulticast) {
    what = fmt::format("joining {} on {}", settings_.group.to_string(), self.to_string());
    rx_.set_option(ip::multicast::join_group(to_asio(settings_.group).to_v4(), to_asio(self).to_v4()), ec);
    if (ec) return ec;
  }
  // The sending socket, from this node's address (an ephemeral port in the
  // group and broadcast modes, whose receivers are not bound to it).
  const ip::udp::endpoint tx_at(to_asio(self), 0);
  what = fmt::format("opening the invalidation sender on {}", self.to_string());
  tx_.open(tx_at.protocol(), ec);
  if (!ec) tx_.bind(tx_at, ec);
  if (!ec) tx_local_ = tx_.local_endpoint(ec);
  if (!ec) tx_.non_blocking(true, ec);
  if (ec) return ec;
  if (mode == InvalidationMode::kMulticast) {
    tx_.set_option(ip::multicast::outbound_interface(to_asio(self).to_v4()), ec);
    if (!ec) tx_.set_option(ip::multicast::hops(1), ec);
    if (!ec) tx_.set_option(ip::multicast::enable_loopback(false), ec);
    if (ec) return ec;
  }
  if (mode == InvalidationMode::kBroadcast) {
    tx_.set_option(ip::udp::socket::broadcast(true), ec);
    if (ec) return ec;
  }
  what.clear();
  receive();
  return {};
}

void Invalidator::stop() {
  boost::system::error_code ec;
  rx_.close(ec);
  tx_.close(ec);
}

// --- sending -----------------------------------------------------------------

void Invalidator::on_close(const mixlb_close_event& event) {
  ++counters_.closes;
  if (settings_.mode == InvalidationMode::kOff) return;
  const bool origin_known = event.origin_node != MIXLB_NODE_NONE;
  if (!origin_known && ((event.flags & MIXLB_CLOSE_EV_DELETED) || local_client(event.flow, settings_.self_address))) {
    ++counters_.local_only;
    return;
  }
  const std::int64_t closed_us = unix_us_of_monotonic(event.at_ns);
  if (settings_.mode != InvalidationMode::kTargeted) {
    queue(std::nullopt, event.flow, closed_us);
    return;
  }
  if (origin_known) {
    if (auto to = node_address(event.origin_node)) {
      queue(*to, event.flow, closed_us);
      return;
    }
  }
  ++counters_.fallback;
  for (const Address& to : peer_addresses()) queue(to, event.flow, closed_us);
}

void Invalidator::queue(std::optional<Address> to, const mixlb_flow_key& flow, std::int64_t closed_us) {
  if (pending_flows_ >= settings_.max_pending) {
    ++counters_.dropped;
    return;
  }
  Pending& p = pending_[to];
  if (p.flows.empty() || closed_us < p.oldest_close_us) p.oldest_close_us = closed_us;
  p.flows.push_back(flow);
  ++pending_flows_;
  // Sent once the closes of this ring drain are all queued.
  if (flush_posted_) return;
  flush_posted_ = true;
  boost::asio::post(io_, [this, alive = alive_] {
    if (*alive) flush();
  });
}

void Invalidator::flush() {
  flush_posted_ = false;
  addresses_.clear();
  const std::size_t envelope = keyring_ ? gossip::kEnvelopeOverhead : 0;
  const std::size_t room =
      settings_.mode == InvalidationMode::kGossip ? settings_.gossip_payload : kDatagramSize - envelope;
  for (auto& [to, pending] : pending_) send_batches(to, pending, room);
  pending_.clear();
  pending_flows_ = 0;
}

void Invalidator::send_batches(const std::optional<Address>& to, Pending& pending, std::size_t room) {
  InvalidationBatch batch;
  batch.sender = settings_.self_id;
  batch.closed_us = pending.oldest_close_us;
  std::size_t bytes = kInvalidationHeaderSize;
  auto send = [&] {
    batch.sequence = sequence_++;
    batch.sent_us = unix_now_us();
    const auto plaintext = encode_invalidations(batch);
    if (settings_.mode == InvalidationMode::kGossip) {
      if (auto ec = gossip_send_ ? gossip_send_(plaintext) : std::make_error_code(std::errc::not_connected)) {
        ++counters_.send_errors;
        spdlog::debug("invalidation: the gossip layer refused an event: {}", ec.message());
      } else {
        ++counters_.sent_messages;
        counters_.sent_flows += batch.flows.size();
      }
    } else {
      const Address& dest = to ? *to
                            : settings_.mode == InvalidationMode::kMulticast ? settings_.group
                                                                            : settings_.broadcast;
      send_datagram(dest, plaintext);
      counters_.sent_flows += batch.flows.size();
    }
    batch.flows.clear();
    bytes = kInvalidationHeaderSize;
  };
  for (const mixlb_flow_key& f : pending.flows) {
    if (bytes + encoded_flow_size(f) > room) send();
    batch.flows.push_back(f);
    bytes += encoded_flow_size(f);
  }
  if (!batch.flows.empty()) send();
}

void Invalidator::send_datagram(const Address& to, std::span<const std::uint8_t> plaintext) {
  std::vector<std::uint8_t> sealed;
  std::span<const std::uint8_t> bytes = plaintext;
  if (keyring_) {
    sealed = keyring_->seal(plaintext);
    bytes = sealed;
  }
  boost::system::error_code ec;
  tx_.send_to(boost::asio::buffer(bytes.data(), bytes.size()), ip::udp::endpoint(to_asio(to), settings_.port), 0,
              ec);
  if (ec) {
    ++counters_.send_errors;
    spdlog::debug("invalidation: sending to {}:{}: {}", to.to_string(), settings_.port, ec.message());
    return;
  }
  ++counters_.sent_messages;
}

std::optional<Address> Invalidator::lookup_address(std::uint32_t node_id) const {
  auto node = maps_.node(node_id);
  if (!node || !node->has_value()) return std::nullopt;
  return from_node(**node);
}

std::optional<Address> Invalidator::node_address(std::uint32_t node_id) const {
  // Remembered until the next flush: the closes of one drain name a few
  // nodes many times, and each answer is a map lookup.
  if (auto it = addresses_.find(node_id); it != addresses_.end()) return it->second;
  return addresses_.emplace(node_id, lookup_address(node_id)).first->second;
}

std::vector<Address> Invalidator::peer_addresses() const {
  std::vector<Address> out;
  auto ids = maps_.node_ids();
  if (!ids) return out;
  for (std::uint32_t id : *ids)
    if (id != settings_.self_id)
      if (auto a = node_address(id)) out.push_back(*a);
  return out;
}

// --- receiving ---------------------------------------------------------------

void Invalidator::receive() {
  rx_.async_receive_from(boost::asio::buffer(rx_buffer_), rx_from_,
                         [this, alive = alive_](const boost::system::error_code& ec, std::size_t n) {
                           if (!*alive || ec == boost::asio::error::operation_aborted || !rx_.is_open()) return;
                           // A broadcast comes back to its sender: not news.
                           if (!ec && rx_from_ != tx_local_) on_datagram(std::span(rx_buffer_.data(), n));
                           receive();
                         });
}

void Invalidator::on_datagram(std::span<const std::uint8_t> datagram) {
  ++counters_.received_messages;
  if (!keyring_) {
    apply(datagram);
    return;
  }
  auto opened = keyring_->open(datagram);
  if (!opened) {
    ++counters_.refused_unauthenticated;
    spdlog::debug("invalidation: a datagram of {} bytes from {} refused: {}", datagram.size(),
                  rx_from_.address().to_string(), opened.error().message());
    return;
  }
  apply(*opened);
}

void Invalidator::on_gossip_event(std::span<const std::uint8_t> payload) {
  ++counters_.received_messages;
  apply(payload, /*windowed=*/false);
}

void Invalidator::apply(std::span<const std::uint8_t> plaintext, bool windowed) {
  auto batch = decode_invalidations(plaintext);
  if (!batch) {
    ++counters_.refused_malformed;
    spdlog::debug("invalidation refused: {}", batch.error());
    return;
  }
  if (batch->sender == settings_.self_id || !lookup_address(batch->sender)) {
    ++counters_.refused_unknown_sender;
    spdlog::debug("invalidation refused: sender {:08x} is not a peer in the data path", batch->sender);
    return;
  }
  const std::int64_t now = unix_now_us();
  switch (windowed ? guard_.check(batch->sender, batch->sequence, batch->sent_us, now)
                   : guard_.check_age(batch->sent_us, now)) {
    case ReplayGuard::Verdict::kFresh: break;
    case ReplayGuard::Verdict::kReplayed:
      ++counters_.refused_replayed;
      spdlog::debug("invalidation refused: sequence {} of {:08x} seen already", batch->sequence, batch->sender);
      return;
    case ReplayGuard::Verdict::kStale:
      ++counters_.refused_stale;
      spdlog::debug("invalidation refused: sent {} ms from this node's clock", (now - batch->sent_us) / 1000);
      return;
  }
  counters_.received_flows += batch->flows.size();
  const auto latency = static_cast<std::uint32_t>(std::clamp<std::int64_t>(now - batch->closed_us, 0, UINT32_MAX));
  const std::size_t deleted = delete_entries(batch->flows, batch->sender);
  counters_.applied += deleted;
  counters_.unmatched += batch->flows.size() - deleted;
  record_latency(latency, deleted);
}

std::size_t Invalidator::delete_entries(std::span<const mixlb_flow_key> flows, std::uint32_t sender) {
  if (kernel_) {
    auto deleted = kernel_->apply(flows, sender);
    if (deleted) return *deleted;
    // A run that failed may have deleted part of the batch; the per-flow
    // calls below find those gone and count them unmatched.
    spdlog::warn("invalidation: {}; applying one flow per syscall from now on", deleted.error().message());
    kernel_.reset();
  }
  std::size_t n = 0;
  for (const mixlb_flow_key& f : flows) {
    auto deleted = maps_.invalidate(f, sender);
    if (!deleted) {
      spdlog::warn("invalidation: {}", deleted.error().message());
      continue;
    }
    n += *deleted ? 1 : 0;
  }
  return n;
}

void Invalidator::record_latency(std::uint32_t latency_us, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    if (latencies_us_.size() < kLatencySamples) {
      latencies_us_.push_back(latency_us);
    } else {
      latencies_us_[latency_next_] = latency_us;
      latency_next_ = (latency_next_ + 1) % kLatencySamples;
    }
  }
}

LatencySummary Invalidator::latency() const {
  LatencySummary s;
  s.samples = latencies_us_.size();
  if (s.samples == 0) return s;
  std::vector<std::uint32_t> v = latencies_us_;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return static_cast<double>(v[std::min(v.size() - 1, static_cast<std::size_t>(q * v.size()))]); };
  s.p50_us = at(0.50);
  s.p99_us = at(0.99);
  s.max_us = v.back();
  return s;
}

}  // namespace mixlb
