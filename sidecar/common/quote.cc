#include "common/quote.h"

#include <fmt/format.h>

#include <cstdint>
#include <iterator>

namespace mixlb {

namespace {

struct Utf8Char {
  std::size_t length = 0;  // 0: text[at] does not start a valid sequence
  char32_t code_point = 0;
};

// The UTF-8 character at text[at], which must not be ASCII. Overlong forms,
// surrogates, code points past U+10FFFF and cut sequences are invalid, as
// RFC 3629 says, so that every byte shown as it is was part of a character.
Utf8Char utf8_char_at(std::string_view text, std::size_t at) {
  const auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(text[i]); };
  const std::uint8_t lead = byte(at);
  std::size_t length = 0;
  char32_t code_point = 0;
  char32_t min = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2, code_point = lead & 0x1F, min = 0x80;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3, code_point = lead & 0x0F, min = 0x800;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4, code_point = lead & 0x07, min = 0x10000;
  } else {
    return {};
  }
  if (text.size() - at < length) return {};
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(at + i) & 0xC0) != 0x80) return {};
    code_point = (code_point << 6) | (byte(at + i) & 0x3F);
  }
  if (code_point < min || code_point > 0x10FFFF || (code_point >= 0xD800 && code_point <= 0xDFFF)) {
    return {};
  }
  return {length, code_point};
}

// Characters that print as nothing yet change how the rest of a line reads
// (or where it ends): shown by number so that a message cannot be made to
// look like something else.
bool invisible(char32_t c) {
  return (c >= 0x80 && c <= 0x9F) || c == 0x061C || c == 0x200E || c == 0x200F || c == 0x2028 ||
         c == 0x2029 || (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069);
}

}  // namespace

std::string quote_input(std::string_view text, std::size_t max_bytes) {
  std::string out = "\"";
  auto escape_byte = [&](unsigned char byte) {
    fmt::format_to(std::back_inserter(out), "\\x{:02X}", byte);
  };
  std::size_t at = 0;
  while (at < text.size()) {
    const auto byte = static_cast<unsigned char>(text[at]);
    if (byte < 0x80) {
      if (at + 1 > max_bytes) break;
      switch (byte) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          if (byte < 0x20 || byte == 0x7F) {
            escape_byte(byte);
          } else {
            out.push_back(static_cast<char>(byte));
          }
      }
      ++at;
      continue;
    }
    const Utf8Char c = utf8_char_at(text, at);
    if (c.length == 0) {
      if (at + 1 > max_bytes) break;
      escape_byte(byte);
      ++at;
      continue;
    }
    if (at + c.length > max_bytes) break;
    if (invisible(c.code_point)) {
      fmt::format_to(std::back_inserter(out), "\\u{:04X}",
                     static_cast<std::uint32_t>(c.code_point));
    } else {
      out.append(text.substr(at, c.length));
    }
    at += c.length;
  }
  if (at == text.size()) return out + "\"";
  const std::size_t left_out = text.size() - at;
  return fmt::format("{}\u2026\" ({} more byte{})", out, left_out, left_out == 1 ? "" : "s");
}

}  // namespace mixlb
