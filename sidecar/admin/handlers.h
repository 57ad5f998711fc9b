#pragma once
// The daemon's side of the command table (commands.h): one handler per
// command, checked against the table when the daemon is built, and the
// request handler the AdminServer runs. A request for a command the table
// does not have, or with arguments its row does not allow, is refused here
// with the table's words before any handler sees it, so a handler reads
// arguments that have been checked.
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "admin/admin_server.h"
#include "admin/commands.h"

namespace mixlb {

class AdminCommands {
 public:
  // Answers at once, on the io_context's thread.
  using Reply = std::function<nlohmann::json(const nlohmann::json& args)>;
  // Answers after waiting (for the gossip thread, say). A coroutine, so it
  // takes its arguments by value.
  using AsyncReply = std::function<boost::asio::awaitable<nlohmann::json>(nlohmann::json args)>;
  // Opens a stream (CommandKind::kStream): its first result and its lines.
  using Stream = std::function<AdminAnswer(const nlohmann::json& args)>;

  struct Handler {
    std::string command;
    std::variant<Reply, AsyncReply, Stream> run;
  };

  // Throws std::logic_error naming every command of `table` that has no
  // handler or more than one, every handler for a command `table` lacks,
  // and every handler whose kind (stream or not) is not its row's.
  explicit AdminCommands(std::vector<Handler> handlers,
                         std::span<const CommandSpec> table = admin_commands());

  // The AdminServer's handler: checks the request against the table and
  // runs the command's handler. This object must outlive the server.
  AdminHandler handler() const;

  boost::asio::awaitable<AdminAnswer> handle(std::string cmd, nlohmann::json args) const;

 private:
  struct Entry {
    const CommandSpec* spec;
    std::variant<Reply, AsyncReply, Stream> run;
  };
  std::span<const CommandSpec> table_;
  std::vector<Entry> entries_;
};

}  // namespace mixlb
