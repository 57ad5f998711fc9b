#pragma once
// Blocks of the documentation that code generates (the configuration
// reference from the key table, the command reference from the command
// table), checked by tests so that they cannot drift: each block between its
// markers must equal what the code generates now. With MIXLB_UPDATE_DOCS=1
// in the environment the test writes the blocks instead of failing:
//
//   MIXLB_UPDATE_DOCS=1 build/test/unit_tests -ts=keys,admin
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace mixlb {

class GeneratedDoc {
 public:
  // `relative`: the document's path in the source tree.
  explicit GeneratedDoc(const std::string& relative)
      : path_(std::string(MIXLB_SOURCE_DIR) + "/" + relative) {
    std::ifstream in(path_);
    REQUIRE_MESSAGE(in.good(), "cannot read " << path_);
    std::stringstream text;
    text << in.rdbuf();
    text_ = text.str();
  }
  GeneratedDoc(const GeneratedDoc&) = delete;
  GeneratedDoc& operator=(const GeneratedDoc&) = delete;
  ~GeneratedDoc() {
    if (changed_) std::ofstream(path_) << text_;
  }

  // The block after `open` up to `close` must read `want`; `what` names it
  // in the failure ("the [health] table").
  void check(const std::string& open, const std::string& close, const std::string& want,
             const std::string& what) {
    const auto start = text_.find(open);
    REQUIRE_MESSAGE(start != std::string::npos, path_ << " has no " << open);
    const auto body = start + open.size();
    const auto end = text_.find(close, body);
    REQUIRE_MESSAGE(end != std::string::npos, path_ << " has no " << close << " after " << open);
    if (text_.compare(body, end - body, want) == 0) return;
    if (std::getenv("MIXLB_UPDATE_DOCS") != nullptr) {
      text_.replace(body, end - body, want);
      changed_ = true;
      return;
    }
    FAIL_CHECK(what << " of " << path_
                    << " differs from what the code generates; regenerate it with "
                       "MIXLB_UPDATE_DOCS=1 (test/generated_doc.h). It should read:\n"
                    << want);
  }

 private:
  std::string path_;
  std::string text_;
  bool changed_ = false;
};

}  // namespace mixlb
