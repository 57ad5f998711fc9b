// mixlb: the sidecar daemon. Reads the configuration (file plus flags), then
// runs the Daemon until it is told to stop. Configuration and start-up
// errors end here as one clear line and a non-zero exit.
//
//   mixlb [--config FILE] [flags]      the sidecar
//   mixlb cleanup --name NODE [...]    put a node's host back (cleanup.h)
//   mixlb keygen FILE                  a new keyring file (config/keyring_file.h)
#include <spdlog/spdlog.h>

#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cleanup.h"
#include "config/config.h"
#include "config/keyring_file.h"
#include "daemon.h"
#include "logging.h"

namespace {

constexpr std::string_view kCleanupUsage = R"(Usage: mixlb cleanup [--config FILE] [--name NODE] [--run-dir DIR] [--bpffs-dir DIR]

Puts the host of node NODE back as it was before its first sidecar: removes
the pinned maps and XDP link (the program is detached), the VIPs mixlb put on
lo and the neighbour entries it made, and restores the sysctls it changed, as
the host record <run_dir>/<node>.host.json says. Refuses while a sidecar of
that node runs (use `mixlbctl leave` for a running one). Run it in the node's
network namespace. --config takes the three settings from a configuration
file; the flags override it.
)";


int cleanup_main(int argc, char** argv) {
  mixlb::CleanupOptions options;
  std::optional<std::string> name, run_dir, bpffs_dir;
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string value;
    if (arg == "-h" || arg == "--help") {
      std::fwrite(kCleanupUsage.data(), 1, kCleanupUsage.size(), stdout);
      return 0;
    }
    if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      value = std::string(arg.substr(eq + 1));
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::fprintf(stderr, "mixlb cleanup: %s needs a value\n%s", argv[i], kCleanupUsage.data());
      return 2;
    }
    try {
      if (arg == "--config" || arg == "-c") {
        const mixlb::Config config = mixlb::load_config_file(value);
        options.node = config.node.name;
        options.run_dir = config.node.run_dir;
        options.bpffs_dir = config.node.bpffs_dir;
      } else if (arg == "--name") {
        name = value;
      } else if (arg == "--run-dir") {
        run_dir = value;
      } else if (arg == "--bpffs-dir") {
        bpffs_dir = value;
      } else {
        std::fprintf(stderr, "mixlb cleanup: unknown flag %.*s\n%s", static_cast<int>(arg.size()),
                     arg.data(), kCleanupUsage.data());
        return 2;
      }
    } catch (const mixlb::ConfigError& e) {
      std::fprintf(stderr, "mixlb cleanup: %s\n", e.what());
      return 2;
    }
  }
  if (name) options.node = *name;
  if (run_dir) options.run_dir = *run_dir;
  if (bpffs_dir) options.bpffs_dir = *bpffs_dir;
  if (options.node.empty()) {
    std::fprintf(stderr, "mixlb cleanup: which node? give --name NODE or --config FILE\n%s",
                 kCleanupUsage.data());
    return 2;
  }
  mixlb::configure_logging(options.node, "info", mixlb::LogFormat::kText);
  return mixlb::run_cleanup(options);
}

}  // namespace

constexpr std::string_view kKeygenUsage = R"(Usage: mixlb keygen FILE

Writes a new keyring file FILE holding one fresh key (mode 0400), for
gossip.keyring, and prints the key's id. Put the same file on every node of a
new cluster; for a running cluster, `mixlbctl keys` installs keys at run time.
Never replaces an existing file.
)";

int keygen_main(int argc, char** argv) {
  if (argc == 3 && (std::string_view(argv[2]) == "--help" || std::string_view(argv[2]) == "-h")) {
    std::fputs(kKeygenUsage.data(), stdout);
    return 0;
  }
  if (argc != 3 || argv[2][0] == '-') {
    std::fprintf(stderr, "mixlb keygen: give the file to write\n%s", kKeygenUsage.data());
    return 2;
  }
  const std::string path = argv[2];
  auto key = mixlb::generate_keyring_file(path);
  if (!key) {
    std::fprintf(stderr, "mixlb keygen: %s: %s\n", path.c_str(),
                 key.error() == std::errc::file_exists ? "exists already; it is not replaced"
                                                       : key.error().message().c_str());
    return 1;
  }
  std::printf("wrote %s (mode 0400): one key, id %s\n", path.c_str(),
              mixlb::gossip::key_id_to_hex(mixlb::gossip::key_id(*key)).c_str());
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "cleanup") return cleanup_main(argc, argv);
  if (argc > 1 && std::string_view(argv[1]) == "keygen") return keygen_main(argc, argv);

  std::optional<mixlb::Config> config;
  try {
    config = mixlb::config_from_args(argc, argv);
  } catch (const mixlb::ConfigError& e) {
    std::fprintf(stderr, "mixlb: %s\n", e.what());
    return 2;
  }
  if (!config) return 0;  // --help or --version

  mixlb::configure_logging(config->node.name, config->node.log_level, config->node.log_format);

  try {
    mixlb::Daemon daemon(std::move(*config), {}, std::vector<std::string>(argv + 1, argv + argc));
    return daemon.run();
  } catch (const mixlb::StartupError& e) {
    spdlog::critical("start-up failed: {}", e.what());
    return 1;
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return 1;
  }
}
