// Tests of the keyring file reader: keys in file order with comments and
// blank lines skipped, and each refusal with its exact message — which never
// quotes a line of the file, since any line may hold a key. And of the
// writers: the rewrite after a key change (atomic, 0600, what the reader
// reads) and `mixlb keygen`'s new file (0400, never over an existing one).
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
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

// The permission bits of a file.
mode_t file_mode(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

std::string contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The names in a directory, sorted: a temporary file left behind shows.
std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

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

  TEST_CASE("a file of more keys than a keyring holds is refused, a full one read") {
    TempDir dir;
    std::string text;
    for (std::size_t i = 0; i < gossip::kMaxKeys; ++i)
      text += gossip::key_to_hex(gossip::generate_key()) + "\n";
    CHECK(read_keyring_file(dir.write("full", text)).size() == gossip::kMaxKeys);
    text += gossip::key_to_hex(gossip::generate_key()) + "\n";
    const std::string over = dir.write("over", text);
    CHECK(read_error(over) == over + ": 17 keys in the keyring file; a keyring holds at most 16");
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

  TEST_CASE("a rewritten keyring file holds the keys in order, after its header, mode 0600") {
    TempDir dir;
    const std::string path = dir.path() + "/keyring";
    const std::vector<gossip::Key> keys{key_of(kKeyB), key_of(kKeyA)};
    REQUIRE_FALSE(write_keyring_file(path, keys));
    CHECK(read_keyring_file(path) == keys);
    CHECK(file_mode(path) == 0600);
    const std::string text = contents(path);
    CHECK(text == std::string(kKeyringFileHeader) + "\n" + gossip::key_to_hex(keys[0]) + "\n" +
                      gossip::key_to_hex(keys[1]) + "\n");
    CHECK(entries(dir.path()) == std::vector<std::string>{"keyring"});

    // A relative path writes beside it, in the working directory.
    const auto cwd = std::filesystem::current_path();
    std::filesystem::current_path(dir.path());
    const std::error_code relative = write_keyring_file("relative", keys);
    std::filesystem::current_path(cwd);
    CHECK_FALSE(relative);
    CHECK(read_keyring_file(dir.path() + "/relative") == keys);
  }

  TEST_CASE(
      "a rewrite replaces the file whole, by a rename: a reader sees the old file or the new") {
    TempDir dir;
    const std::string path = dir.write("keyring", kKeyA + "\n", 0400);
    struct stat before {};
    REQUIRE(::stat(path.c_str(), &before) == 0);
    // A reader that opened the old file keeps reading the old contents.
    std::ifstream old_reader(path);
    REQUIRE(old_reader.good());

    const std::vector<gossip::Key> keys{key_of(kKeyB)};
    REQUIRE_FALSE(write_keyring_file(path, keys));
    struct stat after {};
    REQUIRE(::stat(path.c_str(), &after) == 0);
    CHECK(after.st_ino != before.st_ino);  // a new file took the name
    CHECK(file_mode(path) == 0600);        // the old 0400 is not kept
    CHECK(read_keyring_file(path) == keys);
    std::string line;
    std::getline(old_reader, line);
    CHECK(line == kKeyA);
    CHECK(entries(dir.path()) == std::vector<std::string>{"keyring"});
  }

  TEST_CASE("a rewrite that fails leaves the file as it was and no temporary file behind") {
    TempDir dir;
    const std::vector<gossip::Key> keys{key_of(kKeyA)};
    // The directory does not exist: the temporary file cannot be made.
    CHECK(write_keyring_file(dir.path() + "/missing/keyring", keys) ==
          std::errc::no_such_file_or_directory);
    // The name is a non-empty directory: the rename is refused.
    const std::string occupied = dir.path() + "/occupied";
    REQUIRE(std::filesystem::create_directory(occupied));
    dir.write("occupied/inside", "x");
    const std::error_code error = write_keyring_file(occupied, keys);
    CHECK(error);
    CHECK(std::filesystem::is_directory(occupied));
    CHECK(entries(dir.path()) == std::vector<std::string>{"occupied"});
    // No keys: nothing to write, nothing written.
    CHECK(write_keyring_file(dir.path() + "/empty", {}) == std::errc::invalid_argument);
    CHECK(entries(dir.path()) == std::vector<std::string>{"occupied"});
  }

  TEST_CASE("keygen writes one fresh key, mode 0400, and never replaces a file") {
    TempDir dir;
    const std::string path = dir.path() + "/keyring";
    const auto key = generate_keyring_file(path);
    REQUIRE(key.has_value());
    CHECK(file_mode(path) == 0400);
    CHECK(read_keyring_file(path) == std::vector<gossip::Key>{*key});
    CHECK(contents(path).rfind(std::string(kKeyringFileHeader) + "\n", 0) == 0);
    CHECK(entries(dir.path()) == std::vector<std::string>{"keyring"});

    // Again at the same path: refused, the first key kept.
    const auto again = generate_keyring_file(path);
    REQUIRE_FALSE(again.has_value());
    CHECK(again.error() == std::errc::file_exists);
    CHECK(read_keyring_file(path) == std::vector<gossip::Key>{*key});
    CHECK(entries(dir.path()) == std::vector<std::string>{"keyring"});
    // Whatever the path names: a directory, or a dangling symbolic link.
    CHECK(generate_keyring_file(dir.path()).error() == std::errc::file_exists);
    std::filesystem::create_symlink(dir.path() + "/nowhere", dir.path() + "/link");
    CHECK(generate_keyring_file(dir.path() + "/link").error() == std::errc::file_exists);
    CHECK_FALSE(std::filesystem::exists(dir.path() + "/nowhere"));

    // Each key is new.
    const auto other = generate_keyring_file(dir.path() + "/other");
    REQUIRE(other.has_value());
    CHECK(*other != *key);
    CHECK(generate_keyring_file(dir.path() + "/missing/keyring").error() ==
          std::errc::no_such_file_or_directory);
  }
}  // TEST_SUITE("keyring_file")

}  // namespace mixlb
