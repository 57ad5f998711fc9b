// libFuzzer target for the gossip wire decoder (gossip/codec.h): every input
// goes through decode_packet and decode_push_pull. Besides the sanitizers'
// findings (out-of-bounds reads, overflows, leaks, runaway allocations), it
// checks the codec's own promises:
//   - a refusal has a gossip error code and says where: its offset lies
//     within the input and its message ends "at offset N" with that offset;
//   - the format is canonical: encoding what was decoded gives back exactly
//     the input (so nothing was skipped, invented or misread), and
//     encoded_size() agrees with the encoder;
//   - a decoded packet holds at least one message.
// A broken promise prints what broke and aborts, which libFuzzer reports as
// a crash with the input saved.
//
// Built with clang-16 and libc++ (test/gossip/meson.build says why);
// seeds in test/gossip/fuzz_corpus, written by fuzz_corpus_gen.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "codec.h"
#include "error.h"

namespace {

using mixlb::gossip::Bytes;
using mixlb::gossip::ByteView;
using mixlb::gossip::DecodeError;

[[noreturn]] void broken(const char* decoder, const std::string& what) {
  std::fprintf(stderr, "fuzz_codec: %s: %s\n", decoder, what.c_str());
  std::abort();
}

void check_refusal(const char* decoder, const DecodeError& error, ByteView input) {
  if (!error.code) broken(decoder, "refused without an error code");
  if (&error.code.category() != &mixlb::gossip::gossip_category()) {
    broken(decoder, "error code outside the gossip category: " + error.code.message());
  }
  if (error.offset > input.size()) {
    broken(decoder, "error offset " + std::to_string(error.offset) + " past the " +
                        std::to_string(input.size()) + "-byte input: " + error.message);
  }
  const std::string where = " at offset " + std::to_string(error.offset);
  if (error.message.size() < where.size() ||
      error.message.compare(error.message.size() - where.size(), where.size(), where) != 0) {
    broken(decoder, "message does not end with its offset: \"" + error.message + "\"");
  }
}

void check_same(const char* decoder, const Bytes& again, ByteView input) {
  if (again.size() != input.size() || !std::equal(again.begin(), again.end(), input.begin())) {
    broken(decoder, "re-encoding the decoded value gave " + std::to_string(again.size()) +
                        " bytes that differ from the " + std::to_string(input.size()) +
                        "-byte input");
  }
}

void packet(ByteView input) {
  auto decoded = mixlb::gossip::decode_packet(input);
  if (!decoded) {
    check_refusal("decode_packet", decoded.error(), input);
    return;
  }
  if (decoded->empty()) broken("decode_packet", "accepted a packet without messages");
  std::size_t size = 1;
  for (const auto& message : *decoded) size += mixlb::gossip::encoded_size(message);
  auto again = mixlb::gossip::encode_packet(*decoded);
  if (!again) broken("decode_packet", "cannot re-encode: " + again.error().message());
  if (size != again->size()) broken("encoded_size", "disagrees with encode_packet");
  check_same("decode_packet", *again, input);
}

void push_pull(ByteView input) {
  auto decoded = mixlb::gossip::decode_push_pull(input);
  if (!decoded) {
    check_refusal("decode_push_pull", decoded.error(), input);
    return;
  }
  auto again = mixlb::gossip::encode_push_pull(*decoded);
  if (!again) broken("decode_push_pull", "cannot re-encode: " + again.error().message());
  check_same("decode_push_pull", *again, input);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteView input(data, size);
  packet(input);
  push_pull(input);
  return 0;
}
