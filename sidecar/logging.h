#pragma once
// The sidecar's log: lines for people, or one JSON object per line for log
// shippers ({"time", "level", "node", "message"}), at a level a reload may
// change. One default spdlog logger writes to stderr; main sets it up, a
// reload sets it again.
#include <string>
#include <string_view>

#include "config/config.h"

namespace mixlb {

// Makes the default logger write `format` at `level` for node `node`.
// `level` is one of the node.log_level words (the configuration checked it).
void configure_logging(std::string_view node, std::string_view level, LogFormat format);

// The message of a log line as a JSON string (quoted, escaped).
std::string json_log_message(std::string_view message);

}  // namespace mixlb
