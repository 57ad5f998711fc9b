#include "logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <nlohmann/json.hpp>

namespace mixlb {
namespace {

// %* in a pattern: the message as a JSON string.
class JsonMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    const std::string text = json_log_message(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessage>();
  }
};

}  // namespace

std::string json_log_message(std::string_view message) {
  return nlohmann::json(std::string(message)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void configure_logging(std::string_view node, std::string_view level, LogFormat format) {
  auto logger = spdlog::get("mixlb");
  if (!logger) {
    logger = spdlog::stderr_color_mt("mixlb");
    spdlog::set_default_logger(logger);
  }
  if (format == LogFormat::kJson) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<JsonMessage>('*');
    // The node name is checked to be [A-Za-z0-9._-], so it needs no escaping.
    formatter->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","node":")" +
                           std::string(node) + R"(","message":%*})");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [" + std::string(node) + "] %v");
  }
  logger->set_level(spdlog::level::from_str(std::string(level)));
}

}  // namespace mixlb
