// Tests for quote_input: each escape, each kind of invalid UTF-8, and the cut,
// which must land on a character boundary and say how much it left out.
#include <doctest/doctest.h>

#include <string>

#include "common/quote.h"

namespace mixlb {

TEST_SUITE("quote") {
  TEST_CASE("plain text is quoted as it is, UTF-8 included") {
    CHECK(quote_input("") == R"("")");
    CHECK(quote_input("status") == R"("status")");
    CHECK(quote_input("h\xC3\xA9llo \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x99\x82") ==
          "\"h\xC3\xA9llo \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x99\x82\"");
  }

  TEST_CASE("quotes, backslashes and control characters are escaped") {
    CHECK(quote_input("say \"hi\"") == R"("say \"hi\"")");
    CHECK(quote_input(R"(C:\dir)") == R"("C:\\dir")");
    CHECK(quote_input("a\nb\r\tc") == R"("a\nb\r\tc")");
    CHECK(quote_input(std::string("nul\0here", 8)) == R"("nul\x00here")");
    CHECK(quote_input("\x1B[31mred\x7F") == R"("\x1B[31mred\x7F")");
  }

  TEST_CASE("invisible characters that change how a line reads are shown by number") {
    CHECK(quote_input("\xC2\x85") == R"("\u0085")");  // NEL, a C1 control
    CHECK(quote_input("a\xE2\x80\xA8"
                      "b") == R"("a\u2028b")");  // line separator
    CHECK(quote_input("\xE2\x80\xAE"
                      "cba") == R"("\u202Ecba")");  // right-to-left override
    CHECK(quote_input("\xE2\x81\xA6x\xE2\x81\xA9") == R"("\u2066x\u2069")");
    CHECK(quote_input("\xC2\xA0") == "\"\xC2\xA0\"");  // a no-break space prints; it stays
  }

  TEST_CASE("every byte that is not part of valid UTF-8 is escaped") {
    CHECK(quote_input("\xFF") == R"("\xFF")");
    CHECK(quote_input("a\x80"
                      "b") == R"("a\x80b")");                           // lone continuation byte
    CHECK(quote_input("\xE2\x82") == R"("\xE2\x82")");                  // cut sequence
    CHECK(quote_input("\xE2\x82x") == R"("\xE2\x82x")");                // broken by ASCII
    CHECK(quote_input("\xC0\xAF") == R"("\xC0\xAF")");                  // overlong '/'
    CHECK(quote_input("\xE0\x80\xAF") == R"("\xE0\x80\xAF")");          // overlong, 3 bytes
    CHECK(quote_input("\xED\xA0\x80") == R"("\xED\xA0\x80")");          // a surrogate
    CHECK(quote_input("\xF4\x90\x80\x80") == R"("\xF4\x90\x80\x80")");  // past U+10FFFF
    CHECK(quote_input("\xF4\x8F\xBF\xBF") == "\"\xF4\x8F\xBF\xBF\"");   // U+10FFFF itself
  }

  TEST_CASE("long text is cut at a character boundary and says what was left out") {
    CHECK(quote_input("abcdef", 6) == R"("abcdef")");
    CHECK(quote_input("abcdef", 3) == "\"abc\u2026\" (3 more bytes)");
    CHECK(quote_input("abc", 0) == "\"\u2026\" (3 more bytes)");
    // "é" is two bytes: a cut after one of them keeps it out whole.
    CHECK(quote_input("a\xC3\xA9z", 2) == "\"a\u2026\" (3 more bytes)");
    CHECK(quote_input("a\xC3\xA9z", 3) == "\"a\xC3\xA9\u2026\" (1 more byte)");
    // The limit counts input bytes, not the escapes they become.
    CHECK(quote_input(std::string(3, '\0'), 2) == "\"\\x00\\x00\u2026\" (1 more byte)");

    const std::string huge(5 * 1024 * 1024, 'x');
    const std::string quoted = quote_input(huge);
    CHECK(quoted == "\"" + std::string(64, 'x') + "\u2026\" (5242816 more bytes)");
  }

}  // TEST_SUITE("quote")

}  // namespace mixlb
