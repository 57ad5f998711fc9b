#pragma once
// quote_input: text that came from outside (a client's request, a
// configuration file) shown back inside an error message or a log line.
//
// Such text can be megabytes long, hold control characters that break a
// log line or a terminal, quotes that make the message ambiguous, and bytes
// that are not UTF-8, which a JSON reply could not even carry. quote_input
// makes it short, printable and unambiguous, so a message can always say
// exactly which input it is about. A leaf module on purpose: every room of
// the sidecar may use it.
#include <cstddef>
#include <string>
#include <string_view>

namespace mixlb {

// `text` in double quotes, at most `max_bytes` of it:
//   \" \\ \n \r \t   for those characters;
//   \xNN             for other ASCII control characters and DEL, and for
//                    each byte that is not part of valid UTF-8;
//   \uNNNN           for characters that are invisible but change how a line
//                    reads: C1 controls, line and paragraph separators, and
//                    the bidirectional-text controls;
// everything else, valid UTF-8 included, as it is. Longer text is cut at a
// character boundary at or before `max_bytes` input bytes and says how much
// was left out:
//   "abc…" (5242877 more bytes)
std::string quote_input(std::string_view text, std::size_t max_bytes = 64);

}  // namespace mixlb
