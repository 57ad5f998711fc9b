// The ABI header is shared by the BPF object and the C++ side; these cases
// check the parts a compiler cannot: that the name tables match the enums as
// the BPF object's BTF records them, that every struct of the header has the
// same layout in the BPF object as in C++, and that both sides hash a flow
// alike.
#include <arpa/inet.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "flow_hash.h"
#include "kernel/abi.h"
#include "mixlb_close.skel.h"
#include "mixlb_reuseport.skel.h"
#include "mixlb_xdp.skel.h"

#ifndef MIXLB_SOURCE_DIR
#error "test/meson.build passes MIXLB_SOURCE_DIR"
#endif

namespace mixlb {
namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

using Skeleton = std::unique_ptr<mixlb_xdp, decltype(&mixlb_xdp__destroy)>;

Skeleton open_skeleton() { return {mixlb_xdp__open(), &mixlb_xdp__destroy}; }

// The object's BTF; the skeleton owns it.
const btf* object_btf(const Skeleton& skel) {
  REQUIRE(skel != nullptr);
  const btf* b = bpf_object__btf(skel->obj);
  REQUIRE_MESSAGE(b != nullptr, "the BPF object carries no BTF");
  return b;
}

// Checks every enumerator of `enum_name` in the object's BTF against `names`.
template <std::size_t N>
void check_enum_names(const char* enum_name, const char* prefix, const char* max_name,
                      const std::array<std::string_view, N>& names) {
  const Skeleton skel = open_skeleton();
  const btf* b = object_btf(skel);
  const int id = btf__find_by_name_kind(b, enum_name, BTF_KIND_ENUM);
  REQUIRE_MESSAGE(id > 0, enum_name << " is missing from the object's BTF");
  const btf_type* t = btf__type_by_id(b, id);
  const struct btf_enum* e = btf_enum(t);
  std::size_t seen = 0;
  for (int i = 0; i < btf_vlen(t); ++i) {
    const std::string name = btf__name_by_offset(b, e[i].name_off);
    CAPTURE(name);
    if (name == max_name) {
      CHECK(static_cast<std::size_t>(e[i].val) == N);
      continue;
    }
    REQUIRE(name.rfind(prefix, 0) == 0);
    REQUIRE(static_cast<std::size_t>(e[i].val) < N);
    CHECK(names[e[i].val] == lower(name.substr(std::string(prefix).size())));
    ++seen;
  }
  CHECK(seen == N);
}

// ---------------------------------------------------------------------------
// Struct layouts.
//
// The C++ side cannot list a struct's members without naming them, and a
// per-member list kept by hand is what this test exists to avoid. Aggregate
// initialisation can, though: it fills a struct's scalars in declaration
// order, entering arrays (which no value converts to) one element at a time.
// Building the struct with every such "leaf" zero but one, whose bytes are all
// ones, shows where the compiler put that leaf, bit for bit. The BTF side
// flattens its members the same way, so the two lists compare position by
// position: every member's (and array element's) offset and size.

// One leaf's place in its struct, in bits from the start.
struct Leaf {
  std::string name;
  long first_bit = 0;
  long bits = 0;
};

// Converts to any trivially copyable type: all ones when marked, else zero.
struct LeafValue {
  bool marked = false;
  template <class U>
  requires std::is_trivially_copyable_v<U>
  operator U() const {
    U u;
    std::memset(&u, marked ? 0xff : 0, sizeof u);
    return u;
  }
};

template <std::size_t>
using LeafValueAt = LeafValue;

template <class T, class Seq>
constexpr bool kInitialisesWith = false;
template <class T, std::size_t... I>
constexpr bool kInitialisesWith<T, std::index_sequence<I...>> = requires {
  T{LeafValueAt<I>{}...};
};

// The most initialisers `T` takes: its leaves.
template <class T, std::size_t N = 0>
constexpr std::size_t leaf_count() {
  if constexpr (kInitialisesWith<T, std::make_index_sequence<N + 1>>)
    return leaf_count<T, N + 1>();
  else
    return N;
}

// The bits leaf `k` occupies: those set when only it is all ones. The struct
// is built in zeroed storage so that padding, which no initialiser writes,
// reads as zero.
template <class T, std::size_t... I>
Leaf cpp_leaf(std::size_t k, std::index_sequence<I...>) {
  alignas(T) unsigned char storage[sizeof(T)] = {};
  ::new (static_cast<void*>(storage)) T{LeafValue{I == k}...};
  long first = -1;
  long last = -1;
  for (long bit = 0; bit < static_cast<long>(sizeof(T) * 8); ++bit) {
    if ((storage[bit / 8] >> (bit % 8)) & 1) {
      if (first < 0) first = bit;
      last = bit;
    }
  }
  return {"leaf " + std::to_string(k), first, last - first + 1};
}

template <class T>
std::vector<Leaf> cpp_leaves() {
  static_assert(std::is_aggregate_v<T> && std::is_trivially_copyable_v<T>);
  constexpr std::size_t n = leaf_count<T>();
  std::vector<Leaf> leaves;
  for (std::size_t k = 0; k < n; ++k)
    leaves.push_back(cpp_leaf<T>(k, std::make_index_sequence<n>{}));
  return leaves;
}

// What the C++ side knows of one ABI struct.
struct CppStruct {
  std::string name;
  std::size_t size;
  std::vector<Leaf> leaves;
};

template <class T>
CppStruct cpp_struct(const char* name) {
  return {name, sizeof(T), cpp_leaves<T>()};
}

// Every struct of bpf/mixlb_abi.h. The header itself is the list this is
// checked against, so a struct added there and not here fails the test.
std::vector<CppStruct> cpp_structs() {
  return {
      cpp_struct<mixlb_vip_key>("mixlb_vip_key"),
      cpp_struct<mixlb_vip_value>("mixlb_vip_value"),
      cpp_struct<mixlb_flow_key>("mixlb_flow_key"),
      cpp_struct<mixlb_ct_value>("mixlb_ct_value"),
      cpp_struct<mixlb_half_open>("mixlb_half_open"),
      cpp_struct<mixlb_filter>("mixlb_filter"),
      cpp_struct<mixlb_fib_cache>("mixlb_fib_cache"),
      cpp_struct<mixlb_clock>("mixlb_clock"),
      cpp_struct<mixlb_ct_cached>("mixlb_ct_cached"),
      cpp_struct<mixlb_node>("mixlb_node"),
      cpp_struct<mixlb_mac>("mixlb_mac"),
      cpp_struct<mixlb_vip_stats>("mixlb_vip_stats"),
      cpp_struct<mixlb_backend_stats>("mixlb_backend_stats"),
      cpp_struct<mixlb_settings>("mixlb_settings"),
      cpp_struct<mixlb_decision>("mixlb_decision"),
      cpp_struct<mixlb_close_event>("mixlb_close_event"),
      cpp_struct<mixlb_rp_key>("mixlb_rp_key"),
      cpp_struct<mixlb_rp_service>("mixlb_rp_service"),
      cpp_struct<mixlb_rp_table>("mixlb_rp_table"),
      cpp_struct<mixlb_rp_flow_key>("mixlb_rp_flow_key"),
      cpp_struct<mixlb_rp_flow>("mixlb_rp_flow"),
      cpp_struct<mixlb_rp_stats>("mixlb_rp_stats"),
  };
}

// The leaves of a value of BTF type `id` at `first_bit`, named `name`:
// arrays become their elements, anything else (scalars, enums, nested
// structs, as aggregate initialisation treats them) one leaf.
void btf_leaves(const btf* b, int id, long first_bit, const std::string& name,
                std::vector<Leaf>& out) {
  id = btf__resolve_type(b, id);
  REQUIRE_MESSAGE(id > 0, "cannot resolve the type of " << name);
  const btf_type* t = btf__type_by_id(b, id);
  if (btf_is_array(t)) {
    const struct btf_array* a = btf_array(t);
    const long element_bits = btf__resolve_size(b, a->type) * 8;
    for (unsigned i = 0; i < a->nelems; ++i)
      btf_leaves(b, a->type, first_bit + i * element_bits, name + "[" + std::to_string(i) + "]",
                 out);
    return;
  }
  out.push_back({name, first_bit, btf__resolve_size(b, id) * 8});
}

std::vector<Leaf> btf_struct_leaves(const btf* b, const btf_type* t) {
  std::vector<Leaf> leaves;
  const btf_member* m = btf_members(t);
  for (int i = 0; i < btf_vlen(t); ++i) {
    const std::string name = btf__name_by_offset(b, m[i].name_off);
    const long offset = btf_member_bit_offset(t, i);
    if (const long bitfield = btf_member_bitfield_size(t, i); bitfield > 0)
      leaves.push_back({name, offset, bitfield});
    else
      btf_leaves(b, m[i].type, offset, name, leaves);
  }
  return leaves;
}

// Every `struct name {` the header defines, comments stripped first so a
// struct mentioned in prose does not count.
std::set<std::string> header_structs() {
  const std::string path = MIXLB_SOURCE_DIR "/bpf/mixlb_abi.h";
  std::ifstream file(path);
  REQUIRE_MESSAGE(file.good(), "cannot read " << path);
  std::stringstream text;
  text << file.rdbuf();
  const std::string code =
      std::regex_replace(text.str(), std::regex(R"(/\*[\s\S]*?\*/|//[^\n]*)"), " ");
  std::set<std::string> names;
  const std::regex definition(R"(\bstruct\s+(\w+)\s*\{)");
  for (std::sregex_iterator it(code.begin(), code.end(), definition), end; it != end; ++it)
    names.insert((*it)[1]);
  return names;
}

}  // namespace

