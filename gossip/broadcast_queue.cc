// The transmit-limited queue, as an ordered map (sending order) and a key
// index. Filling a packet walks the map in order and stops as soon as no
// queued message can fit in what is left of the budget.
#include "broadcast_queue.h"

#include <algorithm>
#include <vector>

namespace mixlb::gossip {

void BroadcastQueue::push(const std::string& key, Bytes framed) {
  erase(key);
  smallest_ = std::min(smallest_, framed.size());
  auto item = std::make_unique<Item>(Item{key, std::move(framed), Order{0, next_age_--}, 0});
  queue_.emplace(item->order, item.get());
  by_key_.emplace(key, std::move(item));
}

void BroadcastQueue::erase(const std::string& key) {
  auto it = by_key_.find(std::string_view(key));
  if (it == by_key_.end()) return;
  queue_.erase(it->second->order);
  by_key_.erase(it);
  if (by_key_.empty()) smallest_ = SIZE_MAX;
}

std::size_t BroadcastQueue::fill(Bytes& out, std::size_t budget, int limit, std::uint64_t packet,
                                 std::uint64_t since) {
  if (since == 0 || since > packet) since = packet;
  std::size_t used = 0;
  std::vector<Item*> sent;
  for (auto it = queue_.begin(); it != queue_.end() && budget - used >= smallest_;) {
    Item* item = it->second;
    if (item->framed.size() > budget - used || (packet != 0 && item->last_packet >= since)) {
      ++it;
      continue;
    }
    out.insert(out.end(), item->framed.begin(), item->framed.end());
    used += item->framed.size();
    item->last_packet = packet;
    sent.push_back(item);
    it = queue_.erase(it);
  }
  // Re-queue after the walk, so a message is not met twice in one fill.
  for (Item* item : sent) {
    item->order.transmits += 1;
    if (item->order.transmits >= limit) {
      by_key_.erase(by_key_.find(std::string_view(item->key)));
      continue;
    }
    queue_.emplace(item->order, item);
  }
  if (by_key_.empty()) smallest_ = SIZE_MAX;
  return used;
}

int BroadcastQueue::transmits(const std::string& key) const {
  auto it = by_key_.find(std::string_view(key));
  return it == by_key_.end() ? -1 : it->second->order.transmits;
}

bool BroadcastQueue::contains(const std::string& key) const {
  return by_key_.find(std::string_view(key)) != by_key_.end();
}

void BroadcastQueue::clear() {
  queue_.clear();
  by_key_.clear();
  smallest_ = SIZE_MAX;
}

void BroadcastQueue::for_each(
    const std::function<void(const std::string& key, ByteView framed)>& visit) const {
  for (const auto& [order, item] : queue_) visit(item->key, item->framed);
}

}  // namespace mixlb::gossip
