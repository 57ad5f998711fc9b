#include "admin/handlers.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "common/quote.h"

namespace mixlb {

namespace {

bool empty_handler(const std::variant<AdminCommands::Reply, AdminCommands::AsyncReply,
                                      AdminCommands::Stream>& run) {
  return std::visit([](const auto& f) { return !f; }, run);
}

}  // namespace

AdminCommands::AdminCommands(std::vector<Handler> handlers, std::span<const CommandSpec> table)
    : table_(table) {
  std::vector<std::string> problems;
  for (const auto& spec : table) {
    const auto n = std::count_if(handlers.begin(), handlers.end(),
                                 [&](const Handler& h) { return h.command == spec.name; });
    if (n == 0) problems.push_back(fmt::format("{} has no handler", spec.name));
    if (n > 1) problems.push_back(fmt::format("{} has {} handlers", spec.name, n));
  }
  for (auto& h : handlers) {
    const auto spec = std::find_if(table.begin(), table.end(),
                                   [&](const CommandSpec& c) { return c.name == h.command; });
    if (spec == table.end()) {
      problems.push_back(fmt::format("{} has a handler but no row in the command table", h.command));
      continue;
    }
    if (empty_handler(h.run)) problems.push_back(fmt::format("{} has an empty handler", h.command));
    const bool streams = std::holds_alternative<Stream>(h.run);
    if (streams != (spec->kind == CommandKind::kStream)) {
      problems.push_back(fmt::format("{} is {} in the command table, but its handler {}", h.command,
                                     spec->kind == CommandKind::kStream ? "a stream" : "not a stream",
                                     streams ? "opens a stream" : "answers once"));
    }
    entries_.push_back({&*spec, std::move(h.run)});
  }
  if (!problems.empty())
    throw std::logic_error(fmt::format("admin commands: {}", fmt::join(problems, "; ")));
}

AdminHandler AdminCommands::handler() const {
  return [this](std::string cmd, nlohmann::json args) {
    return handle(std::move(cmd), std::move(args));
  };
}

boost::asio::awaitable<AdminAnswer> AdminCommands::handle(std::string cmd,
                                                          nlohmann::json args) const {
  const auto entry = std::find_if(entries_.begin(), entries_.end(),
                                  [&](const Entry& e) { return e.spec->name == cmd; });
  if (entry == entries_.end()) {
    std::vector<std::string_view> names;
    for (const auto& spec : table_) names.push_back(spec.name);
    throw AdminError(fmt::format("unknown command {} (known: {})", quote_input(cmd),
                                 fmt::join(names, ", ")));
  }
  if (auto checked = check_args(*entry->spec, args); !checked) throw AdminError(checked.error());
  if (const auto* reply = std::get_if<Reply>(&entry->run)) co_return (*reply)(args);
  if (const auto* wait = std::get_if<AsyncReply>(&entry->run))
    co_return co_await (*wait)(std::move(args));
  co_return std::get<Stream>(entry->run)(args);
}

}  // namespace mixlb
