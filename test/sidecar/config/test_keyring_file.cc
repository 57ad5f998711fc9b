// Tests of the keyring file reader: keys in file order with comments and
// blank lines skipped, and each refusal with its exact message — which never
// quotes a line of the file, since any line may hold a key.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/keyring_file.h"

namespace mixlb {
namespace {

const std::string kKeyA = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const std::string kKeyB = "F0E1D2C3B4A5968778695A4B3C2D1E0FF0E1D2C3B4A5968778695A4B3C2D1E0F";

gossip::Key key_of(const std::string& hex) {
  const auto key = gossip::parse_key(hex);
  REQUIRE(key.has_value());
  return *key;
}

// A mkdtemp directory, removed with its files when the test ends.
class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/mixlb-keyring-test-XXXXXX";
    REQUIRE(mkdtemp(name) != nullptr);
    path_ = name;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Writes `text` to `name` in the directory with `mode`; returns its path.
  std::string write(const std::string& name, const std::string& text, mode_t mode = 0600) const {
    const std::string file = path_ + "/" + name;
    {
      std::ofstream out(file, std::ios::binary);
      REQUIRE(out.good());
      out << text;
      REQUIRE(out.good());
    }
    REQUIRE(chmod(file.c_str(), mode) == 0);
    return file;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The message read_keyring_file() throws, or "" when it accepts the file.
std::string read_error(const std::string& path) {
  try {
    read_keyring_file(path);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_SUITE("keyring_file") {
  TEST_CASE("keys are read in file order; comments, blank lines and whitespace are skipped") {
    TempDir dir;
    const std::string path = dir.write("keyring", "# the cluster keyring\n\n  " + kKeyA +
                                                      "  \n\t\n# next: the new key\n\t" + kKeyB +
                                                      "\r\n   # an indented comment\n");
    const std::vector<gossip::Key> keys = read_keyring_file(path);
    REQUIRE(keys.size() == 2);
    CHECK(keys[0] == key_of(kKeyA));  // the primary
    CHECK(keys[1] == key_of(kKeyB));
    CHECK(gossip::key_to_hex(keys[1]) ==
          "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f");

    // One key, no newline at the end of the file.
    const std::vector<gossip::Key> one = read_keyring_file(dir.write("one", kKeyB));
    REQUIRE(one.size() == 1);
    CHECK(one[0] == key_of(kKeyB));
  }

  TEST_CASE("a line that is not a key is reported by number, without its contents") {
    TempDir dir;
    struct Case {
      const char* what;
      std::string line;
    };
    const Case cases[] = {
        {"a non-hex digit", kKeyA.substr(0, 63) + "g"},
        {"63 digits", kKeyA.substr(0, 63)},
        {"65 digits", kKeyA + "0"},
        {"two keys on a line", kKeyA + " " + kKeyB},
        {"a trailing comment", kKeyA + " # primary"},
        {"base64", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
    };
    for (const Case& c : cases) {
      const std::string what = c.what;
      CAPTURE(what);
      const std::string path = dir.write("bad", "# keys\n" + kKeyB + "\n\n" + c.line + "\n");
      const std::string message = read_error(path);
      CHECK(message == path + ":4: not a key (expected 64 hex digits)");
      // Neither the bad line nor the good key before it shows up.
      CHECK(message.find(c.line) == std::string::npos);
      CHECK(message.find(kKeyB.substr(0, 16)) == std::string::npos);
    }
  }

  TEST_CASE("the same key twice names both lines, whatever the case of its digits") {
    TempDir dir;
    std::string upper = kKeyA;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    const std::string path =
        dir.write("dup", kKeyA + "\n# rotation\n" + kKeyB + "\n" + upper + "\n");
    CHECK(read_error(path) == path + ":4: the same key as line 1");
  }

  TEST_CASE("a file without a key is refused") {
    TempDir dir;
    const std::string empty = dir.write("empty", "");
    CHECK(read_error(empty) == empty + ": no key in the keyring file");
    const std::string comments = dir.write("comments", "# no keys yet\n\n   \n");
    CHECK(read_error(comments) == comments + ": no key in the keyring file");
  }

  TEST_CASE("a file that cannot be opened, or is not a regular file, is refused") {
    TempDir dir;
    const std::string missing = dir.path() + "/missing";
    CHECK(read_error(missing) ==
          missing + ": cannot open the keyring file: No such file or directory");
    CHECK(read_error(dir.path()) == dir.path() + ": the keyring file is not a regular file");
  }

  TEST_CASE("a keyring file readable by group or others is refused") {
    TempDir dir;
    const std::string contents = kKeyA + "\n";
    const std::string world = dir.write("world", contents, 0644);
    CHECK(read_error(world) ==
          world + ": the keyring file is readable by others (mode 0644); chmod 600 it");
    const std::string group = dir.write("group", contents, 0640);
    CHECK(read_error(group) ==
          group + ": the keyring file is readable by others (mode 0640); chmod 600 it");
    // Owner-only modes are fine.
    CHECK(read_keyring_file(dir.write("owner", contents, 0600)).size() == 1);
    CHECK(read_keyring_file(dir.write("readonly", contents, 0400)).size() == 1);
  }
}  // TEST_SUITE("keyring_file")

}  // namespace mixlb
