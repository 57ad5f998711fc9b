#pragma once
// Canned results for the admin tests, as the daemon puts them on the wire:
// the renderers are tested on this JSON through render_result, so a field
// the daemon sends and the result types do not read shows up as a layout
// that lost it, and the server tests answer with it.
#include <nlohmann/json.hpp>

namespace mixlb::canned {

// A `status` (and so a `stats`) result: three nodes, an IPv4 VIP with a
// drained backend and an IPv6 all-ports VIP, some counters.
inline const nlohmann::json kStatus = nlohmann::json::parse(R"({
  "node":"mix1","node_id":305419896,"interface":"veth1","ifindex":4,"xdp_mode":"native",
  "address":"10.0.0.11","mac":"02:00:00:00:00:11","maglev_table_size":65537,
  "nodes":[{"name":"mix1","id":305419896,"address":"10.0.0.11","weight":1,"mac":"02:00:00:00:00:11","self":true,"neighbour":"self"},
           {"name":"mix2","id":1234,"address":"fd00::12","weight":12,"mac":"02:00:00:00:00:12","self":false,"neighbour":"reachable"},
           {"name":"mix3","id":99,"address":"10.0.0.13","weight":0,"mac":"-","self":false,"neighbour":"none"}],
  "vips":[{"vip":"10.100.0.1:80/tcp","vip_id":0,"backends":["mix1","mix2"],"weights":{"mix1":1,"mix2":12,"mix3":0},
           "counters":{"local_pkts":1,"local_bytes":74,"fwd_pkts":2,"fwd_bytes":148,"from_peer_pkts":3,"from_peer_bytes":222,
                       "drops":{"no_backend":0,"unknown_node":0,"table_lookup":0,"fib_no_neigh":0,"fib_fwd_disabled":0,"fib_other":0,"redirect":0}},
           "per_node":[{"name":"mix1","self":true,"pkts":1,"bytes":74},{"name":"mix2","self":false,"pkts":2,"bytes":148},
                       {"name":"mix3","self":false,"pkts":0,"bytes":0}]},
          {"vip":"[fd00:100::1]:*/udp","vip_id":1,"backends":["mix2"],"weights":{"mix2":12},
           "counters":{"local_pkts":0,"local_bytes":0,"fwd_pkts":40,"fwd_bytes":52000,"from_peer_pkts":0,"from_peer_bytes":0,
                       "drops":{"fib_no_neigh":0}},
           "per_node":[{"name":"mix2","self":false,"pkts":40,"bytes":52000}]}],
  "counters":{"events":{"ct_hit":10,"ct_miss":3,"ct_insert":3,"ct_insert_fail":0,"ct_non_syn_miss":1,"icmp_error":0,"from_peer":3},
              "drops":{"no_backend":0,"unknown_node":0,"table_lookup":0,"fib_no_neigh":2,"fib_fwd_disabled":0,"fib_frag_needed":0,"fib_other":0,"redirect":1},
              "fib":{"success":42,"no_neigh":2}},
  "conntrack":{"hit":10,"miss":3,"insert":3,"insert_fail":0}})");

}  // namespace mixlb::canned
