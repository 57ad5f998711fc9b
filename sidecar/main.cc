// mixlb: the sidecar daemon. Reads the configuration (file plus flags), then
// runs the Daemon until SIGTERM. Configuration and start-up errors end here
// as one clear line and a non-zero exit.
#include <cstdio>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "config/config.h"
#include "daemon.h"

int main(int argc, char** argv) {
  std::optional<mixlb::Config> config;
  try {
    config = mixlb::config_from_args(argc, argv);
  } catch (const mixlb::ConfigError& e) {
    std::fprintf(stderr, "mixlb: %s\n", e.what());
    return 2;
  }
  if (!config) return 0;  // --help or --version

  auto logger = spdlog::stderr_color_mt("mixlb");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [" + config->node_name + "] %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(config->log_level));

  try {
    mixlb::Daemon daemon(std::move(*config));
    return daemon.run();
  } catch (const mixlb::StartupError& e) {
    spdlog::critical("start-up failed: {}", e.what());
    return 1;
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return 1;
  }
}
