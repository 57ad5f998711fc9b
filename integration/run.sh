#!/usr/bin/env bash
# mixlb's multi-node integration test (meson test, protocol TAP).
#
#   integration/run.sh BUILD_DIR
#
# Builds the topology of integration/lib.sh — a client, an ECMP router, a
# switch and three mix nodes, each running the app and the real sidecar — and
# checks, with real clients against the VIPs (10.100.0.1 and fd00:100::1), that:
#   a. requests spread over all three nodes and all succeed;
#   c. every node serves locally, forwards and receives forwarded packets,
#      and drops nothing; `mixlbctl ct` finds open connections in the
#      tables; the closed flows of a are gone from every table;
#   b. one long connection survives the router moving it between ingress
#      nodes (consistent hashing + connection table), and really was forwarded;
#   f. the same spread for the IPv6 VIP, forwarded by the peers;
#   g. UDP: every client socket's datagrams are answered by one node (from
#      the VIP address), all nodes answer some sockets, peers forward;
#   h. the same for the IPv6 UDP VIP;
#   s. the sweeper removes those UDP flows' entries once they are idle;
#   v. invalidation, in each mode: after many short connections from every
#      ingress node, no node's table holds an entry of them; invalidations
#      captured from the group by a host without the key, replayed or
#      altered, are refused by every node;
#   i. (b) for an IPv6 connection;
#   j. gossip: every node lists the three members alive, healthy, in its
#      tables, with the six VIP ports each serves;
#   k. drain: new flows avoid the drained node on every node while its
#      established connections keep working; undrain brings it back;
#   l. the app of a node dies: every node drops it from its backends within
#      seconds and every request still succeeds; back when the app returns;
#   m. a sidecar is SIGKILLed: the others drop it once gossip declares it
#      dead (within the suspicion timeout) and requests keep succeeding; a
#      restarted sidecar adopts the pinned state and rejoins, finding its
#      peers through a seed name (gossip.seeds) instead of [[peer]];
#   e. a malformed admin request is refused and the daemon keeps serving;
#   d. a sidecar told to leave (mixlbctl leave) exits leaving nothing behind
#      and the cluster (told by its leave) moves its flows to the others; the
#      others' flows keep their node.
# Prints "1..0 # SKIP reason" when the machine lacks root or a kernel feature.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

MIXLB_LOG_PREFIX="# "
plan=19

diag() { mixlb_log "$@"; }

# ---------------------------------------------------------------- helpers

# counters_snapshot FILE [VIP_LABEL]: "node local fwd from_peer drops" per
# node, summed over all VIPs or for the one VIP entry ("10.100.0.1:7000/tcp").
counters_snapshot() {
	local n values label=None
	[ -n "${2:-}" ] && label="\"$2\""
	: >"$1"
	for n in "${MIXLB_NODES[@]}"; do
		mixlb_alive "${MIXLB_SIDECAR_PID[$n]:-0}" || continue
		values=$(mixlb_status_get "$n" "(vipsum('local_pkts', $label), vipsum('fwd_pkts', $label),
			vipsum('from_peer_pkts', $label), drops($label))") || return 1
		echo "$n $values" >>"$1"
	done
}

# forwarded_check BEFORE AFTER WHAT: between the two snapshots, the VIP's
# packets were forwarded by peers and received by the serving nodes, and
# none were dropped.
forwarded_check() {
	local n fwd=0 from=0 drops=0 line="" d_fwd d_from d_drops
	for n in "${MIXLB_NODES[@]}"; do
		d_fwd=$(($(counter "$2" "$n" fwd) - $(counter "$1" "$n" fwd)))
		d_from=$(($(counter "$2" "$n" from_peer) - $(counter "$1" "$n" from_peer)))
		d_drops=$(($(counter "$2" "$n" drops) - $(counter "$1" "$n" drops)))
		line+="$n fwd+$d_fwd from_peer+$d_from drops+$d_drops; "
		fwd=$((fwd + d_fwd))
		from=$((from + d_from))
		drops=$((drops + d_drops))
	done
	diag "$3 counter deltas: $line"
	[ "$drops" -eq 0 ] || { mixlb_fail "$3: $drops packets dropped"; return; }
	[ "$fwd" -gt 0 ] || { mixlb_fail "$3: no node forwarded a packet to a peer"; return; }
	[ "$from" -gt 0 ] || mixlb_fail "$3: no node received a forwarded packet"
}

# counter FILE NODE COLUMN (local|fwd|from_peer|drops)
counter() {
	awk -v n="$2" -v c="$3" '
		BEGIN { col["local"] = 2; col["fwd"] = 3; col["from_peer"] = 4; col["drops"] = 5 }
		$1 == n { print $col[c]; found = 1 } END { if (!found) print -1 }' "$1"
}

print_counters() {
	diag "$(printf '%-6s %10s %10s %10s %8s' node local_pkts fwd_pkts from_peer drops)"
	while read -r n l f p d; do
		diag "$(printf '%-6s %10s %10s %10s %8s' "$n" "$l" "$f" "$p" "$d")"
	done <"$1"
}

# fixed_port_requests OUT PORT...: one curl per fixed source port, all at once;
# writes "port node" lines to OUT, node "-" for a failed request, and curl's
# complaint about each failed one to OUT.err.
fixed_port_requests() {
	local out=$1 dir p
	shift
	dir=$(mktemp -d "$MIXLB_TMP/ports.XXXXXX") || return 1
	# shellcheck disable=SC2016 # expanded by the inner shell
	mixlb_in client bash -c '
		dir=$1 vip=$2; shift 2
		for p in "$@"; do
			curl -sS --connect-timeout 2 --max-time 3 --local-port "$p" -o "$dir/$p" \
				"http://$vip/" 2>"$dir/$p.err" &
		done
		wait' _ "$dir" "$MIXLB_VIP" "$@"
	: >"$out"
	: >"$out.err"
	for p in "$@"; do
		local body=""
		[ -f "$dir/$p" ] && body=$(cat "$dir/$p")
		if ! [[ "$body" =~ ^mix[0-9]+$ ]]; then
			body=-
			echo "port $p: $(head -c 200 "$dir/$p.err")" >>"$out.err"
		fi
		echo "$p $body" >>"$out"
	done
}

# ---------------------------------------------------------------- scenarios

