#pragma once
// How the XDP program is attached: its own header because the configuration
// names it too, and config/ must not pull in the loader.
#include <string_view>

namespace mixlb {

// kAuto tries native (driver) mode and falls back to generic (skb) mode with
// a warning; the mode in use is in status.
enum class XdpMode { kAuto, kNative, kGeneric };
std::string_view to_string(XdpMode mode);

}  // namespace mixlb
