#!/usr/bin/env bash
# ./dev bench conntrack, case invalidate: connection-table invalidation
# between nodes, measured on the integration topology (lib.sh: a client, an
# ECMP router, a switch, three nodes with the app and the real sidecar).
#
#   integration/bench-invalidate.sh BUILD_DIR [CONNECTIONS]
#
# For each mode the three sidecars restart with it, CONNECTIONS short HTTP
# connections (default 10 000, eight at a time) go through the VIP from the
# client, entering at every node by the router's ECMP, and then:
#   leftover_entries   entries of those connections in all three tables 1 s
#                      after the last one closed
#   latency_ms_p50/99  close on the serving node to delete on the forwarding
#                      node, as the receivers measure it over the last 8,192
#                      deletes each (one host, one clock): the median of the
#                      nodes' medians, the largest of their 99th percentiles
#   drain_ms           until no entry is left (null: not within 15 s)
#   invalidations      flows named in the invalidations sent
# The sweeper runs with its default timeouts, so what is left at 1 s is
# what invalidation left. One JSON object per line on stdout; the log goes
# to stderr. MIXLB_INVALIDATION_MODES="gossip targeted" measures those modes alone.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

MIXLB_LOG_PREFIX="# "
count=${2:-10000}
export MIXLB_TCP_CLOSING_IDLE_MS=30000
mixlb_bench_start "${1:?usage: $0 BUILD_DIR [CONNECTIONS]}" invalidate
label="$MIXLB_VIP:$MIXLB_HTTP_PORT/tcp"
status=0
for mode in ${MIXLB_INVALIDATION_MODES:-targeted multicast broadcast gossip}; do
	MIXLB_INVALIDATION=$mode
	for n in "${MIXLB_NODES[@]}"; do
		mixlb_stop_sidecar "$n" && mixlb_start_sidecar "$n" && mixlb_wait_ready "$n" || {
			emit "{\"bench\": \"conntrack\", \"case\": \"invalidate\", \"mode\": \"$mode\", \"error\": \"$n did not restart\"}"
			status=1
			continue 2
		}
	done
	mixlb_wait_backends mix1,mix2,mix3 10 "${MIXLB_NODES[@]}" || { status=1; continue; }
	out=$MIXLB_TMP/bench.$mode.load
	nsenter --net="$(mixlb_netns client)" -- "$MIXLB_TESTNODE" load --to "$MIXLB_VIP:$MIXLB_HTTP_PORT" \
		--workers 8 --seconds 600 --count "$count" >"$out" 2>&1
	start=$(mixlb_now_ms)
	ok=$(awk '$1 == "load" { print $5 }' "$out")
	# Until nothing is left (drain_ms), noting what is left at 1 s.
	leftover=""
	drain=null
	while :; do
		left=$(mixlb_ct_matched "$label" 10.0.1.2)
		waited=$(($(mixlb_now_ms) - start))
		[ "$left" -eq 0 ] && { drain=$waited; break; }
		[ -z "$leftover" ] && [ "$waited" -ge 1000 ] && leftover=$left
		[ "$waited" -lt 15000 ] || break
		sleep 0.05
	done
	leftover=${leftover:-0}
	stats=()
	for n in "${MIXLB_NODES[@]}"; do stats+=("$(mixlb_ctl "$n" stats --json)"); done
	emit "$( (IFS=,; printf '[%s]' "${stats[*]}") | "$MIXLB_PYTHON" -c '
import json, statistics, sys
mode, closes, leftover, drain = sys.argv[1], int(sys.argv[2] or 0), int(sys.argv[3]), sys.argv[4]
nodes = json.load(sys.stdin)
lat = [n["invalidation_latency"] for n in nodes if n["invalidation_latency"].get("samples")]
ev = [n["counters"]["events"] for n in nodes]
print(json.dumps({"bench": "conntrack", "case": "invalidate", "mode": mode, "closes": closes,
                  "leftover_entries": leftover,
                  "latency_ms_p50": round(statistics.median(l["p50_us"] for l in lat) / 1000, 2) if lat else None,
                  "latency_ms_p99": round(max(l["p99_us"] for l in lat) / 1000, 2) if lat else None,
                  "drain_ms": None if drain == "null" else int(drain),
                  "invalidations": sum(e.get("inval_sent_flows", 0) for e in ev),
                  "applied": sum(e.get("inval_applied", 0) for e in ev),
                  "dropped": sum(e.get("inval_dropped", 0) for e in ev),
                  "refused": sum(v for e in ev for k, v in e.items() if k.startswith("inval_refused"))}))
' "$mode" "$ok" "$leftover" "$drain")"
done
exit $status