# 1: the cluster comes up, in which XDP mode.
scenario_up() {
	local start n modes="" mode
	start=$(mixlb_now_ms)
	mixlb_cluster_up || return 1
	for n in "${MIXLB_NODES[@]}"; do
		mode=$(mixlb_status_get "$n" 'd["xdp_mode"]') || return 1
		modes+="$n=$mode "
		case $mode in
		native) ;;
		generic) diag "WARNING: $n fell back to generic XDP (native attach failed)" ;;
		*) mixlb_fail "$n reports xdp_mode '$mode'"; return ;;
		esac
		# The kernel must agree: a program on the uplink, in that mode
		# (ip link's XDP modes: 1 = driver/native, 2 = skb/generic).
		local prog kernel_mode
		prog=$(mixlb_xdp_prog "$n" "$(mixlb_if "$n")")
		if [ -z "$prog" ]; then
			mixlb_fail "$n: no XDP program on $(mixlb_if "$n") although the sidecar is ready"
			return
		fi
		case ${prog%% *} in 1) kernel_mode=native ;; 2) kernel_mode=generic ;; *) kernel_mode="mode ${prog%% *}" ;; esac
		diag "$n: XDP program ${prog#* } on $(mixlb_if "$n") in $kernel_mode mode"
		[ "$kernel_mode" = "$mode" ] || { mixlb_fail "$n: status says $mode, the kernel says $kernel_mode"; return; }
	done
	if [[ "$modes" == *generic* ]]; then
		diag "xdp mode: generic (fallback; per node: $modes)"
	else
		diag "xdp mode: native"
	fi
	diag "cluster up in $(($(mixlb_now_ms) - start)) ms (run prefix $MIXLB_P)"
}

