#include "cleanup.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "kernel/bpffs.h"
#include "kernel/datapath.h"
#include "kernel/host_record.h"
#include "kernel/host_setup.h"
#include "kernel/instance_lock.h"
#include "kernel/netlink.h"
#include "kernel/sysctl.h"

namespace mixlb {

int run_cleanup(const CleanupOptions& o) {
  auto lock = InstanceLock::acquire(o.run_dir, o.node);
  if (!lock) {
    spdlog::error("{}; stop it first, or use `mixlbctl leave`", lock.error().message);
    return 2;
  }
  const std::string record_path = host_record_path(o.run_dir, o.node);
  auto loaded = load_host_record(record_path);
  if (!loaded) {
    spdlog::error("{}", loaded.error());
    return 2;
  }
  HostRecord record;
  if (*loaded) {
    record = std::move(**loaded);
  } else {
    spdlog::info("no host record at {}: only the pins are removed", record_path);
    record.node = o.node;
  }
  if (record.pin_dir.empty()) record.pin_dir = o.bpffs_dir + "/" + o.node;

  int status = 0;
  if (!on_bpffs(std::filesystem::path(record.pin_dir).parent_path().string()) &&
      !on_bpffs(record.pin_dir)) {
    spdlog::info("no bpffs holds {}: nothing pinned to remove", record.pin_dir);
  } else if (auto removed = remove_pins(record.pin_dir, record.created_pin_parent); !removed) {
    spdlog::error("{}", removed.error().message());
    status = 1;
  } else {
    spdlog::info("removed {} pin(s) under {} (the XDP link among them: the program is detached)",
                 *removed, record.pin_dir);
  }

  const auto persist = [&] {
    if (auto ec = save_host_record(record_path, record))
      spdlog::error("saving {}: {}", record_path, ec.message());
  };
  if (!record.host_clean() && record.netns != current_netns()) {
    spdlog::error("{} was made in another network namespace (inode {}); run the cleanup there "
                  "(nsenter --net=...) to restore {} sysctl(s), {} VIP(s) and {} neighbour "
                  "entr(ies)",
                  record_path, record.netns, record.sysctls.size(), record.vips.size(),
                  record.neighbours.size());
    return 1;
  }
  if (!record.host_clean()) {
    auto nl = RtNetlink::open();
    if (!nl) {
      spdlog::error("opening rtnetlink: {}", nl.error().message());
      return 1;
    }
    ProcSysctls sysctls;
    const auto before = record;
    auto problems = restore_host(record, sysctls, *nl, persist);
    spdlog::info("restored {} sysctl(s), removed {} VIP(s) from lo and {} neighbour entr(ies)",
                 before.sysctls.size() - record.sysctls.size(), before.vips.size() - record.vips.size(),
                 before.neighbours.size() - record.neighbours.size());
    if (!problems.empty()) {
      spdlog::error("{} change(s) could not be put back; they stay in {}", problems.size(),
                    record_path);
      return 1;
    }
  }
  if (auto ec = remove_host_record(record_path)) {
    spdlog::error("removing {}: {}", record_path, ec.message());
    return 1;
  }
  if (status == 0) spdlog::info("node {}: the host is as it was before mixlb", o.node);
  return status;
}

}  // namespace mixlb
