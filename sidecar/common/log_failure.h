#pragma once
// The completion handler every co_spawn of the sidecar gets: what escapes a
// coroutine is logged with what the coroutine was doing, never lost and
// never fatal (one failing part must not take the daemon down).
#include <spdlog/spdlog.h>

#include <exception>
#include <string>

namespace mixlb {

inline auto log_failure(std::string what) {
  return [what = std::move(what)](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      spdlog::error("{}: {}", what, e.what());
    } catch (...) {
      spdlog::error("{}: unknown exception", what);
    }
  };
}

}  // namespace mixlb