# a, f: 300 requests to HOST (an address, IPv6 in brackets) with varied
# source ports, all answered, by every node (or exactly by the nodes EXPECT
# names). With a VIP label, that VIP's
# packets must also have been forwarded between nodes, and none dropped.
scenario_spread() {
	local host=$1 label=${2:-} tag=${3:-spread} expect=${4:-"${MIXLB_NODES[*]}"}
	local dir=$MIXLB_TMP/$tag code port file body ok=0 bad=0 n
	local -A served=()
	local -A ports=()
	mkdir -p "$dir"
	if [ -n "$label" ]; then counters_snapshot "$dir/counters.0" "$label" || return 1; fi
	mixlb_in client curl -s --parallel --parallel-max 8 --connect-timeout 2 --max-time 3 \
		-o "$dir/#1" -w '%{http_code} %{local_port} %{filename_effective}\n' \
		"http://$host/?r=[1-300]" >"$dir/results" 2>"$dir/curl.err"
	while read -r code port file; do
		body=""
		[ -f "$file" ] && body=$(cat "$file")
		if [ "$code" = 200 ] && [[ "$body" =~ ^mix[0-9]+$ ]]; then
			ok=$((ok + 1))
			served[$body]=$((${served[$body]:-0} + 1))
			ports[$port]=1
		else
			bad=$((bad + 1))
			[ $bad -le 5 ] && diag "failed request: http $code, source port $port, body '${body}'"
		fi
	done <"$dir/results"
	local dist=""
	for n in "${MIXLB_NODES[@]}"; do dist+="$n=${served[$n]:-0} "; done
	diag "300 requests to http://$host/: $ok answered, $bad failed; served by: $dist;" \
		"${#ports[@]} distinct source ports"
	[ $ok -eq 300 ] || { mixlb_fail "$((300 - ok)) of 300 requests failed"; return; }
	for n in "${MIXLB_NODES[@]}"; do
		if [[ " $expect " == *" $n "* ]]; then
			[ "${served[$n]:-0}" -gt 0 ] || { mixlb_fail "$n served none of 300 requests"; return; }
		else
			[ "${served[$n]:-0}" -eq 0 ] || { mixlb_fail "$n served ${served[$n]} requests, expected none"; return; }
		fi
	done
	[ ${#ports[@]} -ge 100 ] || { mixlb_fail "only ${#ports[@]} distinct source ports"; return; }
	if [ -n "$label" ]; then
		counters_snapshot "$dir/counters.1" "$label" || return 1
		forwarded_check "$dir/counters.0" "$dir/counters.1" "$label"
	fi
}

# g, h: UDP to ENDPOINT (ADDR:PORT, IPv6 in brackets) from one socket per
# fixed source port, several datagrams each: every answer came back (from
# the VIP address: the client's socket is connected to it), all of a
# socket's answers from one node, every node answered some socket, and the
# VIP's datagrams were forwarded between nodes without drops.
scenario_udp() {
	local endpoint=$1 label=$2 tag=$3 count=5
	local dir=$MIXLB_TMP/$tag p line sport ratio nodes node rc=0 bad=0 mixed=0 n
	local -A sockets=()
	mkdir -p "$dir"
	counters_snapshot "$dir/counters.0" "$label" || return 1
	# shellcheck disable=SC2016 # expanded by the inner shell
	mixlb_in client bash -c '
		testnode=$1 dir=$2 to=$3 count=$4; shift 4
		for p in "$@"; do
			"$testnode" udp --to "$to" --count "$count" --sport "$p" --timeout-ms 1000 \
				>"$dir/$p" 2>"$dir/$p.err" &
		done
		wait' _ "$MIXLB_TESTNODE" "$dir" "$endpoint" "$count" "${udp_ports[@]}"
	for p in "${udp_ports[@]}"; do
		line=$(cat "$dir/$p" 2>/dev/null)
		# "sport P answered K/N nodes NODE..."
		read -r _ sport _ ratio _ nodes <<<"$line"
		if [ "${sport:-}" != "$p" ] || [ "${ratio:-}" != "$count/$count" ]; then
			bad=$((bad + 1))
			[ $bad -le 5 ] && diag "source port $p: '${line:-no output}' $(head -c 200 "$dir/$p.err")"
			continue
		fi
		node=${nodes%% *}
		if [ "$(tr ' ' '\n' <<<"$nodes" | sort -u | wc -l)" -ne 1 ]; then
			mixed=$((mixed + 1))
			[ $mixed -le 5 ] && diag "source port $p: answered by $nodes"
			continue
		fi
		sockets[$node]=$((${sockets[$node]:-0} + 1))
	done
	local dist=""
	for n in "${MIXLB_NODES[@]}"; do dist+="$n=${sockets[$n]:-0} "; done
	diag "${#udp_ports[@]} UDP sockets x $count requests to $endpoint: $bad with a missing" \
		"answer, $mixed answered by more than one node; sockets per node: $dist"
	[ $bad -eq 0 ] || { mixlb_fail "$bad sockets missed answers"; rc=1; }
	[ $mixed -eq 0 ] || { mixlb_fail "$mixed sockets were answered by more than one node"; rc=1; }
	for n in "${MIXLB_NODES[@]}"; do
		[ "${sockets[$n]:-0}" -gt 0 ] || { mixlb_fail "$n answered none of the sockets"; rc=1; }
	done
	counters_snapshot "$dir/counters.1" "$label" || return 1
	forwarded_check "$dir/counters.0" "$dir/counters.1" "$label" || rc=1
	return $rc
}

# c: after (a): local on every node, forwarding across nodes, no drops.
scenario_counters() {
	local snap=$MIXLB_TMP/counters.c n rc=0 fwd=0 from=0
	counters_snapshot "$snap" || return 1
	print_counters "$snap"
	for n in "${MIXLB_NODES[@]}"; do
		[ "$(counter "$snap" "$n" local)" -gt 0 ] || { mixlb_fail "$n: local_pkts is 0"; rc=1; }
		[ "$(counter "$snap" "$n" drops)" -eq 0 ] || {
			mixlb_fail "$n drops packets: $(mixlb_status_get "$n" '[v["counters"]["drops"] for v in d["vips"]]')"
			rc=1
		}
		fwd=$((fwd + $(counter "$snap" "$n" fwd)))
		from=$((from + $(counter "$snap" "$n" from_peer)))
	done
	diag "across nodes: fwd_pkts $fwd, from_peer_pkts $from"
	[ $fwd -gt 0 ] || { mixlb_fail "no node forwarded a packet"; rc=1; }
	[ $from -gt 0 ] || { mixlb_fail "no node received a forwarded packet"; rc=1; }
	# mixlbctl ct finds six open connections by VIP and client in the tables
	# of their ingress nodes.
	local json matched total=0 rows pid
	hold_many 6 3 ct.hold
	sleep 1
	for n in "${MIXLB_NODES[@]}"; do
		json=$(mixlb_ctl "$n" ct --vip "$MIXLB_VIP:$MIXLB_LINE_PORT/tcp" --client 10.0.1.2 --limit 3 --json) ||
			{ mixlb_fail "$n: mixlbctl ct: $json"; rc=1; continue; }
		matched=$(mixlb_json 'd["matched"]' <<<"$json")
		rows=$(mixlb_json '" ".join(r["node"] + "@" + r["vip"] for r in d["rows"])' <<<"$json")
		diag "$n: ct --vip $MIXLB_VIP:$MIXLB_LINE_PORT/tcp --client 10.0.1.2: $matched entries; the 3 most recent: $rows"
		total=$((total + matched))
		for row in $rows; do
			[[ "$row" =~ ^mix[123]@$MIXLB_VIP:$MIXLB_LINE_PORT$ ]] || { mixlb_fail "$n: ct row $row"; rc=1; }
		done
	done
	[ "$total" -ge 6 ] || { mixlb_fail "mixlbctl ct found $total of the 6 open connections"; rc=1; }
	for pid in "${HOLD_PIDS[@]}"; do wait "$pid" || { mixlb_fail "a held connection failed"; rc=1; }; done
	# Close tracking saw the serving sockets of a close (and the health
	# checks'), and deleted the entries of the flows served where they entered.
	local seen=0 deleted=0 events
	for n in "${MIXLB_NODES[@]}"; do
		events=$(mixlb_ctl "$n" stats --json | mixlb_json 'd["counters"]["events"].get("close_seen", -1), d["counters"]["events"].get("close_deleted", -1), d["counters"]["events"].get("close_ring_full", -1)')
		diag "$n: close tracking seen/deleted/ring_full: $events"
		read -r s d _ <<<"$events"
		seen=$((seen + s))
		deleted=$((deleted + d))
	done
	[ "$seen" -ge 300 ] || { mixlb_fail "close tracking saw $seen closes, fewer than the 300 requests of a"; rc=1; }
	[ "$deleted" -gt 0 ] || { mixlb_fail "close tracking deleted no entry"; rc=1; }
	# Every flow of a is gone: deleted by close tracking where it was served
	# locally, and by invalidation (targeted) on the node that forwarded it.
	local applied=0
	for n in "${MIXLB_NODES[@]}"; do
		applied=$((applied + $(mixlb_ctl "$n" stats --json | mixlb_json 'd["counters"]["events"]["inval_applied"]')))
	done
	diag "flows of a: $deleted deleted at their close where served, $applied invalidated where forwarded, $(ct_left) left"
	[ "$(ct_left)" -eq 0 ] || { mixlb_fail "entries of a's closed flows are left"; rc=1; }
	[ "$applied" -gt 0 ] || { mixlb_fail "no invalidation was applied"; rc=1; }
	mixlb_ctl mix1 ct --limit 2 | head -n 1 | grep -q '^mixlb node mix1: connection table [0-9]* of [0-9]* entries' ||
		{ mixlb_fail "mixlbctl ct prints no header"; rc=1; }
	return $rc
}

# s: the UDP flows of g and h, idle since, leave every node's table within
# lib.sh's conntrack.udp_idle_ms (2 s) and a sweep interval (0.5 s).
scenario_sweep() {
	local n rc=0 start left swept
	start=$(mixlb_now_ms)
	while :; do
		left=0
		for n in "${MIXLB_NODES[@]}"; do
			for vip in "$MIXLB_VIP:$MIXLB_UDP_PORT/udp" "[$MIXLB_VIP6]:$MIXLB_UDP_PORT/udp"; do
				left=$((left + $(mixlb_ctl "$n" ct --vip "$vip" --limit 0 --json | mixlb_json 'd["matched"]')))
			done
		done
		[ "$left" -eq 0 ] && break
		[ $(($(mixlb_now_ms) - start)) -lt 10000 ] || { mixlb_fail "$left UDP entries left after 10 s"; return 1; }
		sleep 0.2
	done
	diag "no UDP entry left on any node $(($(mixlb_now_ms) - start)) ms after the UDP scenarios ended"
	for n in "${MIXLB_NODES[@]}"; do
		swept=$(mixlb_ctl "$n" stats --json | mixlb_json 'd["counters"]["events"].get("ct_swept_udp_idle", 0)')
		diag "$n: ct_swept_udp_idle $swept, ct_sweeps $(mixlb_ctl "$n" stats --json | mixlb_json 'd["counters"]["events"].get("ct_sweeps", 0)')"
		[ "$swept" -gt 0 ] || { mixlb_fail "$n's sweeper removed no UDP entry"; rc=1; }
	done
	return $rc
}

# ct_left: the entries of the client's flows to the VIP's HTTP port, summed
# over every node's table.
ct_left() { mixlb_ct_matched "$MIXLB_VIP:$MIXLB_HTTP_PORT/tcp" 10.0.1.2; }

# v: invalidation in each mode. The three sidecars restart with the mode
# (conntrack.invalidation takes a restart), then 10 000 short connections go
# through the VIP from every ingress node; after the last one, no node's
# table holds an entry of them. Ends in targeted mode, the default.
scenario_invalidation() {
	local mode n rc=0 count start left waited line applied
	for mode in multicast broadcast gossip targeted; do
		MIXLB_INVALIDATION=$mode
		for n in "${MIXLB_NODES[@]}"; do
			mixlb_stop_sidecar "$n" && mixlb_start_sidecar "$n" && mixlb_wait_ready "$n" ||
				{ mixlb_fail "$n did not restart in $mode mode"; return 1; }
		done
		mixlb_wait_backends mix1,mix2,mix3 10 "${MIXLB_NODES[@]}" || return 1
		for n in "${MIXLB_NODES[@]}"; do
			grep -q "invalidation by $mode" "$(mixlb_sidecar_log "$n")" ||
				{ mixlb_fail "$n's log does not say it invalidates by $mode"; rc=1; }
			# Received batches are deleted by the in-kernel program.
			line=$(mixlb_ctl "$n" stats --json | mixlb_json 'd.get("invalidation_apply", "")')
			[ "$line" = kernel ] || { mixlb_fail "$n applies invalidations '$line', not in the kernel"; rc=1; }
		done
		count=10000
		# A host of the segment without the key (the router) listens in.
		local capture_pid=""
		if [ "$mode" = multicast ]; then
			nsenter --net="$(mixlb_netns router)" -- "$MIXLB_TESTNODE" mcast-capture --group 224.0.0.88:9066 \
				--via 10.0.0.1 --count 20 --timeout-ms 30000 >"$MIXLB_TMP/inval.captured" 2>"$MIXLB_TMP/inval.capture.log" &
			capture_pid=$!
			MIXLB_OTHER_PIDS+=("$capture_pid")
		fi
		nsenter --net="$(mixlb_netns client)" -- "$MIXLB_TESTNODE" load --to "$MIXLB_VIP:$MIXLB_HTTP_PORT" \
			--workers 8 --seconds 120 --count "$count" >"$MIXLB_TMP/inval.$mode.load" 2>&1 ||
			{ mixlb_log_file "$MIXLB_TMP/inval.$mode.load" 5; mixlb_fail "$mode: requests failed"; rc=1; continue; }
		start=$(mixlb_now_ms)
		line=$(grep '^load ' "$MIXLB_TMP/inval.$mode.load")
		local shown=0
		while :; do
			left=$(ct_left)
			waited=$(($(mixlb_now_ms) - start))
			[ "$left" -eq 0 ] && break
			[ "$waited" -lt 30000 ] || break
			if [ "$shown" = 0 ] && [ "$waited" -ge 2000 ]; then
				shown=1
				for n in "${MIXLB_NODES[@]}"; do
					diag "$mode: left on $n after 2 s: $(mixlb_ctl "$n" ct --vip "$MIXLB_VIP:$MIXLB_HTTP_PORT/tcp" \
						--client 10.0.1.2 --limit 3 --json | mixlb_json '" ".join("%s->%s flags %s age %s idle %s" % (
						r["client"], r["node"], r["flags"], r.get("age_s"), r["idle_s"]) for r in d["rows"])')"
				done
			fi
			sleep 0.1
		done
		applied=""
		for n in "${MIXLB_NODES[@]}"; do
			applied+=" $n:$(mixlb_ctl "$n" stats --json | mixlb_json '"sent %d applied %d refused %d p99 %s us" % (
				d["counters"]["events"]["inval_sent_flows"], d["counters"]["events"]["inval_applied"],
				sum(v for k, v in d["counters"]["events"].items() if k.startswith("inval_refused")),
				d["invalidation_latency"].get("p99_us", "-"))')"
		done
		diag "$mode: ${line#load }"
		diag "$mode: $left entries of them left in the tables ${waited} ms after the last close;$applied"
		[ "$left" -eq 0 ] || { mixlb_fail "$mode: $left entries left after 30 s"; rc=1; }
		if [ -n "$capture_pid" ]; then replay_invalidations "$capture_pid" || rc=1; fi
	done
	return $rc
}

