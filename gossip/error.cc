// Messages for the gossip error codes.
#include "error.h"

namespace mixlb::gossip {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "gossip"; }

  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::kTruncated:
        return "truncated";
      case Errc::kBadVersion:
        return "unknown version";
      case Errc::kUnknownMessage:
        return "unknown message type";
      case Errc::kBadValue:
        return "invalid field value";
      case Errc::kTrailingBytes:
        return "trailing bytes";
      case Errc::kTooLarge:
        return "too large";
      case Errc::kNotEncrypted:
        return "packet is not encrypted but this node requires encryption";
      case Errc::kUnexpectedEncryption:
        return "packet is encrypted but this node has no keyring";
      case Errc::kNoKeyAuthenticates:
        return "no installed key authenticates the packet";
      case Errc::kKeyNotInstalled:
        return "key is not installed";
      case Errc::kKeyIsPrimary:
        return "the primary key cannot be removed";
      case Errc::kLeft:
        return "this node has left the cluster";
      case Errc::kKeyringFull:
        return "the keyring is full";
      case Errc::kNoKeyring:
        return "this node has no keyring (gossip is not encrypted)";
      case Errc::kBusy:
        return "another key request of this node is still running";
      case Errc::kQueueFull:
        return "the user-event queue is full (gossip max_queued_events)";
    }
    return "unknown gossip error";
  }
};

}  // namespace

const std::error_category& gossip_category() noexcept {
  static const Category category;
  return category;
}

}  // namespace mixlb::gossip