TEST_SUITE("abi") {
  TEST_CASE("every drop reason in the BPF object has its C++ name, in order") {
    check_enum_names("mixlb_drop_reason", "MIXLB_DROP_", "MIXLB_DROP__MAX", kDropReasonNames);
  }

  TEST_CASE("every global counter in the BPF object has its C++ name, in order") {
    check_enum_names("mixlb_counter", "MIXLB_CNT_", "MIXLB_CNT__MAX", kCounterNames);
  }

  TEST_CASE("the C++ layout table holds exactly the structs bpf/mixlb_abi.h defines") {
    const std::set<std::string> in_header = header_structs();
    REQUIRE_FALSE(in_header.empty());
    std::set<std::string> in_table;
    for (const auto& s : cpp_structs()) in_table.insert(s.name);
    for (const auto& name : in_header)
      CHECK_MESSAGE(in_table.contains(name),
                    name << " is defined in the header but missing from cpp_structs()");
    for (const auto& name : in_table)
      CHECK_MESSAGE(in_header.contains(name),
                    name << " is in cpp_structs() but not defined in the header");
  }

  TEST_CASE("every ABI struct has the same size and member layout in the BPF object as in C++") {
    const Skeleton skel = open_skeleton();
    const std::unique_ptr<mixlb_close, decltype(&mixlb_close__destroy)> close(mixlb_close__open(),
                                                                              &mixlb_close__destroy);
    REQUIRE(close != nullptr);
    const std::unique_ptr<mixlb_reuseport, decltype(&mixlb_reuseport__destroy)> reuseport(
        mixlb_reuseport__open(), &mixlb_reuseport__destroy);
    REQUIRE(reuseport != nullptr);
    // The XDP program's object, or the close-tracking or reuseport
    // program's for the structs only they use.
    const btf* objects[] = {object_btf(skel), bpf_object__btf(close->obj), bpf_object__btf(reuseport->obj)};
    for (const CppStruct& s : cpp_structs()) {
      CAPTURE(s.name);
      const btf* b = nullptr;
      int id = 0;
      for (const btf* candidate : objects) {
        if (candidate == nullptr || id > 0) continue;
        b = candidate;
        id = btf__find_by_name_kind(b, s.name.c_str(), BTF_KIND_STRUCT);
      }
      // clang keeps only the types a program uses; an unused ABI struct
      // needs an anchor in bpf/mixlb_xdp.bpf.c, as the enums have.
      CHECK_MESSAGE(id > 0, s.name << " is missing from the objects' BTF");
      if (id <= 0) continue;
      CHECK(btf__resolve_size(b, id) == static_cast<long>(s.size));
      const std::vector<Leaf> in_btf = btf_struct_leaves(b, btf__type_by_id(b, id));
      CHECK(in_btf.size() == s.leaves.size());
      for (std::size_t i = 0; i < std::min(in_btf.size(), s.leaves.size()); ++i) {
        INFO(s.name, ".", in_btf[i].name, ": BTF bits ", in_btf[i].first_bit, "+", in_btf[i].bits,
             ", C++ bits ", s.leaves[i].first_bit, "+", s.leaves[i].bits);
        CHECK(in_btf[i].first_bit == s.leaves[i].first_bit);
        CHECK(in_btf[i].bits == s.leaves[i].bits);
      }
    }
  }

  TEST_CASE("the flow hash is pinned: known answers, and every key field takes part") {
    mixlb_flow_key k{};
    k.src[0] = 0x0a02000a;
    k.dst[0] = 0x0164640a;
    k.sport = 0x409c;
    k.dport = 0x5000;
    k.proto = 6;
    k.family = MIXLB_AF_INET;
    const std::uint32_t base = mixlb_flow_hash(&k);
    // A change of the function would silently reshuffle every flow across an
    // upgrade; this value pins it.
    CHECK(base == 0x3d98f77bu);
    mixlb_flow_key m = k;
    m.sport ^= 1;
    CHECK(mixlb_flow_hash(&m) != base);
    m = k;
    m.dst[0] ^= 1;
    CHECK(mixlb_flow_hash(&m) != base);
    m = k;
    m.proto = 17;
    CHECK(mixlb_flow_hash(&m) != base);
    m = k;
    m.src[3] = 1;
    CHECK(mixlb_flow_hash(&m) != base);
    m = k;
    m.dport ^= 1;
    CHECK(mixlb_flow_hash(&m) != base);
    m = k;
    m.family = MIXLB_AF_INET6;
    CHECK(mixlb_flow_hash(&m) != base);
  }

  // The cache's index (conntrack.h) is a cheaper hash than the flow hash; a
  // field it left out, or a sequence it folded together, would put many live
  // flows in one slot and send them all back to the table. 4,096 flows in
  // 4,096 slots fill about 2,589 (1 - 1/e) when spread at random.
  TEST_CASE("the connection-table cache's slot spreads flows like a random hash, in both families") {
    auto slots_used = [](auto make) {
      std::set<std::uint32_t> used;
      for (std::uint32_t i = 0; i < MIXLB_CT_CACHE_SLOTS; ++i) {
        mixlb_flow_key k{};
        k.dport = htons(80);
        k.proto = 6;
        k.family = MIXLB_AF_INET;
        k.dst[0] = htonl(0x0a640001);
        make(k, i);
        const std::uint32_t slot = mixlb_ct_cache_slot(&k);
        REQUIRE(slot < MIXLB_CT_CACHE_SLOTS);
        used.insert(slot);
      }
      return used.size();
    };
    // One client, consecutive source ports.
    CHECK(slots_used([](mixlb_flow_key& k, std::uint32_t i) {
            k.src[0] = htonl(0x0a000102);
            k.sport = htons(static_cast<std::uint16_t>(32768 + i));
          }) > 2450);
    // Consecutive client addresses, one source port.
    CHECK(slots_used([](mixlb_flow_key& k, std::uint32_t i) {
            k.src[0] = htonl(0x0a000000 + i);
            k.sport = htons(40000);
          }) > 2450);
    // 64 clients with 64 ports each: address and port bits must not cancel.
    CHECK(slots_used([](mixlb_flow_key& k, std::uint32_t i) {
            k.src[0] = htonl(0x0a000000 + (i & 63));
            k.sport = htons(static_cast<std::uint16_t>(40000 + (i >> 6)));
          }) > 2450);
    // IPv6 clients of one /64 that differ in the last word.
    CHECK(slots_used([](mixlb_flow_key& k, std::uint32_t i) {
            k.family = MIXLB_AF_INET6;
            k.src[0] = htonl(0xfd000001);
            k.src[3] = htonl(i + 1);
            k.dst[0] = htonl(0xfd000100);
            k.dst[3] = htonl(1);
            k.sport = htons(40000);
          }) > 2450);
    // Many VIPs: one client and port to 4,096 consecutive destinations.
    CHECK(slots_used([](mixlb_flow_key& k, std::uint32_t i) {
            k.src[0] = htonl(0x0a000102);
            k.dst[0] = htonl(0x0a640002 + i);
            k.sport = htons(40000);
          }) > 2450);
  }

}  // TEST_SUITE

}  // namespace mixlb