# inval_sum COUNTER: an inval_* counter summed over the nodes.
inval_sum() {
	local n sum=0
	for n in "${MIXLB_NODES[@]}"; do
		sum=$((sum + $(mixlb_ctl "$n" stats --json | mixlb_json "d['counters']['events']['inval_$1']")))
	done
	echo "$sum"
}

# v (multicast): the router, a host of the segment without the key, sends
# the invalidations it captured again, and the same with a byte changed:
# every node refuses each (as a replay, or as its own; as unauthenticated),
# and takes no flow of them.
replay_invalidations() {
	local captured replayed forged before_r before_u before_f before_s
	wait "$1" || { mixlb_log_file "$MIXLB_TMP/inval.capture.log" 5; mixlb_fail "nothing captured from the group"; return 1; }
	captured=$(wc -l <"$MIXLB_TMP/inval.captured")
	before_r=$(inval_sum refused_replayed)
	before_u=$(inval_sum refused_unauthenticated)
	before_s=$(inval_sum refused_unknown_sender)
	before_f=$(inval_sum received_flows)
	nsenter --net="$(mixlb_netns router)" -- "$MIXLB_TESTNODE" mcast-send --group 224.0.0.88:9066 --via 10.0.0.1 \
		<"$MIXLB_TMP/inval.captured" >/dev/null || { mixlb_fail "replaying failed"; return 1; }
	nsenter --net="$(mixlb_netns router)" -- "$MIXLB_TESTNODE" mcast-send --group 224.0.0.88:9066 --via 10.0.0.1 \
		--forge 1 <"$MIXLB_TMP/inval.captured" >/dev/null || { mixlb_fail "forging failed"; return 1; }
	sleep 0.5
	replayed=$(($(inval_sum refused_replayed) - before_r))
	forged=$(($(inval_sum refused_unauthenticated) - before_u))
	local own=$(($(inval_sum refused_unknown_sender) - before_s)) taken=$(($(inval_sum received_flows) - before_f))
	diag "multicast: $captured datagrams captured by a host without the key; sent again: $replayed refusals as" \
		"replays, $own by their own sender; with a byte changed: $forged refused unauthenticated; flows taken: $taken"
	[ "$replayed" -eq $((2 * captured)) ] || { mixlb_fail "$replayed replay refusals, not 2 x $captured"; return 1; }
	[ "$own" -eq "$captured" ] || { mixlb_fail "$own refusals by the sender, not $captured"; return 1; }
	[ "$forged" -eq $((3 * captured)) ] || { mixlb_fail "$forged forgeries refused, not 3 x $captured"; return 1; }
	[ "$taken" -eq 0 ] || { mixlb_fail "the nodes took $taken flows of replayed or forged invalidations"; return 1; }
}

