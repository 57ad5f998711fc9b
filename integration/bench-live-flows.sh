#!/usr/bin/env bash
# ./dev bench conntrack, case live_flows: do idle long-lived connections
# keep their node through a membership change when a burst of short
# connections and a SYN flood have gone through a small connection table?
#
#   integration/bench-live-flows.sh BUILD_DIR [SHORT] [SYNS]
#
# The integration topology (lib.sh) with datapath.conntrack_entries = 4096
# on every node. 100 connections to the VIP's line port are held open, one
# message each every 10 s; meanwhile SHORT short HTTP connections (default
# 100 000) and SYNS SYNs from spoofed client ports (default 60 000, a raw
# socket in the client's namespace) go through the VIP. Then mix2 is
# drained (weight 0: the tables change, established flows must stay), and
# the held connections go on for two more messages. A held connection whose
# entry its ingress node lost follows the new table to another node and is
# reset there: `broken`. One JSON object on stdout, the log on stderr.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

MIXLB_LOG_PREFIX="# "
exec 3>&1 1>&2
emit() { printf '%s\n' "$1" >&3; }

short=${2:-100000}
syns=${3:-60000}
held=100
mixlb_init "${1:?usage: $0 BUILD_DIR [SHORT] [SYNS]}" || exit 1
reason=$(mixlb_probe)
if [ -n "$reason" ]; then
	emit "{\"bench\": \"conntrack\", \"case\": \"live_flows\", \"skipped\": \"$reason\"}"
	exit 0
fi
mixlb_claim || exit 1
export MIXLB_CT_ENTRIES=4096 MIXLB_TCP_CLOSING_IDLE_MS=30000
mixlb_cluster_up || { emit '{"bench": "conntrack", "case": "live_flows", "error": "the cluster did not come up"}'; exit 1; }

out=$MIXLB_TMP/live.hold
nsenter --net="$(mixlb_netns client)" -- "$MIXLB_TESTNODE" hold-many --connect "$MIXLB_VIP:$MIXLB_LINE_PORT" \
	--connections "$held" --seconds 600 --interval-ms 10000 >"$out" 2>&1 &
hold_pid=$!
MIXLB_OTHER_PIDS+=("$hold_pid")
for _ in $(seq 100); do
	[ "$(grep -c '^open ' "$out")" -ge "$held" ] && break
	sleep 0.1
done
opened=$(grep -c '^open ' "$out")
start=$(mixlb_now_ms)
nsenter --net="$(mixlb_netns client)" -- "$MIXLB_TESTNODE" synflood --from 10.0.1.2 \
	--to "$MIXLB_VIP:$MIXLB_HTTP_PORT" --count "$syns" >"$MIXLB_TMP/live.syn" 2>&1 &
syn_pid=$!
nsenter --net="$(mixlb_netns client)" -- "$MIXLB_TESTNODE" load --to "$MIXLB_VIP:$MIXLB_HTTP_PORT" \
	--workers 8 --seconds 600 --count "$short" >"$MIXLB_TMP/live.load" 2>&1
wait "$syn_pid"
burst_ms=$(($(mixlb_now_ms) - start))
mixlb_log "$(grep '^load ' "$MIXLB_TMP/live.load")"
mixlb_log "$(cat "$MIXLB_TMP/live.syn")"
entries=""
for n in "${MIXLB_NODES[@]}"; do
	entries+="$(mixlb_ctl "$n" ct --limit 0 --json | mixlb_json 'd["entries"]') "
done
mixlb_ctl mix2 drain >/dev/null || { emit '{"bench": "conntrack", "case": "live_flows", "error": "drain failed"}'; exit 1; }
mixlb_wait_backends mix1,mix3 10 "${MIXLB_NODES[@]}" || true
sleep 25  # two more messages on every held connection
kill -TERM "$hold_pid"
wait "$hold_pid"
summary=$(grep '^held ' "$out")
mixlb_log "$summary"
broken=$(awk '{ print $6 }' <<<"$summary")
emit "{\"bench\": \"conntrack\", \"case\": \"live_flows\", \"table\": 4096, \"held\": $opened, \"short\": $short, \"syns\": $syns, \"burst_ms\": $burst_ms, \"entries_after_burst\": \"${entries% }\", \"change\": \"drain mix2\", \"broken\": ${broken:-null}}"
