#include "gossip_bridge.h"

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <variant>

namespace mixlb {
namespace {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};

}  // namespace

GossipBridge::GossipBridge(boost::asio::io_context& io, std::string self_name,
                           std::vector<VipEntry> vips, GossipSettings settings,
                           std::function<void()> on_change,
                           std::function<void(std::vector<gossip::Key>)> on_keyring)
    : io_(io),
      membership_(std::move(self_name), std::move(vips), settings.flow_grace),
      address_(settings.options.config.address),
      rejoin_interval_(settings.options.config.rejoin_interval),
      settings_(std::move(settings)),
      on_change_(std::move(on_change)),
      on_keyring_(std::move(on_keyring)) {}

GossipBridge::~GossipBridge() {
  *alive_ = false;
  if (transport_) stop(gossip::StopMode::kQuiet);
}

std::error_code GossipBridge::bind() {
  if (transport_) return {};
  auto alive = alive_;
  // The options go to the transport (the keyring moves with them); what the
  // bridge needs later is kept in settings_ apart from them.
  transport_ = std::make_unique<gossip::Transport>(
      std::move(settings_.options),
      [this, alive](gossip::Event event) {
        // The transport's thread: hand the event over and return.
        boost::asio::post(io_, [this, alive, event = std::move(event)] {
          if (*alive) on_event(event);
        });
      },
      [this, alive](gossip::KeyringChanged changed) {
        boost::asio::post(io_, [this, alive, keys = std::move(changed.keys)]() mutable {
          if (*alive && !stopped_ && on_keyring_) on_keyring_(std::move(keys));
        });
      });
  if (auto ec = transport_->bind()) return ec;
  address_ = transport_->address();
  return {};
}

std::error_code GossipBridge::start(const MemberMetadata& self) {
  if (auto ec = bind()) return ec;
  membership_.set_self(self, address_);
  std::vector<gossip::Address> seeds;
  for (const auto& s : settings_.seeds)
    if (s != address_) seeds.push_back(s);
  join_wait_ = JoinWait(seeds.size(), !settings_.seed_names.empty());
  if (auto ec = transport_->start(seeds, settings_.seed_names)) return ec;
  if (auto ec = transport_->set_metadata(encode_metadata(self)))
    spdlog::error("gossip: publishing this node's metadata: {}", ec.message());
  if (settings_.seed_names.empty()) {
    spdlog::info("gossip on {} (cluster '{}'), joining through {} seed(s)", address_.to_string(),
                 settings_.cluster, seeds.size());
  } else {
    spdlog::info("gossip on {} (cluster '{}'), joining through {} seed(s) and the addresses of {} "
                 "name(s)",
                 address_.to_string(), settings_.cluster, seeds.size(), settings_.seed_names.size());
  }
  if (join_wait_.done()) {  // no seed: the first node of a cluster
    joined_ = true;
    on_change_();
  }
  return {};
}

bool GossipBridge::publish(const MemberMetadata& self) {
  const bool changed = membership_.set_self(self, address_);
  if (transport_ && !stopped_) {
    if (auto ec = transport_->set_metadata(encode_metadata(self)))
      spdlog::error("gossip: publishing this node's metadata: {}", ec.message());
  }
  return changed;
}

void GossipBridge::stop(gossip::StopMode mode) {
  if (!transport_ || stopped_) return;
  stopped_ = true;
  if (auto ec = transport_->stop(mode)) spdlog::warn("gossip stopped uncleanly: {}", ec.message());
}

void GossipBridge::snapshot(std::function<void(SnapshotResult)> done) {
  if (!transport_) {
    done(std::unexpected(std::make_error_code(std::errc::not_connected)));
    return;
  }
  auto alive = alive_;
  transport_->snapshot_async([this, alive, done = std::move(done)](SnapshotResult result) mutable {
    // Either the gossip thread or, when the transport is not running, this
    // one: post in both cases, so `done` always runs on the io_context.
    boost::asio::post(io_, [alive, done = std::move(done), result = std::move(result)]() mutable {
      if (*alive) done(std::move(result));
    });
  });
}