# b, i: one connection to ENDPOINT (the VIP's line port) while the router
# moves its ingress node every 3 s; LABEL is that VIP entry, for counters.
scenario_shuffle() {
	local endpoint=$1 label=$2 tag=$3
	local before=$MIXLB_TMP/$tag.counters.0 after=$MIXLB_TMP/$tag.counters.1 out=$MIXLB_TMP/$tag.hold.out
	local hold_pid rc n node ingress order=(mix1 mix2 mix3 mix1 mix2) step=0
	counters_snapshot "$before" "$label" || return 1
	nsenter --net="$(mixlb_netns client)" -- "$MIXLB_TESTNODE" hold --connect "$endpoint" \
		--seconds 15 --interval-ms 100 >"$out" 2>&1 &
	hold_pid=$!
	MIXLB_OTHER_PIDS+=("$hold_pid")
	# The connection opens under the full ECMP route; then the route points at
	# one node at a time: 1.5 s, 4.5 s, 7.5 s, 10.5 s, 13.5 s.
	sleep 1.5
	for ingress in "${order[@]}"; do
		mixlb_route_via "$ingress" || { kill "$hold_pid"; wait "$hold_pid"; return 1; }
		step=$((step + 1))
		[ $step -lt ${#order[@]} ] && sleep 3
	done
	wait "$hold_pid"
	rc=$?
	mixlb_route_via "${MIXLB_NODES[@]}" || return 1
	diag "hold $endpoint: $(head -c 400 "$out" | tr '\n' ' ')(exit $rc); ingress order: ${order[*]}"
	[ $rc -eq 0 ] || { mixlb_fail "the held connection broke while its ingress moved"; return; }
	node=$(awk '$1 == "node" { print $2 }' "$out")
	[[ " ${MIXLB_NODES[*]} " == *" $node "* ]] || { mixlb_fail "hold named no known node"; return; }

	counters_snapshot "$after" "$label" || return 1
	local forwarded=0 line=""
	for n in "${MIXLB_NODES[@]}"; do
		local d_fwd d_from d_drops
		d_fwd=$(($(counter "$after" "$n" fwd) - $(counter "$before" "$n" fwd)))
		d_from=$(($(counter "$after" "$n" from_peer) - $(counter "$before" "$n" from_peer)))
		d_drops=$(($(counter "$after" "$n" drops) - $(counter "$before" "$n" drops)))
		line+="$n fwd+$d_fwd from_peer+$d_from drops+$d_drops; "
		if [ "$n" != "$node" ] && [ $d_fwd -gt 0 ]; then forwarded=$((forwarded + 1)); fi
		if [ "$n" = "$node" ] && [ $d_from -le 0 ]; then
			mixlb_fail "$node served the connection but received no forwarded packet"
			return
		fi
		[ $d_drops -eq 0 ] || { mixlb_fail "$n dropped $d_drops packets of $label"; return; }
	done
	diag "served by $node; $label counter deltas: $line"
	[ $forwarded -gt 0 ] || mixlb_fail "no non-serving node forwarded the connection's packets"
}

# e: malformed admin requests are refused with {"ok":false,...}, the
# connection carries on (a status request on it still works), and the daemon
# keeps serving; an over-long line gets an error reply and a hang-up.
scenario_bad_admin() {
	local n=mix1 rc=0 reply
	mixlb_in "$n" "$MIXLB_PYTHON" - "$(mixlb_socket "$n")" "$n" <<'PY' | while IFS= read -r line; do diag "$line"; done
import json, socket, sys

path, node = sys.argv[1], sys.argv[2]
bad = [b"this is not json", b'{"cmd": "status"', b"\x01\x02\xff{}[", b"[1, 2, 3]",
       b'{"cmd": 42}', b'{"cmd": "no-such-command"}', b'{"cmd": "status", "args": 5}']
failures = 0

def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect(path)
    return s, s.makefile("rb")

def reply(f):
    line = f.readline()
    if not line.endswith(b"\n"):
        raise RuntimeError("no reply line (got %r)" % line)
    return json.loads(line)

for req in bad:
    try:
        s, f = connect()
        s.sendall(req + b"\n")
        r = reply(f)
        good = isinstance(r, dict) and r.get("ok") is False and isinstance(r.get("error"), str)
        # The same connection must still answer a good request.
        s.sendall(b'{"cmd": "status"}\n')
        after = reply(f)
        carried_on = isinstance(after, dict) and after.get("ok") is True and \
            after.get("result", {}).get("node") == node
        s.close()
    except Exception as e:
        print("FAIL: request %r: %s" % (req, e))
        failures += 1
        continue
    print("%s request %r -> %s%s" % ("ok:" if good and carried_on else "FAIL:", req,
          json.dumps(r), "" if carried_on else "; then status on the same connection: %s" % json.dumps(after)))
    failures += not (good and carried_on)

# Over the line limit: an error reply, then the daemon hangs up.
try:
    s, f = connect()
    s.sendall(b"x" * (256 * 1024) + b"\n")
    s.shutdown(socket.SHUT_WR)
    r = reply(f)
    good = isinstance(r, dict) and r.get("ok") is False and "longer than" in r.get("error", "")
    print("%s over-long line -> %s" % ("ok:" if good else "FAIL:", json.dumps(r)))
    failures += not good
    s.close()
except Exception as e:
    print("FAIL: over-long line -> %s" % e)
    failures += 1
sys.exit(1 if failures else 0)
PY
	rc=${PIPESTATUS[0]}
	mixlb_alive "${MIXLB_SIDECAR_PID[$n]}" || { mixlb_fail "$n's sidecar died"; return; }
	reply=$(mixlb_status_get "$n" 'd["node"]')
	[ "$reply" = "$n" ] || { mixlb_fail "$n no longer answers status"; rc=1; }
	return "$rc"
}

# j: every node sees the same three members: alive, app healthy, in its
# tables, each publishing the six VIP ports; gossip is encrypted.
scenario_members() {
	local n rc=0 out
	for n in "${MIXLB_NODES[@]}"; do
		if ! out=$(mixlb_ctl "$n" members --json 2>&1); then
			mixlb_fail "$n: mixlbctl members: $out"
			rc=1
			continue
		fi
		local verdict
		verdict=$(mixlb_json '"ok" if sorted(m["name"] for m in d["members"]) == sorted(sys.argv[2:])
			and all(m["state"] == "alive" and m["in_tables"] and m["app_healthy"]
			        and m["weight"] == 1 and len(m["vips"]) == 6
			        and not any(v.startswith("#") for v in m["vips"]) for m in d["members"])
			else json.dumps(d["members"])' "${MIXLB_NODES[@]}" <<<"$out") || verdict="unreadable: $out"
		[ "$verdict" = ok ] || { mixlb_fail "$n: members: $verdict"; rc=1; }
		[ "$(mixlb_status_get "$n" 'd["gossip"]["encrypted"]')" = True ] ||
			{ mixlb_fail "$n: gossip is not encrypted"; rc=1; }
	done
	out=$(mixlb_ctl mix1 members 2>&1)
	while IFS= read -r line; do diag "$line"; done <<<"$out"
	grep -Eq '^  mix2 +alive ' <<<"$out" || { mixlb_fail "mixlbctl members (text) does not show mix2 alive"; rc=1; }
	return $rc
}

# hold_many N SECONDS TAG: N held connections to the IPv4 line port, in the
# background; their outputs go to $MIXLB_TMP/TAG.N, their PIDs to HOLD_PIDS.
hold_many() {
	local count=$1 seconds=$2 tag=$3 i
	HOLD_PIDS=()
	for ((i = 0; i < count; i++)); do
		nsenter --net="$(mixlb_netns client)" -- "$MIXLB_TESTNODE" hold \
			--connect "$MIXLB_VIP:$MIXLB_LINE_PORT" --seconds "$seconds" --interval-ms 200 \
			>"$MIXLB_TMP/$tag.$i" 2>&1 &
		HOLD_PIDS+=($!)
		MIXLB_OTHER_PIDS+=($!)
	done
}

# k: draining mix2 publishes weight 0: every node stops sending it new flows,
# the connections it already serves keep working; undrain restores it.
scenario_drain() {
	local n=mix2 rc=0 i pid held=0 held_on=0 broken=0 node out
	hold_many 24 10 drain
	sleep 1.5
	if ! out=$(mixlb_ctl "$n" drain 2>&1); then
		mixlb_fail "mixlbctl drain: $out"
		return
	fi
	diag "mixlbctl drain: $out"
	mixlb_wait_backends mix1,mix3 5 "${MIXLB_NODES[@]}" || rc=1
	[ -n "$MIXLB_WAITED_MS" ] && diag "every node took $n out of its backends within $MIXLB_WAITED_MS ms of the drain"
	[ "$(mixlb_status_get "$n" 'd["gossip"]["drained"]')" = True ] || { mixlb_fail "status does not say drained"; rc=1; }
	scenario_spread "$MIXLB_VIP" "" drain.spread "mix1 mix3" || rc=1
	for i in "${!HOLD_PIDS[@]}"; do
		pid=${HOLD_PIDS[$i]}
		if wait "$pid"; then
			held=$((held + 1))
		else
			broken=$((broken + 1))
			diag "held connection $i broke: $(head -c 300 "$MIXLB_TMP/drain.$i" | tr '\n' ' ')"
		fi
		node=$(awk '$1 == "node" { print $2 }' "$MIXLB_TMP/drain.$i")
		[ "$node" = "$n" ] && held_on=$((held_on + 1))
	done
	diag "24 connections held through the drain: $held kept working ($held_on of them on $n), $broken broke"
	[ $broken -eq 0 ] || { mixlb_fail "$broken established connections broke"; rc=1; }
	[ $held_on -gt 0 ] || { mixlb_fail "none of the held connections was on $n: the drain was not put to the test"; rc=1; }

	if ! out=$(mixlb_ctl "$n" undrain 2>&1); then
		mixlb_fail "mixlbctl undrain: $out"
		return
	fi
	diag "mixlbctl undrain: $out"
	mixlb_wait_backends mix1,mix2,mix3 5 "${MIXLB_NODES[@]}" || rc=1
	scenario_spread "$MIXLB_VIP" "" undrain.spread || rc=1
	return $rc
}

# l: mix1's app dies: its check fails, it publishes "not serving", and every
# node (itself included) takes it out; requests keep succeeding. When the app
# comes back, so does mix1.
scenario_app_down() {
	local n=mix1 rc=0
	kill -KILL "${MIXLB_SERVER_PID[$n]}" 2>/dev/null
	wait "${MIXLB_SERVER_PID[$n]}" 2>/dev/null
	unset "MIXLB_SERVER_PID[$n]"
	mixlb_wait_backends mix2,mix3 10 "${MIXLB_NODES[@]}" || return 1
	diag "$n's app killed: every node took $n out of its backends within $MIXLB_WAITED_MS ms"
	scenario_spread "$MIXLB_VIP" "" appdown.spread "mix2 mix3" || rc=1
	mixlb_start_server "$n" || return 1
	mixlb_wait_backends mix1,mix2,mix3 10 "${MIXLB_NODES[@]}" || return 1
	diag "$n's app restarted: back in every node's backends within $MIXLB_WAITED_MS ms"
	return $rc
}

# l2: one service of mix1's app fails its check (its line port; an nftables
# rule in mix1's namespace refuses the sidecar's own connections to it):
# every node takes mix1 out of the line port's tables only; HTTP and UDP keep
# mix1, and HTTP keeps spreading over all three. The rule goes: mix1 is back.
scenario_service_down() {
	local n=mix1 rc=0 ns
	ns=$(mixlb_netns "$n")
	printf 'table inet mixlb_test_check {\n chain out {\n  type filter hook output priority 0;\n  tcp dport %s reject with tcp reset\n }\n}\n' \
		"$MIXLB_LINE_PORT" | nsenter --net="$ns" -- nft -f - || return 1
	mixlb_wait_backends_of ":$MIXLB_LINE_PORT/tcp\$" mix2,mix3 10 "${MIXLB_NODES[@]}" || rc=1
	[ $rc = 0 ] && diag "$n's line service failed its check: out of the line port's tables within $MIXLB_WAITED_MS ms"
	mixlb_wait_backends_of ":($MIXLB_HTTP_PORT/tcp|$MIXLB_UDP_PORT/udp)\$" mix1,mix2,mix3 1 "${MIXLB_NODES[@]}" || rc=1
	[ $rc = 0 ] && diag "its HTTP and UDP ports keep it"
	scenario_spread "$MIXLB_VIP" "" servicedown.spread "mix1 mix2 mix3" || rc=1
	nsenter --net="$ns" -- nft delete table inet mixlb_test_check || rc=1
	mixlb_wait_backends mix1,mix2,mix3 10 "${MIXLB_NODES[@]}" || return 1
	diag "the rule removed: $n serves the line port again within $MIXLB_WAITED_MS ms"
	return $rc
}

# n: a key rotation across the cluster at run time: generate a key, install
# it through mix1, use it through mix2, remove the old one through mix3; each
# step answered ok by all three, every node's keyring file rewritten to hold
# only the new key, no member lost and requests answered by all. Then mix3
# restarted with only the old key in its file cannot join (the others never
# see it alive); with the cluster's file back it rejoins.
keys_step() {
	local node=$1 out
	shift
	out=$(mixlb_ctl "$node" keys "$@" --json 2>&1) || { mixlb_fail "$node: mixlbctl keys $1: $out"; return 1; }
	KEYS_LINE=$(mixlb_json '"ok" if d["ok"] and len(d["members"]) == 3 else "not ok: " + json.dumps(d["members"])' <<<"$out")
	KEYS_MS=$(mixlb_json 'round(d["elapsed_s"] * 1000)' <<<"$out")
	[ "$KEYS_LINE" = ok ] || { mixlb_fail "keys $1 via $node: $KEYS_LINE"; return 1; }
}
scenario_keys() {
	local rc=0 new old n lines alive start
	old=$(grep -v '^#' "$MIXLB_TMP/keyring" | head -n 1)
	new=$(mixlb_ctl mix1 keys generate --json | mixlb_json 'd["key"]') || return 1
	keys_step mix1 install "$new" || return 1
	diag "keys install via mix1: ok on 3 of 3 in $KEYS_MS ms"
	keys_step mix2 use "$new" || return 1
	diag "keys use via mix2: ok on 3 of 3 in $KEYS_MS ms"
	keys_step mix3 remove "$old" || return 1
	diag "keys remove of the old key via mix3: ok on 3 of 3 in $KEYS_MS ms"
	for n in "${MIXLB_NODES[@]}"; do
		lines=$(grep -v '^#' "$(mixlb_keyring "$n")" | tr -d ' ' | grep -v '^$' | tr '\n' ' ')
		[ "$lines" = "$new " ] || { mixlb_fail "$n's keyring file holds '$lines', not only the new key"; rc=1; }
	done
	keys_step mix1 list || rc=1
	alive=$(mixlb_status_get mix1 'd["gossip"]["members_alive"]')
	[ "$alive" = 3 ] || { mixlb_fail "mix1 sees $alive members alive after the rotation"; rc=1; }
	scenario_spread "$MIXLB_VIP" "" keys.spread || rc=1
	[ $rc = 0 ] && diag "after the rotation: every keyring file holds only the new key, 3 members alive"
	# mix3 with only the old key
	mixlb_stop_sidecar mix3 10 || rc=1
	cp "$(mixlb_keyring mix3)" "$MIXLB_TMP/mix3.keyring.new"
	printf '%s\n' "$old" >"$(mixlb_keyring mix3)"
	mixlb_start_sidecar mix3 || return 1
	# mix3 was alive before its stop: mix1 declares it dead within the
	# suspicion bound, and must not see it alive again for 3 s while the new
	# sidecar tries to join with the old key.
	mix3_state() { mixlb_ctl mix1 members --json | mixlb_json '[m["state"] for m in d["members"] if m["name"] == "mix3"][0]'; }
	start=$(mixlb_now_ms)
	while [ "$(mix3_state)" = alive ] && [ $(($(mixlb_now_ms) - start)) -lt $(($(mixlb_suspicion_bound_s) * 1000)) ]; do
		sleep 0.2
	done
	n=$(mix3_state)
	[ "$n" != alive ] || { mixlb_fail "mix1 still sees mix3 alive $(mixlb_suspicion_bound_s) s after its restart with the old key"; rc=1; }
	start=$(mixlb_now_ms)
	while [ $rc = 0 ] && [ $(($(mixlb_now_ms) - start)) -lt 3000 ]; do
		n=$(mix3_state)
		[ "$n" != alive ] || { mixlb_fail "mix1 sees mix3 alive although mix3 holds only the removed key"; rc=1; }
		sleep 0.3
	done
	[ $rc = 0 ] && diag "mix3 restarted with only the old key: mix1 sees it $n, and it stays so for 3 s"
	mixlb_stop_sidecar mix3 10 || rc=1
	mv "$MIXLB_TMP/mix3.keyring.new" "$(mixlb_keyring mix3)"
	mixlb_start_sidecar mix3 || return 1
	mixlb_wait_ready mix3 || return 1
	mixlb_wait_backends mix1,mix2,mix3 10 "${MIXLB_NODES[@]}" || return 1
	diag "mix3 with the new key: back in every node's tables within $MIXLB_WAITED_MS ms"
	return $rc
}

# m: SIGKILL of mix2's sidecar: its XDP program stays (pinned link) and its
# app keeps serving, but gossip hears nothing from it; mix1 and mix3 declare
# it dead and drop it. A new sidecar adopts the pins and rejoins.
scenario_sigkill() {
	local n=mix2 rc=0 limit
	limit=$(mixlb_suspicion_bound_s)
	kill -KILL "${MIXLB_SIDECAR_PID[$n]}"
	wait "${MIXLB_SIDECAR_PID[$n]}" 2>/dev/null
	unset "MIXLB_SIDECAR_PID[$n]"
	mixlb_wait_backends mix1,mix3 "$limit" mix1 mix3 || return 1
	diag "$n's sidecar SIGKILLed: mix1 and mix3 dropped it within $MIXLB_WAITED_MS ms (bound ${limit} s)"
	local states
	states=$(mixlb_ctl mix1 members --json | mixlb_json '[m["name"] + "=" + m["state"] for m in d["members"]]')
	diag "mix1 sees: $states"
	[[ " $states " == *" $n=dead "* ]] || { mixlb_fail "mix1 does not hold $n dead"; rc=1; }
	scenario_spread "$MIXLB_VIP" "" sigkill.spread || rc=1

	# The new sidecar knows no peer address: its only seed is a name, which
	# its resolver (a hosts file of its own) maps to mix1 and mix3.
	local hosts=$MIXLB_TMP/hosts.$n name=peers.mixlb.test
	printf '127.0.0.1 localhost\n%s %s\n%s %s\n' "$(mixlb_addr mix1)" "$name" "$(mixlb_addr mix3)" "$name" >"$hosts"
	MIXLB_SEED_NAME[$n]=$name
	MIXLB_SEED_HOSTS[$n]=$hosts
	mixlb_start_sidecar "$n" || return 1
	mixlb_wait_ready "$n" || return 1
	mixlb_wait_backends mix1,mix2,mix3 10 "${MIXLB_NODES[@]}" || return 1
	diag "restarted $n's sidecar, seeded by the name $name: back in every node's backends"
	grep -q "adopted pinned maps" "$(mixlb_sidecar_log "$n")" || { mixlb_fail "the new sidecar did not adopt the pinned maps"; rc=1; }
	local resolved
	resolved=$(grep -o "seed $name:[0-9]* resolves to .*" "$(mixlb_sidecar_log "$n")" | head -n 1)
	diag "$n's log: ${resolved:-nothing about $name}"
	[[ "$resolved" == *"$(mixlb_addr mix1):"* && "$resolved" == *"$(mixlb_addr mix3):"* ]] ||
		{ mixlb_fail "$n did not resolve $name to mix1 and mix3"; rc=1; }
	! grep -q 'name = "mix[13]"' "$(mixlb_config_path "$n")" || { mixlb_fail "$n's config still names its peers"; rc=1; }
	return $rc
}

# d (part 1): `mixlbctl leave` of mix3: the sidecar drains, leaves, waits
# until the node is quiet, removes everything it added and exits.
scenario_stop() {
	local n=mix3 rc=0 other out pid start
	fixed_port_requests "$MIXLB_TMP/ports.before" "${fixed_ports[@]}" || return 1

	pid=${MIXLB_SIDECAR_PID[$n]}
	start=$(mixlb_now_ms)
	out=$(mixlb_ctl "$n" leave 2>&1) || { mixlb_fail "mixlbctl leave: $out"; return 1; }
	diag "mixlbctl leave: $out"
	local i
	for ((i = 0; i < 200; i++)); do
		mixlb_alive "$pid" || break
		sleep 0.05
	done
	if mixlb_alive "$pid"; then
		mixlb_fail "$n's sidecar did not exit within 10 s of the leave"
		mixlb_log_file "$(mixlb_sidecar_log "$n")" 20
		return 1
	fi
	wait "$pid"
	local status=$?
	unset "MIXLB_SIDECAR_PID[$n]"
	diag "$n's sidecar exited with status $status, $(($(mixlb_now_ms) - start)) ms after mixlbctl leave"
	[ "$status" -eq 0 ] || { mixlb_fail "exit status $status"; rc=1; }

	# Nothing left behind (mixlb_check_removed logs each leftover).
	mixlb_check_removed "$n" || rc=1
	[ ! -e "$(mixlb_socket "$n")" ] || diag "note: the admin socket file $(mixlb_socket "$n") is left behind"
	[ $rc -eq 0 ] || mixlb_log_file "$(mixlb_sidecar_log "$n")" 20

	# As BGP would: the router stops sending to the stopped node.
	mixlb_route_via mix1 mix2 || rc=1
	# Its leave reached the others, which moved its share to themselves (its
	# established flows, were there any, would stay for the flow grace).
	mixlb_wait_backends mix1,mix2 5 mix1 mix2 || rc=1
	[ -n "$MIXLB_WAITED_MS" ] && diag "mix1 and mix2 dropped $n within $MIXLB_WAITED_MS ms of its exit"
	for other in mix1 mix2; do
		mixlb_alive "${MIXLB_SIDECAR_PID[$other]}" || { mixlb_fail "$other's sidecar is gone"; rc=1; continue; }
		[ "$(mixlb_status_get "$other" 'd["node"]')" = "$other" ] ||
			{ mixlb_fail "$other does not answer status"; rc=1; }
	done
	return $rc
}

# d (part 2): with mix3 gone, flows of mix1 and mix2 keep their node.
scenario_consistency() {
	local before=$MIXLB_TMP/ports.before after=$MIXLB_TMP/ports.after
	[ -s "$before" ] || { mixlb_fail "no requests were recorded before the stop"; return; }
	fixed_port_requests "$after" "${fixed_ports[@]}" || return 1
	local -A was=() now=() count=()
	local p node kept=0 moved=0 lost=0 lost3=0 moved3=0 still3=0 failed_before=0
	while read -r p node; do was[$p]=$node; count[$node]=$((${count[$node]:-0} + 1)); done <"$before"
	while read -r p node; do now[$p]=$node; done <"$after"
	diag "before the stop, ${#fixed_ports[@]} fixed source ports: mix1=${count[mix1]:-0}" \
		"mix2=${count[mix2]:-0} mix3=${count[mix3]:-0} failed=${count[-]:-0}"
	for p in "${fixed_ports[@]}"; do
		case ${was[$p]} in
		-) failed_before=$((failed_before + 1)) ;;
		mix3)
			case ${now[$p]} in
			-) lost3=$((lost3 + 1)) ;;
			mix3) still3=$((still3 + 1)) ;;
			*) moved3=$((moved3 + 1)) ;;
			esac
			;;
		*)
			if [ "${now[$p]}" = "${was[$p]}" ]; then
				kept=$((kept + 1))
			elif [ "${now[$p]}" = - ]; then
				lost=$((lost + 1))
				[ $lost -le 5 ] && diag "port $p: served by ${was[$p]} before, failed after:" \
					"$(grep "^port $p: " "$after.err")"
			else
				moved=$((moved + 1))
				[ $moved -le 5 ] && diag "port $p: served by ${was[$p]} before, ${now[$p]} after"
			fi
			;;
		esac
	done
	diag "after the stop: $kept mix1/mix2 flows kept their node, $moved moved, $lost failed;" \
		"mix3's $((lost3 + moved3 + still3)) flows: $lost3 failed, $moved3 answered by another" \
		"node, $still3 still by mix3"
	# mix3 has no sidecar and no VIP any more: nothing may still answer as mix3.
	[ $still3 -eq 0 ] || { mixlb_fail "$still3 requests were still served by the stopped mix3"; return; }
	[ $lost3 -eq 0 ] || { mixlb_log_file "$after.err" 5; mixlb_fail "$lost3 of mix3's flows failed"; return; }
	if [ $failed_before -ne 0 ]; then
		mixlb_log_file "$before.err" 10
		mixlb_fail "$failed_before requests failed before the stop"
		return
	fi
	if [ "${count[mix1]:-0}" -eq 0 ] || [ "${count[mix2]:-0}" -eq 0 ]; then
		mixlb_fail "mix1 or mix2 served none of the fixed ports before the stop"
		return
	fi
	if [ $moved -ne 0 ] || [ $lost -ne 0 ]; then
		mixlb_fail "mix1/mix2 flows did not keep their node"
	fi
}

