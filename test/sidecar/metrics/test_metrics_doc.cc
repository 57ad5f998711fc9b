// docs/metrics.md against the code: the families its tables list are
// exactly those the collector writes, each with the same type and label
// names, and where a row lists a label's values, the same values. The
// figures are the realistic ones (figures.h), in which every family has
// samples, so that each family's labels are known.
//
// The document's rows: | `name` | type | labels | meaning |, the labels as
// "`a`, `b`", the last one optionally with its values: "`b` = `x`, `y`".
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "figures.h"
#include "metrics/collect.h"

namespace mixlb::metrics {
namespace {

struct FamilyShape {
  std::string type;
  std::set<std::string> labels;
  std::map<std::string, std::set<std::string>> values;  // label -> its values
  std::size_t samples = 0;
};

std::vector<std::string> backticked(const std::string& text) {
  std::vector<std::string> out;
  for (std::size_t at = text.find('`'); at != std::string::npos;) {
    const std::size_t end = text.find('`', at + 1);
    if (end == std::string::npos) break;
    out.push_back(text.substr(at + 1, end - at - 1));
    at = text.find('`', end + 1);
  }
  return out;
}

std::string trimmed(const std::string& s) {
  const auto begin = s.find_first_not_of(' ');
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(' ') - begin + 1);
}

// The families of the document's tables, by name; a name listed twice fails.
std::map<std::string, FamilyShape> documented() {
  std::ifstream in(MIXLB_SOURCE_DIR "/docs/metrics.md");
  REQUIRE_MESSAGE(in.good(), "cannot read " MIXLB_SOURCE_DIR "/docs/metrics.md");
  std::map<std::string, FamilyShape> out;
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("| `mixlb_")) continue;
    std::vector<std::string> cells;
    std::istringstream row(line.substr(1));
    for (std::string cell; std::getline(row, cell, '|');) cells.push_back(trimmed(cell));
    INFO("docs/metrics.md: " << line);
    REQUIRE(cells.size() >= 4);
    const std::string name = backticked(cells[0]).at(0);
    FamilyShape shape;
    shape.type = cells[1];
    const std::string& labels = cells[2];
    const std::size_t eq = labels.find('=');
    const auto names = backticked(labels.substr(0, eq));
    shape.labels.insert(names.begin(), names.end());
    if (eq != std::string::npos) {
      REQUIRE_FALSE(names.empty());
      const auto values = backticked(labels.substr(eq + 1));
      shape.values[names.back()].insert(values.begin(), values.end());
    }
    CHECK_MESSAGE(out.emplace(name, shape).second, name << " is listed twice");
  }
  return out;
}

// Reads a label value up to its closing quote, undoing the format's escapes.
std::string label_value(const std::string& line, std::size_t& at) {
  std::string value;
  for (; at < line.size() && line[at] != '"'; ++at) {
    if (line[at] == '\\' && at + 1 < line.size()) {
      ++at;
      value += line[at] == 'n' ? '\n' : line[at];
    } else {
      value += line[at];
    }
  }
  ++at;  // the closing quote
  return value;
}

// The families of an exposition: type from TYPE lines, labels from samples.
std::map<std::string, FamilyShape> emitted(const std::string& text) {
  std::map<std::string, FamilyShape> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("# TYPE ")) {
      std::istringstream words(line.substr(7));
      std::string name, type;
      words >> name >> type;
      out[name].type = type;
      continue;
    }
    if (line.starts_with("#")) continue;
    const std::size_t brace = line.find('{');
    const std::string name = line.substr(0, std::min(brace, line.find(' ')));
    FamilyShape& family = out[name];
    ++family.samples;
    if (brace == std::string::npos) continue;
    std::size_t at = brace + 1;
    while (at < line.size() && line[at] != '}') {
      const std::size_t eq = line.find("=\"", at);
      REQUIRE(eq != std::string::npos);
      const std::string label = line.substr(at, eq - at);
      at = eq + 2;
      family.labels.insert(label);
      family.values[label].insert(label_value(line, at));
      if (at < line.size() && line[at] == ',') ++at;
    }
  }
  return out;
}

std::string joined(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return "{" + out + "}";
}

TEST_CASE("docs/metrics.md lists every family the collector writes, with its type and labels") {
  const auto doc = documented();
  const auto code = emitted(render_metrics(test::realistic_figures()));
  REQUIRE(code.size() > 40);

  std::set<std::string> doc_names, code_names;
  for (const auto& [name, shape] : doc) doc_names.insert(name);
  for (const auto& [name, shape] : code) code_names.insert(name);
  for (const auto& name : code_names)
    CHECK_MESSAGE(doc_names.contains(name), name << " is written but docs/metrics.md does not list it");
  for (const auto& name : doc_names)
    CHECK_MESSAGE(code_names.contains(name), name << " is in docs/metrics.md but never written");

  for (const auto& [name, written] : code) {
    const auto listed = doc.find(name);
    if (listed == doc.end()) continue;
    INFO("family " << name);
    CHECK(written.samples > 0);  // so its labels below are known
    CHECK(listed->second.type == written.type);
    CHECK(joined(listed->second.labels) == joined(written.labels));
    for (const auto& [label, values] : listed->second.values) {
      INFO("label " << label);
      const auto found = written.values.find(label);
      CHECK(joined(values) == (found == written.values.end() ? "(no such label)" : joined(found->second)));
    }
  }
}

}  // namespace
}  // namespace mixlb::metrics
