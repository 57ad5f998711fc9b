// The ABI header is shared by the BPF object and the C++ side; these cases
// check the parts a compiler cannot: that the name tables match the enums as
// the BPF object's BTF records them, and that both sides hash a flow alike.
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <cctype>
#include <string>

#include <doctest/doctest.h>

#include "flow_hash.h"
#include "kernel/abi.h"
#include "mixlb_xdp.skel.h"

namespace mixlb {
namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Checks every enumerator of `enum_name` in the object's BTF against `names`.
template <std::size_t N>
void check_enum_names(const char* enum_name, const char* prefix, const char* max_name,
                      const std::array<std::string_view, N>& names) {
  mixlb_xdp* skel = mixlb_xdp__open();
  REQUIRE(skel != nullptr);
  const btf* b = bpf_object__btf(skel->obj);
  REQUIRE(b != nullptr);
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
  mixlb_xdp__destroy(skel);
}

}  // namespace

TEST_SUITE("abi") {

TEST_CASE("every drop reason in the BPF object has its C++ name, in order") {
  check_enum_names("mixlb_drop_reason", "MIXLB_DROP_", "MIXLB_DROP__MAX", kDropReasonNames);
}

TEST_CASE("every global counter in the BPF object has its C++ name, in order") {
  check_enum_names("mixlb_counter", "MIXLB_CNT_", "MIXLB_CNT__MAX", kCounterNames);
}

TEST_CASE("the BPF object's map structs have the sizes the C++ side asserts") {
  mixlb_xdp* skel = mixlb_xdp__open();
  REQUIRE(skel != nullptr);
  const btf* b = bpf_object__btf(skel->obj);
  struct Want {
    const char* name;
    std::size_t size;
  };
  for (const Want& w : {Want{"mixlb_vip_key", sizeof(mixlb_vip_key)},
                        Want{"mixlb_vip_value", sizeof(mixlb_vip_value)},
                        Want{"mixlb_flow_key", sizeof(mixlb_flow_key)},
                        Want{"mixlb_ct_value", sizeof(mixlb_ct_value)},
                        Want{"mixlb_vip_stats", sizeof(mixlb_vip_stats)}}) {
    CAPTURE(w.name);
    const int id = btf__find_by_name_kind(b, w.name, BTF_KIND_STRUCT);
    REQUIRE(id > 0);
    CHECK(btf__resolve_size(b, id) == static_cast<long>(w.size));
  }
  mixlb_xdp__destroy(skel);
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
}

}  // TEST_SUITE

}  // namespace mixlb