void GossipBridge::key_request(gossip::KeyOp op, std::optional<gossip::Key> key,
                               std::function<void(KeyRequestResult)> done) {
  if (!transport_) {
    done(std::unexpected(std::make_error_code(std::errc::not_connected)));
    return;
  }
  auto alive = alive_;
  transport_->key_request_async(op, std::move(key),
                                [this, alive, done = std::move(done)](KeyRequestResult result) mutable {
                                  // Posted whichever thread answers, as snapshot() does.
                                  boost::asio::post(io_, [alive, done = std::move(done),
                                                          result = std::move(result)]() mutable {
                                    if (*alive) done(std::move(result));
                                  });
                                });
}

std::error_code GossipBridge::send_user_event(std::vector<std::uint8_t> payload) {
  if (!transport_ || stopped_) return std::make_error_code(std::errc::not_connected);
  return transport_->send_user_event(std::move(payload));
}

std::vector<gossip::Key> GossipBridge::keys() const {
  return transport_ ? transport_->keys() : std::vector<gossip::Key>{};
}

void GossipBridge::on_event(const gossip::Event& event) {
  if (stopped_) return;
  std::visit(Overloaded{
                 [&](const gossip::MemberEvent& e) {
                   if (membership_.apply(e)) on_change_();
                 },
                 [&](const gossip::UserEventDelivery& e) {
                   ++user_events_;
                   spdlog::trace("gossip: user event {}#{} ({} bytes)", e.origin, e.seq,
                                 e.payload.size());
                   if (on_user_event_) on_user_event_(e);
                 },
                 [&](const gossip::SyncResult& r) {
                   // The periodic state sync is routine (every 30 s or so); a
                   // join, a re-join and a failed sync are not.
                   const bool routine = r.purpose == gossip::SyncPurpose::kPeriodic;
                   if (r.error)
                     spdlog::log(routine ? spdlog::level::debug : spdlog::level::warn,
                                 "gossip: {} sync with {} failed: {}", gossip::to_string(r.purpose),
                                 r.peer.to_string(), r.error.message());
                   else
                     spdlog::log(routine ? spdlog::level::debug : spdlog::level::info,
                                 "gossip: {} sync with {} done", gossip::to_string(r.purpose),
                                 r.peer.to_string());
                   if (!joined_ && r.purpose == gossip::SyncPurpose::kJoin)
                     end_join_wait(join_wait_.on_result(!r.error));
                 },
                 [&](const gossip::SeedsResolved& r) {
                   // Every round is logged when something changed or failed;
                   // an unchanged, successful round only at debug.
                   for (const auto& lookup : r.lookups) {
                     if (lookup.error) {
                       spdlog::warn("gossip: seed {} does not resolve: {}{}",
                                    lookup.name.to_string(), lookup.error.message(),
                                    r.first ? "" : " (its previous addresses stay seeds)");
                       continue;
                     }
                     std::vector<std::string> shown;
                     for (const auto& a : lookup.addresses) shown.push_back(a.to_string());
                     spdlog::log(r.changed ? spdlog::level::info : spdlog::level::debug,
                                 "gossip: seed {} resolves to {}", lookup.name.to_string(),
                                 fmt::join(shown, ", "));
                   }
                   if (!joined_ && r.first) end_join_wait(join_wait_.on_names_resolved(r.joins));
                 },
             },
             event);
}

void GossipBridge::end_join_wait(bool over) {
  if (!over) return;
  if (join_wait_.alone())
    spdlog::warn("gossip: no seed answered; publishing the tables of the members known so far and "
                 "re-joining every {} ms",
                 std::chrono::duration_cast<std::chrono::milliseconds>(rejoin_interval_).count());
  joined_ = true;
  on_change_();
}

}  // namespace mixlb
