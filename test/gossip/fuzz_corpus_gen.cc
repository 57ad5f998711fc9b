// fuzz_corpus_gen: writes (or checks) the seed corpus of the codec fuzz
// target, test/gossip/fuzz_corpus/ — valid encodings of every message type
// (key requests and answers among them), both address families, compound
// packets and push-pull states, made by the codec itself from fixed values,
// so the files are the same on every run.
//
//   fuzz_corpus_gen write DIR   writes every seed into DIR
//   fuzz_corpus_gen check DIR   exit 1 unless DIR holds exactly these seeds
//
// The check runs as a test, so a change of the wire format that is not
// followed by `fuzz_corpus_gen write test/gossip/fuzz_corpus` fails the
// suite instead of leaving the fuzzer to start from stale seeds.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "codec.h"

namespace {

using namespace mixlb::gossip;

const Address kV4 = Address::v4(10, 0, 0, 9, 7946);
const Address kV6 = *Address::parse("[2001:db8::9]:7946");
const Bytes kMetadata = {'v', 'i', 'p', '=', '1', '0', '.', '0', '.',
                         '0', '.', '1', ' ', 'w', '=', '1', '0', '0'};
const Bytes kPayload = {'c', 't', '-', 'i', 'n', 'v', 'a', 'l', 'i', 'd', 'a', 't', 'e', 0, 1, 2};
const Bytes kKey = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
                    0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a,
                    0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0};
const Bytes kKeyId = {0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26};
const Bytes kRequestKey = {0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7};
const Bytes kKeyIds = {0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26,
                       0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7};

Bytes packet(std::initializer_list<Message> messages) {
  auto bytes = encode_packet(std::vector<Message>(messages));
  if (!bytes) throw std::runtime_error("cannot encode a seed packet");
  return *bytes;
}

Bytes push_pull(const PushPull& state) {
  auto bytes = encode_push_pull(state);
  if (!bytes) throw std::runtime_error("cannot encode a seed push-pull");
  return *bytes;
}

std::map<std::string, Bytes> seeds() {
  std::map<std::string, Bytes> out;
  out["packet-ping"] = packet({Ping{42, "node-7", "node-3"}});
  out["packet-ping-req-v4"] = packet({PingReq{43, "node-7", kV4, true, "node-3"}});
  out["packet-ping-req-v6"] = packet({PingReq{44, "node-7", kV6, false, "node-3"}});
  out["packet-ack"] = packet({Ack{42}});
  out["packet-nack"] = packet({Nack{43}});
  out["packet-alive-v4"] = packet({Alive{3, "node-9", kV4, {}}});
  out["packet-alive-v6-metadata"] = packet({Alive{4, "node-9", kV6, kMetadata}});
  out["packet-suspect"] = packet({Suspect{3, "node-9", "node-3"}});
  out["packet-dead"] = packet({Dead{3, "node-9", "node-3"}});
  out["packet-leave"] = packet({Leave{5, "node-9"}});
  out["packet-user-event"] = packet({UserEvent{"node-3", 0x0102030405060708ull, kPayload}});
  // What a probe with piggybacked updates looks like.
  out["packet-compound"] = packet({Suspect{3, "node-7", "node-3"}, Ping{45, "node-7", "node-3"},
                                   Alive{4, "node-9", kV6, kMetadata}, Dead{1, "node-5", "node-3"},
                                   UserEvent{"node-3", 9, kPayload}});
  out["packet-long-names"] = packet({Ping{1, std::string(255, 'n'), std::string(255, 's')}});
  // Key management: each operation once, a re-ask, both address families,
  // and an answer of each status.
  out["packet-key-request-list"] =
      packet({KeyRequest{"node-3", 7, false, KeyOp::kList, kV4, kRequestKey, {}}});
  out["packet-key-request-install-v6"] =
      packet({KeyRequest{"node-3", 8, false, KeyOp::kInstall, kV6, kRequestKey, kKey}});
  out["packet-key-request-use-reask"] =
      packet({KeyRequest{"node-3", 9, true, KeyOp::kUse, kV4, kRequestKey, kKeyId}});
  out["packet-key-request-remove"] =
      packet({KeyRequest{"node-3", 10, false, KeyOp::kRemove, kV4, kKeyId, kRequestKey}});
  out["packet-key-response-ok"] = packet({KeyResponse{7, "node-9", KeyStatus::kOk, kKeyIds}});
  out["packet-key-response-refusals"] =
      packet({KeyResponse{9, "node-9", KeyStatus::kKeyNotInstalled, kRequestKey},
              KeyResponse{10, "node-9", KeyStatus::kKeyIsPrimary, kKeyIds},
              KeyResponse{8, "node-9", KeyStatus::kKeyringFull, {}}});

  PushPull empty;
  empty.sender = "node-1";
  out["push-pull-lone"] = push_pull(empty);
  PushPull join;
  join.join = true;
  join.sender = "node-1";
  join.members = {MemberRecord{"node-1", kV4, 0, MemberState::kAlive, {}},
                  MemberRecord{"node-2", kV6, 7, MemberState::kSuspect, kMetadata},
                  MemberRecord{"node-3", kV4, 2, MemberState::kDead, {}},
                  MemberRecord{"node-4", kV6, 9, MemberState::kLeft, kMetadata}};
  join.events = {UserEvent{"node-2", 1, kPayload}, UserEvent{"node-4", 2, {}}};
  out["push-pull-join"] = push_pull(join);
  PushPull periodic = join;
  periodic.join = false;
  periodic.events.clear();
  out["push-pull-periodic"] = push_pull(periodic);
  return out;
}

Bytes read(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || (std::string(argv[1]) != "write" && std::string(argv[1]) != "check")) {
    std::fprintf(stderr, "usage: fuzz_corpus_gen write|check DIR\n");
    return 2;
  }
  const std::string mode = argv[1];
  const std::filesystem::path dir = argv[2];
  const auto expected = seeds();
  if (mode == "write") {
    std::filesystem::create_directories(dir);
    for (const auto& [name, bytes] : expected) {
      std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(bytes.data()),
                static_cast<std::streamsize>(bytes.size()));
      if (!out) {
        std::fprintf(stderr, "fuzz_corpus_gen: cannot write %s\n", (dir / name).c_str());
        return 1;
      }
    }
    std::printf("wrote %zu seeds to %s\n", expected.size(), dir.c_str());
    return 0;
  }
  int wrong = 0;
  for (const auto& [name, bytes] : expected) {
    if (!std::filesystem::exists(dir / name)) {
      std::printf("missing: %s\n", name.c_str());
      ++wrong;
    } else if (read(dir / name) != bytes) {
      std::printf("differs: %s\n", name.c_str());
      ++wrong;
    }
  }
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!expected.count(entry.path().filename().string())) {
      std::printf("not generated: %s\n", entry.path().filename().c_str());
      ++wrong;
    }
  }
  if (wrong > 0) {
    std::printf("%d seeds out of date; regenerate with: fuzz_corpus_gen write %s\n", wrong,
                dir.c_str());
    return 1;
  }
  std::printf("%zu seeds match\n", expected.size());
  return 0;
}
