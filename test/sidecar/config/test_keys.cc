// The key table is the configuration's one list of keys: the reference in
// docs/configuration.md, --help and the flags must agree with it.
//
// When a key changes, regenerate the document's tables with
//   MIXLB_UPDATE_DOCS=1 build/test/unit_tests -ts=keys
// and read the diff.
#include <doctest/doctest.h>

#include <cstdlib>
#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "config/config.h"
#include "config/keys.h"
#include "generated_doc.h"

namespace mixlb {
namespace {

// Every table the document holds between its markers.
std::vector<std::string> table_names() {
  std::vector<std::string> names(config_sections().begin(), config_sections().end());
  names.insert(names.end(), {"vip", "peer", "flags"});
  return names;
}

}  // namespace

TEST_SUITE("keys") {
  TEST_CASE("docs/configuration.md holds the tables the key table generates") {
    GeneratedDoc doc("docs/configuration.md");
    for (const std::string& name : table_names())
      doc.check("<!-- keys: " + name + " -->\n", "<!-- end keys -->", key_reference(name),
                "the [" + name + "] table");
  }

  TEST_CASE("every key has one row, a known section, help and an accessor of its type") {
    std::set<std::string_view> paths, flags;
    for (const KeySpec& k : config_keys()) {
      CAPTURE(k.path);
      CHECK(paths.insert(k.path).second);
      if (!k.flag.empty()) CHECK(flags.insert(k.flag).second);
      const auto sections = config_sections();
      CHECK(std::find(sections.begin(), sections.end(), k.section()) != sections.end());
      CHECK_FALSE(k.help.empty());
      CHECK_FALSE(k.default_text.empty());
      switch (k.type) {
        case KeyType::kString: CHECK(static_cast<bool>(k.string)); break;
        case KeyType::kInteger: CHECK(static_cast<bool>(k.integer)); CHECK(k.min <= k.max); break;
        case KeyType::kBoolean: CHECK(static_cast<bool>(k.boolean)); break;
        case KeyType::kAddress: CHECK(static_cast<bool>(k.address)); break;
        case KeyType::kStrings: CHECK(static_cast<bool>(k.strings)); break;
        case KeyType::kChoice:
          CHECK(static_cast<bool>(k.choose));
          CHECK(static_cast<bool>(k.chosen));
          CHECK_FALSE(k.choices.empty());
          break;
      }
      if (!k.flag.empty() && k.type != KeyType::kBoolean) CHECK_FALSE(k.flag_value.empty());
    }
  }

  TEST_CASE("--help names every flag of the key table, and every flag it names parses") {
    const std::string help = usage_text();
    for (const KeySpec& k : config_keys()) {
      if (k.flag.empty()) continue;
      CAPTURE(k.flag);
      CHECK(help.find(std::string(k.flag) + (k.type == KeyType::kBoolean ? "" : " ")) != std::string::npos);
    }
    for (const char* fixed : {"--config FILE", "--peer NAME=ADDR[@WEIGHT]", "--vip ADDR:PORT[/PROTO]",
                              "--help", "--version"})
      CHECK(help.find(fixed) != std::string::npos);
    for (const std::string& line : [&] {
           std::vector<std::string> out;
           std::stringstream in(help);
           for (std::string l; std::getline(in, l);) out.push_back(l);
           return out;
         }())
      CHECK_MESSAGE(line.size() <= 80, line);
  }

  TEST_CASE("a choice key reads back the word it was set to") {
    Config c;
    for (const KeySpec& k : config_keys()) {
      if (k.type != KeyType::kChoice) continue;
      CAPTURE(k.path);
      // Every listed word is accepted and read back as itself.
      std::string_view words = k.choices;
      std::vector<std::string> list;
      for (std::size_t at = 0; at < words.size();) {
        const auto end = words.find_first_of(", ", at);
        std::string word(words.substr(at, end - at));
        if (word != "or" && !word.empty()) list.push_back(word);
        if (end == std::string_view::npos) break;
        at = end + 1;
      }
      REQUIRE(list.size() >= 2);
      for (const auto& w : list) {
        CHECK(k.choose(c, w));
        CHECK(k.chosen(c) == w);
      }
      CHECK_FALSE(k.choose(c, "no-such-word"));
    }
  }
}

}  // namespace mixlb