# ---------------------------------------------------------------- main

start_ms=$(mixlb_now_ms)
# For tools/run_tests.py: the cases a skip ("1..0 # SKIP ...") stands for.
mixlb_tap_start "$plan" "${1:-}" || exit "$MIXLB_TAP_EXIT"

fixed_ports=()
for ((p = 20001; p <= 20060; p++)); do fixed_ports+=("$p"); done
udp_ports=()
for ((p = 21001; p <= 21060; p++)); do udp_ports+=("$p"); done

mixlb_tap_up scenario_up
scenario_spread "$MIXLB_VIP"
mixlb_tap $? "a: 300 requests to the VIP all answered, by every node"
scenario_counters
mixlb_tap $? "c: counters: local on every node, forwarded across nodes, no drops; mixlbctl ct finds the flows; closes tracked"
scenario_shuffle "$MIXLB_VIP:$MIXLB_LINE_PORT" "$MIXLB_VIP:$MIXLB_LINE_PORT/tcp" shuffle4
mixlb_tap $? "b: a connection survives ECMP moving its ingress, and was forwarded"
scenario_spread "[$MIXLB_VIP6]" "[$MIXLB_VIP6]:$MIXLB_HTTP_PORT/tcp" spread6
mixlb_tap $? "f: 300 requests to the IPv6 VIP all answered, by every node, forwarded by peers"
scenario_udp "$MIXLB_VIP:$MIXLB_UDP_PORT" "$MIXLB_VIP:$MIXLB_UDP_PORT/udp" udp4
mixlb_tap $? "g: UDP: each socket answered by one node from the VIP, all nodes answer, forwarded"
scenario_udp "[$MIXLB_VIP6]:$MIXLB_UDP_PORT" "[$MIXLB_VIP6]:$MIXLB_UDP_PORT/udp" udp6
mixlb_tap $? "h: IPv6 UDP: each socket answered by one node from the VIP, all nodes answer, forwarded"
scenario_sweep
mixlb_tap $? "s: the sweeper removes the UDP flows of g and h once idle (udp_idle_ms), on every node"
scenario_invalidation
mixlb_tap $? "v: invalidation by multicast, broadcast, gossip and targeted: no entry of 10 000 short connections left on any node; replayed and forged invalidations refused"
scenario_shuffle "[$MIXLB_VIP6]:$MIXLB_LINE_PORT" "[$MIXLB_VIP6]:$MIXLB_LINE_PORT/tcp" shuffle6
mixlb_tap $? "i: an IPv6 connection survives ECMP moving its ingress, and was forwarded"
scenario_members
mixlb_tap $? "j: every node lists the 3 members alive, healthy, in its tables, with 6 VIP ports"
scenario_drain
mixlb_tap $? "k: drain: new flows avoid mix2 everywhere, its established connections keep working; undrain"
scenario_app_down
mixlb_tap $? "l: mix1's app dies: every node drops mix1, requests keep succeeding; it returns with its app"
scenario_service_down
mixlb_tap $? "l2: one failing service (mix1's line port) takes mix1 out of that port only; it returns"
scenario_keys
mixlb_tap $? "n: key rotation on 3 nodes at run time (install, use, remove); keyring files rewritten; a node with only the old key cannot join"
scenario_sigkill
mixlb_tap $? "m: SIGKILL of mix2's sidecar: mix1/mix3 drop it once it is dead, requests succeed; it rejoins through a seed name"
scenario_bad_admin
mixlb_tap $? "e: malformed admin requests get ok:false, the daemon keeps serving"
scenario_stop
mixlb_tap $? "d: mixlbctl leave of mix3: it leaves, cleans up and exits; the others keep running"
scenario_consistency
mixlb_tap $? "d: after mix3 stops, its flows move to mix1/mix2, theirs keep their node"

mixlb_tap_end "$start_ms"
