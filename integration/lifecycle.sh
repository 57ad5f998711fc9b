#!/usr/bin/env bash
# mixlb's life-cycle integration test (meson test, protocol TAP).
#
#   integration/lifecycle.sh BUILD_DIR
#
# On the topology of integration/lib.sh (a client, an ECMP router, three mix
# nodes each running the app and the real sidecar), with real clients, checks
# what happens to the traffic when a sidecar stops, crashes, is started twice,
# fails to start, is cleaned up or leaves:
#   1. SIGTERM and an immediate start of mix1's sidecar: it exits 0 leaving
#      its data path, the new one adopts it; no request fails, no held
#      connection breaks;
#   2. SIGKILL of mix2's sidecar, the others declare it dead, a new sidecar
#      within 10 s: no request fails, no held connection breaks (the peers
#      keep forwarding its established flows);
#   3. a second sidecar for mix3 is refused (naming the running pid) and
#      changes nothing; the first one keeps balancing and answering;
#   4. mix1's sidecar is SIGKILLed, then two starts fail late (a keyring
#      readable by others; the gossip port taken): each exits 1 and leaves
#      the crashed sidecar's data path running (XDP on, counters growing,
#      the connection table untouched); a proper start adopts it and no held
#      connection ever broke;
#   5. `mixlb cleanup` is refused while mix3's sidecar runs; after a SIGTERM
#      (restart) stop it removes everything the sidecar added;
#   6. `mixlbctl leave` of mix2: every node stops sending it new flows within
#      the suspicion timeout, its established connections work until the
#      client closes them, then it exits 0 leaving nothing behind.
# Each scenario starts from a running three-node cluster and leaves one.
#
# The load: `mixlb-testnode hold-many` holds 36 connections to the VIP's line
# port (a line each every 200 ms) and `mixlb-testnode load` opens new HTTP
# connections to the VIP all the time, both from the client. The router's
# ECMP hash of a connection comes from the client socket's own flow hash,
# which the veth carries across namespaces, not from the 5-tuple: `ip route
# get ... sport P` does not predict the ingress node. So each held
# connection's ingress is found where the data path put it: the one node
# whose connection table has its 5-tuple, freshly refreshed.
# Prints "1..0 # SKIP reason" when the machine lacks root, bpftool or a
# kernel feature.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=clients.sh
source "$here/clients.sh"

plan=9

diag() { mixlb_log "$@"; }
fail() { mixlb_fail "$@"; }
now_ms() { mixlb_now_ms; }

# ---------------------------------------------------------------- sidecar state

# xdp_watch_start NODE: samples the program on NODE's uplink every 50 ms
# until xdp_watch_stop, to show it never went away during a restart.
xdp_watch_start() {
	local ns ifname
	ns=$(mixlb_ns "$1")
	ifname=$(mixlb_if "$1")
	(
		while :; do
			ip -n "$ns" link show dev "$ifname" | awk '$1 == "prog/xdp" { id = $3 } END { print id == "" ? "-" : id }'
			sleep 0.05
		done
	) >"$MIXLB_TMP/xdp.watch" 2>&1 &
	XDP_WATCH_PID=$!
	MIXLB_OTHER_PIDS+=("$XDP_WATCH_PID")
}

# xdp_watch_stop: "N samples, K without a program, ids: ..."; fails on a gap.
xdp_watch_stop() {
	kill "$XDP_WATCH_PID" 2>/dev/null
	wait "$XDP_WATCH_PID" 2>/dev/null
	local samples gaps ids
	samples=$(wc -l <"$MIXLB_TMP/xdp.watch")
	gaps=$(grep -c '^-$' "$MIXLB_TMP/xdp.watch")
	ids=$(grep -v '^-$' "$MIXLB_TMP/xdp.watch" | uniq | tr '\n' ' ')
	diag "the uplink's XDP program, sampled every 50 ms: $samples samples, $gaps without a program (program ids: ${ids% })"
	[ "$samples" -gt 0 ] || { fail "the XDP watch took no sample"; return; }
	[ "$gaps" -eq 0 ] || fail "the uplink was without an XDP program in $gaps samples"
}

# log_mark NODE: the current size of NODE's sidecar log (log_since reads on from it).
log_mark() { stat -c %s "$(mixlb_sidecar_log "$1")" 2>/dev/null || echo 0; }
log_since() { tail -c +$(($2 + 1)) "$(mixlb_sidecar_log "$1")"; }
# log_has NODE MARK REGEX: NODE's log after MARK matches REGEX (case-insensitive;
# not a pipe into grep -q, whose early exit fails the pipe under pipefail).
log_has() { grep -qiE "$3" < <(log_since "$1" "$2"); }

# restart_adopting NODE LINK: starts NODE's sidecar where a stopped or
# crashed one left its data path, waits until it is ready and every node's
# backends list all three again (RESTART_READY and RESTART_BACK: epoch ms),
# and checks that it adopted the pinned maps and kept the XDP link LINK (its
# log, its status and the link's id say so).
restart_adopting() {
	local n=$1 link=$2 mark rc=0 flags
	mark=$(log_mark "$n")
	mixlb_start_sidecar "$n" || return 1
	mixlb_wait_ready "$n" || rc=1
	RESTART_READY=$(now_ms)
	mixlb_wait_backends mix1,mix2,mix3 10 "${MIXLB_NODES[@]}" || rc=1
	RESTART_BACK=$(now_ms)
	log_has "$n" "$mark" "adopted pinned maps" || { fail "$n's new sidecar did not log 'adopted pinned maps'"; rc=1; }
	log_has "$n" "$mark" "adopted the pinned XDP link" ||
		{ fail "$n's new sidecar did not log 'adopted the pinned XDP link'"; rc=1; }
	flags=$(mixlb_status_get "$n" '(d["instance"]["adopted_maps"], d["instance"]["adopted_link"])') || return 1
	[ "$flags" = "True True" ] || { fail "$n's status says adopted_maps, adopted_link = $flags"; rc=1; }
	[ "$(mixlb_xdp_link_id "$n")" = "$link" ] || { fail "the new sidecar did not keep the XDP link $link"; rc=1; }
	return $rc
}

# table_changes NODE MARK T0_MS: every change of the backends of the VIP
# 10.100.0.1:80/tcp that NODE's log reports after MARK, "+MS a,b,c" (MS after T0).
table_changes() {
	local stamp rest
	log_since "$1" "$2" | grep -F " $MIXLB_VIP:$MIXLB_HTTP_PORT/tcp: backends " |
		while read -r stamp _ _ _ _ rest; do
			echo "+$(($(date -d "${stamp/T/ }" +%s%3N) - $3))ms:${rest// /}"
		done
}

# left_in_place NODE: a restart stop left NODE's data path and host settings
# for the next sidecar: the XDP program, the pins, the VIPs on lo, the managed
# neighbour entries and the host record.
left_in_place() {
	local n=$1 rc=0 vip neigh
	[ -n "$(mixlb_xdp_prog_id "$n")" ] || { fail "no XDP program on $n's uplink"; rc=1; }
	if [ ! -e "$MIXLB_BPFFS/$n/xdp_link" ] || [ ! -e "$MIXLB_BPFFS/$n/mixlb_ct" ]; then
		fail "$n's pins are gone: $(find "$MIXLB_BPFFS/$n" -mindepth 1 -printf '%f ' 2>&1)"
		rc=1
	fi
	for vip in "$MIXLB_VIP" "$MIXLB_VIP6"; do
		mixlb_on_lo "$n" "$vip" || { fail "the VIP $vip left $n's lo"; rc=1; }
	done
	neigh=$(ip -n "$(mixlb_ns "$n")" neigh show)
	grep -qw managed <<<"$neigh" || { fail "no managed neighbour entry is left on $n"; rc=1; }
	[ -e "$MIXLB_RUN_DIR/$n.host.json" ] || { fail "$n's host record is gone"; rc=1; }
	[ $rc -ne 0 ] || diag "left in place for the next sidecar: the XDP program, $(find "$MIXLB_BPFFS/$n" -mindepth 1 | wc -l) pins, the VIPs on lo, the managed neighbours, the host record"
	return $rc
}

# status_vip_pkts NODE: VIP packets seen by NODE (served, forwarded, received), from status.
status_vip_pkts() {
	mixlb_status_get "$1" "vipsum('local_pkts') + vipsum('fwd_pkts') + vipsum('from_peer_pkts')"
}

# wait_exit PID TIMEOUT_S: waits until PID (a child) exits; sets EXIT_RC and
# EXIT_MS, or returns 1 if it still runs.
wait_exit() {
	local pid=$1 start
	start=$(now_ms)
	EXIT_RC=""
	EXIT_MS=""
	while mixlb_alive "$pid" && [ $(($(now_ms) - start)) -lt $(($2 * 1000)) ]; do
		sleep 0.05
	done
	mixlb_alive "$pid" && return 1
	wait "$pid"
	EXIT_RC=$?
	EXIT_MS=$(($(now_ms) - start))
}

# ensure_cluster: every node's app and sidecar running, the router's route
# over all three, every sidecar ready with all three backends. Starts what
# is missing (a sidecar adopts what a stopped one left).
ensure_cluster() {
	local n rc=0
	for n in "${MIXLB_NODES[@]}"; do
		[ -e "$(mixlb_keyring "$n")" ] && chmod 0600 "$(mixlb_keyring "$n")"
		mixlb_alive "${MIXLB_SERVER_PID[$n]:-0}" || mixlb_start_server "$n" || rc=1
		if ! mixlb_alive "${MIXLB_SIDECAR_PID[$n]:-0}"; then
			diag "starting $n's sidecar again"
			mixlb_start_sidecar "$n" || rc=1
		fi
	done
	mixlb_route_via "${MIXLB_NODES[@]}" || rc=1
	for n in "${MIXLB_NODES[@]}"; do
		mixlb_wait_ready "$n" || rc=1
	done
	return $rc
}

# ---------------------------------------------------------------- scenarios

scenario_up() {
	local start n mode modes=""
	start=$(now_ms)
	mixlb_cluster_up || return 1
	for n in "${MIXLB_NODES[@]}"; do
		mode=$(mixlb_status_get "$n" 'd["xdp_mode"] + "/" + d["uplink"] + "/" + d["phase"] + "/" + d["instance"]["on_stop"]') ||
			return 1
		modes+="$n=$mode "
	done
	diag "cluster up in $(($(now_ms) - start)) ms (run prefix $MIXLB_P); xdp mode/uplink/phase/on_stop: $modes"
}

# 1: SIGTERM of mix1's sidecar (a restart stop) and an immediate start.
scenario_sigterm() {
	local n=mix1 rc=0 link pid t0 peer changes i
	local peer_marks=()
	clients_start s1 "$n" || return 1
	[ "$HELD_VIA" -gt 0 ] || { fail "no held connection served by $n enters through a peer: not put to the test"; rc=1; }
	link=$(mixlb_xdp_link_id "$n")
	pid=${MIXLB_SIDECAR_PID[$n]}
	peer_marks=("$(log_mark mix2)" "$(log_mark mix3)")
	xdp_watch_start "$n"
	t0=$(now_ms)
	if ! mixlb_stop_sidecar "$n" 10; then
		fail "$n's sidecar did not exit within 10 s of SIGTERM (killed)"
		rc=1
	else
		diag "$n's sidecar (pid $pid) exited with status $MIXLB_STOP_RC, $MIXLB_STOP_MS ms after SIGTERM"
		[ "$MIXLB_STOP_RC" -eq 0 ] || { fail "exit status $MIXLB_STOP_RC"; rc=1; }
	fi
	if [ -z "$link" ] || [ "$(mixlb_xdp_link_id "$n")" != "$link" ]; then
		fail "the pinned XDP link (id '$link' before) is '$(mixlb_xdp_link_id "$n")' after the stop"
		rc=1
	fi
	left_in_place "$n" || rc=1
	restart_adopting "$n" "$link" || rc=1
	diag "SIGTERM to ready: $((RESTART_READY - t0)) ms; to every node's backends listing all three: $((RESTART_BACK - t0)) ms"
	sleep 1
	xdp_watch_stop || rc=1
	# The stopping sidecar published "restarting": the peers took it out of
	# their tables for new flows, and back when the new one had joined.
	i=0
	for peer in mix2 mix3; do
		changes=$(table_changes "$peer" "${peer_marks[$i]}" "$t0" | tr '\n' ' ')
		i=$((i + 1))
		diag "$peer's backends for $MIXLB_VIP:$MIXLB_HTTP_PORT/tcp after the SIGTERM (at +0ms): ${changes:-no change}"
		[[ " $changes" == *:mix2,mix3" "* ]] || { fail "$peer never took $n out of its tables for new flows"; rc=1; }
		! log_has "$peer" "${peer_marks[$((i - 1))]}" "member $n .* is left" || { fail "$peer heard $n leave: a restart stop announced a leave"; rc=1; }
	done
	clients_stop s1 || rc=1
	diag "started between the SIGTERM and the end of the restart: $(load_window s1 "$t0" "$RESTART_BACK" "$n")"
	diag "figures: SIGTERM + start of $n: $LOAD_TOTAL requests, $LOAD_FAILED failed; $HOLD_COUNT held" \
		"($HELD_VIA on $n through a peer), $HELD_BROKEN broken"
	return $rc
}

# 2: SIGKILL of mix2's sidecar; the others declare it dead; a new sidecar
# within 10 s of the kill.
scenario_sigkill() {
	local n=mix2 rc=0 link t0 t_dead t_start bound via_peers
	local peer_marks=()
	bound=$(mixlb_suspicion_bound_s)
	[ "$bound" -le 9 ] || bound=9
	clients_start s2 "$n" || return 1
	via_peers=$HELD_VIA
	[ "$via_peers" -gt 0 ] || { fail "no held connection served by $n enters through a peer: the flow grace is not put to the test"; rc=1; }
	link=$(mixlb_xdp_link_id "$n")
	peer_marks=("$(log_mark mix1)" "$(log_mark mix3)")
	xdp_watch_start "$n"
	t0=$(now_ms)
	kill -KILL "${MIXLB_SIDECAR_PID[$n]}"
	wait "${MIXLB_SIDECAR_PID[$n]}" 2>/dev/null
	unset "MIXLB_SIDECAR_PID[$n]"
	if mixlb_wait_backends mix1,mix3 "$bound" mix1 mix3; then
		t_dead=$(($(now_ms) - t0))
		diag "mix1 and mix3 took $n out of their tables $t_dead ms after the SIGKILL (bound $bound s);" \
			"mix1 sees: $(mixlb_ctl mix1 members --json | mixlb_json '[m["name"] + "=" + m["state"] for m in d["members"]]')"
	else
		rc=1
	fi
	diag "the peers' tables for $MIXLB_VIP:$MIXLB_HTTP_PORT/tcp after the SIGKILL, by their logs:" \
		"mix1 $(table_changes mix1 "${peer_marks[0]}" "$t0" | head -n 1), mix3 $(table_changes mix3 "${peer_marks[1]}" "$t0" | head -n 1)"
	sleep 0.5 # a moment with mix2 out of the peers' tables, its flows on their grace
	t_start=$(($(now_ms) - t0))
	[ $t_start -le 10000 ] || { fail "the new sidecar starts $t_start ms after the kill, over 10 s"; rc=1; }
	restart_adopting "$n" "$link" || rc=1
	diag "SIGKILL at 0 ms, new sidecar started at $t_start ms, ready at $((RESTART_READY - t0)) ms," \
		"every node's backends list all three at $((RESTART_BACK - t0)) ms"
	sleep 1
	xdp_watch_stop || rc=1
	clients_stop s2 || rc=1
	diag "started while $n had no sidecar: $(load_window s2 "$t0" "$((t0 + t_start))" "$n");" \
		"between its start and the end of the restart: $(load_window s2 "$((t0 + t_start))" "$RESTART_BACK" "$n")"
	diag "figures: SIGKILL + start of $n within ${t_start} ms: $LOAD_TOTAL requests, $LOAD_FAILED failed;" \
		"$HOLD_COUNT held ($via_peers on $n through a peer), $HELD_BROKEN broken"
	return $rc
}

# instance_state NODE: what a refused second sidecar or a refused cleanup must
# not touch, one "what value" a line.
instance_state() {
	local n=$1
	echo "xdp_link $(mixlb_xdp_link_id "$n")"
	echo "xdp_prog $(mixlb_xdp_prog_id "$n")"
	echo "lock $(cat "$MIXLB_RUN_DIR/$n.lock" 2>&1)"
	echo "host_record $(md5sum <"$MIXLB_RUN_DIR/$n.host.json" 2>&1 | cut -c1-12)"
	echo "admin_socket_inode $(stat -c %i "$(mixlb_socket "$n")" 2>&1)"
	echo "pins $(find "$MIXLB_BPFFS/$n" -mindepth 1 -printf '%f ' 2>&1 | wc -w)"
	echo "vips_on_lo $(mixlb_on_lo "$n" "$MIXLB_VIP" && echo "$MIXLB_VIP") $(mixlb_on_lo "$n" "$MIXLB_VIP6" && echo "$MIXLB_VIP6")"
}

# 3: a second sidecar for mix3, with the first one running.
scenario_second() {
	local n=mix3 rc=0 pid second out=$MIXLB_TMP/s3.second.log before after
	pid=${MIXLB_SIDECAR_PID[$n]}
	instance_state "$n" >"$MIXLB_TMP/s3.state.0"
	before=$(status_vip_pkts "$n") || return 1
	nsenter --net="$(mixlb_netns "$n")" -- "$MIXLB_SIDECAR" --config "$(mixlb_config_path "$n")" >"$out" 2>&1 &
	second=$!
	MIXLB_OTHER_PIDS+=("$second")
	if ! wait_exit "$second" 10; then
		fail "the second sidecar for $n still runs 10 s after its start"
		kill -KILL "$second" 2>/dev/null
		wait "$second" 2>/dev/null
		mixlb_log_file "$out" 20
		return 1
	fi
	diag "a second sidecar for $n exited with status $EXIT_RC after $EXIT_MS ms: $(grep -m1 'start-up failed' "$out")"
	[ "$EXIT_RC" -eq 1 ] || { fail "exit status $EXIT_RC, not 1"; rc=1; }
	grep -qF "another mixlb for node $n is running (pid $pid;" "$out" ||
		{ fail "its message does not name the running sidecar's pid $pid:"; mixlb_log_file "$out" 10; rc=1; }
	instance_state "$n" >"$MIXLB_TMP/s3.state.1"
	if diff -u "$MIXLB_TMP/s3.state.0" "$MIXLB_TMP/s3.state.1" >"$MIXLB_TMP/s3.state.diff"; then
		diag "unchanged by it: $(tr '\n' ';' <"$MIXLB_TMP/s3.state.1")"
	else
		fail "the refused start changed the node:"
		mixlb_log_file "$MIXLB_TMP/s3.state.diff"
		rc=1
	fi
	mixlb_alive "$pid" || { fail "the first sidecar (pid $pid) is gone"; return 1; }
	[ "$(mixlb_status_get "$n" 'd["instance"]["pid"]')" = "$pid" ] || { fail "status does not answer with pid $pid"; rc=1; }
	load_start s3
	sleep 2
	load_stop s3 || rc=1
	after=$(status_vip_pkts "$n") || return 1
	diag "figures: second instance refused (exit $EXIT_RC); the first one's VIP packets $before -> $after while $LOAD_TOTAL requests ($LOAD_FAILED failed) ran"
	[ "$after" -gt "$before" ] || { fail "the first sidecar's VIP counters did not grow"; rc=1; }
	return $rc
}

# 4: mix1's sidecar crashes (SIGKILL); two starts fail late; a proper start
# adopts the data path. No new flows meanwhile (only the held connections,
# which enter through and are served by every node), so the connection
# table's entry count must stay exactly as the crash left it.
scenario_failed_start() {
	local n=mix1 rc=0 link ct pkts pkts_status holder t0 i port_out=$MIXLB_TMP/s4.port
	holds_start s4 || return 1
	sleep 0.5
	holds_on s4 "$n"
	[ "$HELD_IN" -gt 0 ] || { fail "no held connection enters through $n: its data path is not put to the test"; rc=1; }
	link=$(mixlb_xdp_link_id "$n")
	# The pinned-map reader agrees with status before the crash.
	pkts_status=$(status_vip_pkts "$n") || return 1
	pkts=$(mixlb_pinned_vip_pkts "$n") || { fail "cannot read $n's pinned VIP counters"; return 1; }
	diag "$n's VIP packets: $pkts_status by status, then $pkts in the pinned map"
	if [ "$pkts_status" -le 0 ] || [ "$pkts" -lt "$pkts_status" ]; then
		fail "the pinned counters ($pkts) disagree with status ($pkts_status)"
		rc=1
	fi
	xdp_watch_start "$n"
	t0=$(now_ms)
	kill -KILL "${MIXLB_SIDECAR_PID[$n]}"
	wait "${MIXLB_SIDECAR_PID[$n]}" 2>/dev/null
	unset "MIXLB_SIDECAR_PID[$n]"
	ct=$(mixlb_ct_flows "$n" | wc -l)
	pkts=$(mixlb_pinned_vip_pkts "$n")
	diag "crashed: XDP link $link, $ct connection-table entries, $pkts VIP packets"

	# Two helpers of this scenario, on its n, link, ct and pkts.
	# datapath_intact WHAT: after a failed start, the crashed sidecar's data
	# path runs on: the same link, the program on the uplink, the VIP counters
	# growing (the held connections), the connection table as it was.
	datapath_intact() {
		local what=$1 ok=0 l c p
		sleep 1
		l=$(mixlb_xdp_link_id "$n")
		c=$(mixlb_ct_flows "$n" | wc -l)
		p=$(mixlb_pinned_vip_pkts "$n")
		diag "after the $what: XDP link ${l:-none} (program $(mixlb_xdp_prog_id "$n")), $c connection-table entries, VIP packets $pkts -> $p"
		[ "$l" = "$link" ] || { fail "the XDP link is '${l:-gone}', not $link"; ok=1; }
		[ -n "$(mixlb_xdp_prog_id "$n")" ] || { fail "no XDP program on the uplink"; ok=1; }
		[ "$c" -eq "$ct" ] || { fail "the connection table has $c entries, not $ct"; ok=1; }
		[ "${p:-0}" -gt "$pkts" ] || { fail "the pinned VIP counters did not grow"; ok=1; }
		mixlb_on_lo "$n" "$MIXLB_VIP" || { fail "the VIP $MIXLB_VIP left lo"; ok=1; }
		[ -e "$MIXLB_RUN_DIR/$n.host.json" ] || { fail "the host record is gone"; ok=1; }
		pkts=$p
		return $ok
	}
	# failed_start WHAT PATTERN: a start that must exit 1, saying PATTERN.
	failed_start() {
		local what=$1 pattern=$2 m
		m=$(log_mark "$n")
		mixlb_start_sidecar "$n" || return 1
		if ! wait_exit "${MIXLB_SIDECAR_PID[$n]}" 10; then
			fail "the sidecar started with $what still runs after 10 s; its log:"
			log_since "$n" "$m" >"$MIXLB_TMP/s4.tail"
			mixlb_log_file "$MIXLB_TMP/s4.tail" 20
			return 1
		fi
		unset "MIXLB_SIDECAR_PID[$n]"
		diag "a start with $what exited with status $EXIT_RC after $EXIT_MS ms: $(log_since "$n" "$m" | grep -m1 -i 'fail\|error')"
		[ "$EXIT_RC" -eq 1 ] || { fail "exit status $EXIT_RC, not 1"; return 1; }
		if ! log_has "$n" "$m" "$pattern"; then
			fail "its log does not mention /$pattern/:"
			log_since "$n" "$m" >"$MIXLB_TMP/s4.tail"
			mixlb_log_file "$MIXLB_TMP/s4.tail" 10
			return 1
		fi
	}

	chmod 0644 "$(mixlb_keyring "$n")"
	failed_start "the keyring readable by others (0644)" 'keyring' || rc=1
	chmod 0600 "$(mixlb_keyring "$n")"
	datapath_intact "keyring failure" || rc=1

	# The gossip port on the node's address, taken: UDP without SO_REUSEADDR
	# (so no socket can share it) and a TCP listener.
	nsenter --net="$(mixlb_netns "$n")" -- "$MIXLB_PYTHON" -c '
import socket, sys, time
addr = (sys.argv[1], 7946)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(addr)
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAITs of the dead sidecar
t.bind(addr)
t.listen(1)
print("bound", flush=True)
time.sleep(300)' "$(mixlb_addr "$n")" >"$port_out" 2>&1 &
	holder=$!
	MIXLB_OTHER_PIDS+=("$holder")
	for ((i = 0; i < 50; i++)); do
		grep -qs bound "$port_out" && break
		mixlb_alive "$holder" || break
		sleep 0.1
	done
	if grep -qs bound "$port_out"; then
		failed_start "UDP and TCP $(mixlb_addr "$n"):7946 taken" '7946|in use' || rc=1
	else
		fail "cannot take the gossip port myself:"
		mixlb_log_file "$port_out"
		rc=1
	fi
	kill "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
	datapath_intact "gossip port failure" || rc=1

	restart_adopting "$n" "$link" || rc=1
	diag "a proper start $(($(now_ms) - t0)) ms after the crash: ready, in every node's backends, adopting the data path"
	sleep 0.5
	xdp_watch_stop || rc=1
	holds_stop s4 || rc=1
	diag "figures: crash, 2 failed starts, proper start of $n: $ct connection-table entries unchanged," \
		"$HOLD_COUNT held, $HELD_BROKEN broken"
	return $rc
}

# cleanup_node NODE: `mixlb cleanup` of NODE, in its namespace.
cleanup_node() {
	mixlb_in "$1" "$MIXLB_SIDECAR" cleanup --name "$1" --run-dir "$MIXLB_RUN_DIR" --bpffs-dir "$MIXLB_BPFFS"
}

# 5: `mixlb cleanup` refused while mix3's sidecar runs; after a restart stop
# (SIGTERM) it removes everything.
scenario_cleanup() {
	local n=mix3 rc=0 out st
	instance_state "$n" >"$MIXLB_TMP/s5.state.0"
	out=$(cleanup_node "$n" 2>&1)
	st=$?
	diag "cleanup with the sidecar running: exit $st: $(head -n 2 <<<"$out")"
	[ $st -eq 2 ] || { fail "exit status $st, not 2"; rc=1; }
	instance_state "$n" >"$MIXLB_TMP/s5.state.1"
	if ! diff -u "$MIXLB_TMP/s5.state.0" "$MIXLB_TMP/s5.state.1" >"$MIXLB_TMP/s5.state.diff"; then
		fail "the refused cleanup changed the node:"
		mixlb_log_file "$MIXLB_TMP/s5.state.diff"
		rc=1
	fi
	[ "$(mixlb_status_get "$n" 'd["phase"]')" = serving ] || { fail "the sidecar is not serving after the refused cleanup"; rc=1; }

	if ! mixlb_stop_sidecar "$n" 10; then
		fail "$n's sidecar did not exit within 10 s of SIGTERM"
		return 1
	fi
	diag "$n's sidecar exited with status $MIXLB_STOP_RC after SIGTERM; left: XDP link $(mixlb_xdp_link_id "$n"), program $(mixlb_xdp_prog_id "$n"), pins: $(find "$MIXLB_BPFFS/$n" -mindepth 1 2>/dev/null | wc -l), host record: $([ -e "$MIXLB_RUN_DIR/$n.host.json" ] && echo yes || echo no)"
	[ "$MIXLB_STOP_RC" -eq 0 ] || { fail "exit status $MIXLB_STOP_RC"; rc=1; }
	[ -n "$(mixlb_xdp_prog_id "$n")" ] || { fail "a restart stop removed the XDP program: nothing left to clean up"; rc=1; }
	local t0
	t0=$(now_ms)
	out=$(cleanup_node "$n" 2>&1)
	st=$?
	diag "cleanup after the stop: exit $st in $(($(now_ms) - t0)) ms:"
	diag "  ${out//$'\n'/$'\n'  }"
	[ $st -eq 0 ] || { fail "exit status $st"; rc=1; }
	if mixlb_check_removed "$n"; then
		diag "figures: cleanup removed the XDP program and link, the pins, the VIPs on lo, the managed neighbours, the host record; sysctls as before"
	else
		rc=1
	fi
	# Back for the next scenario: a fresh start.
	mixlb_start_sidecar "$n" || return 1
	mixlb_wait_ready "$n" || return 1
	[ "$(mixlb_status_get "$n" 'd["instance"]["adopted_maps"]')" = False ] ||
		{ fail "the sidecar after the cleanup adopted maps: the pins were not gone"; rc=1; }
	return $rc
}

# 6: `mixlbctl leave` of mix2 with connections on it.
scenario_leave() {
	local n=mix2 rc=0 pid out t0 t_excl t_close bound on_n state mark
	local peer_marks=()
	bound=$(mixlb_suspicion_bound_s)
	clients_start s6 "$n" || return 1
	on_n=$HELD_ON
	[ "$on_n" -gt 0 ] || { fail "no held connection is served by $n: not put to the test"; rc=1; }
	pid=${MIXLB_SIDECAR_PID[$n]}
	mark=$(log_mark "$n")
	peer_marks=("$(log_mark mix1)" "$(log_mark mix3)")
	t0=$(now_ms)
	out=$(mixlb_ctl "$n" leave 2>&1) || { fail "mixlbctl leave: $out"; rc=1; }
	diag "mixlbctl leave: $out"
	state=$(mixlb_status_get "$n" 'd["phase"] + ": " + d.get("leave", "(no leave field)")')
	diag "$n's status: $state"
	if [[ "$state" != "leaving: "* ]] || [[ "$state" == *"(no leave field)" ]]; then
		fail "status does not show phase leaving with a leave string"
		rc=1
	fi

	# New flows: gone from mix2 on every node within the suspicion timeout.
	if mixlb_wait_backends mix1,mix3 "$bound" "${MIXLB_NODES[@]}"; then
		t_excl=$(now_ms)
		diag "every node's backends exclude $n $((t_excl - t0)) ms after the leave (bound $bound s); by" \
			"their logs: $n $(table_changes "$n" "$mark" "$t0" | head -n 1), mix1 $(table_changes mix1 \
			"${peer_marks[0]}" "$t0" | head -n 1), mix3 $(table_changes mix3 "${peer_marks[1]}" "$t0" | head -n 1)"
	else
		t_excl=$(now_ms)
		rc=1
	fi
	sleep 2
	load_stop s6 || rc=1
	local late early
	early=$(awk -v t="$t_excl" -v n="$n" '$1 == "req" && $2 < t && $5 == n' "$MIXLB_TMP/s6.load" | wc -l)
	late=$(awk -v t="$t_excl" -v n="$n" '$1 == "req" && $2 >= t && $5 == n' "$MIXLB_TMP/s6.load" | wc -l)
	diag "requests served by $n: $early started before its exclusion, $late after (of $(awk -v t="$t_excl" '$1 == "req" && $2 >= t' "$MIXLB_TMP/s6.load" | wc -l) after)"
	[ "$late" -eq 0 ] || { fail "$late new requests were served by the leaving $n after every node excluded it"; rc=1; }

	# Established connections: served on, the sidecar waits for them.
	sleep 2.5
	if ! mixlb_alive "$pid"; then
		fail "$n's sidecar exited while its connections were open"
		return 1
	fi
	state=$(mixlb_status_get "$n" 'd["phase"] + ": " + d.get("leave", "")')
	diag "$(( $(now_ms) - t0 )) ms after the leave, the connections still open: $state"
	t_close=$(now_ms)
	holds_stop s6 || rc=1
	if ! wait_exit "$pid" 40; then
		fail "$n's sidecar still runs 40 s after the leave's connections closed"
		return 1
	fi
	unset "MIXLB_SIDECAR_PID[$n]"
	diag "$n's sidecar exited with status $EXIT_RC, $(($(now_ms) - t_close)) ms after the client closed the connections ($(($(now_ms) - t0)) ms after the leave)"
	[ "$EXIT_RC" -eq 0 ] || { fail "exit status $EXIT_RC"; rc=1; }
	log_has "$n" "$mark" "leave: the node is quiet" || { fail "the sidecar did not log that the node was quiet (it timed out?)"; rc=1; }
	mixlb_check_removed "$n" || rc=1
	diag "figures: leave of $n: new flows off every node in $((t_excl - t0)) ms; $on_n connections on it, $HELD_BROKEN of $HOLD_COUNT broke;" \
		"exit $EXIT_RC after the close, nothing left"
	return $rc
}

# 7: reloads under load, on every node: a VIP added (its address onto lo,
# its table built everywhere, requests to it served), a weight changed, a
# broken file refused with its line and nothing changed, the VIP removed
# again. The held connections (line port) and the request loop (HTTP) are on
# VIPs no reload touches: none may fail.
RELOAD_VIP=10.100.0.2
reload_all() {
	local n out rc=0
	for n in "${MIXLB_NODES[@]}"; do
		out=$(mixlb_ctl "$n" reload --json 2>&1) || { fail "$n: mixlbctl reload failed: $out"; rc=1; continue; }
		RELOAD_APPLIED[$n]=$(mixlb_json '",".join(d["applied"])' <<<"$out")
	done
	return $rc
}
reload_route() {
	local args=() n
	for n in "${MIXLB_NODES[@]}"; do args+=(nexthop via "$(mixlb_addr "$n")" dev "$MIXLB_P-rs"); done
	mixlb_do ip -n "$(mixlb_ns router)" route "$1" "$RELOAD_VIP/32" "${args[@]}"
}
scenario_reload() {
	local n rc=0 t0 out code ok=0 lo weights config
	declare -gA RELOAD_APPLIED=()
	clients_start r1 mix1 || return 1
	# 1. a VIP added
	t0=$(now_ms)
	for n in "${MIXLB_NODES[@]}"; do
		printf '\n[[vip]]\naddress = "%s"\nports = [%s]\n' "$RELOAD_VIP" "$MIXLB_HTTP_PORT" >>"$(mixlb_config_path "$n")"
	done
	reload_all || rc=1
	[ "${RELOAD_APPLIED[mix1]}" = "vip" ] || { fail "mix1's reload applied '${RELOAD_APPLIED[mix1]}', not 'vip'"; rc=1; }
	reload_route replace || rc=1
	mixlb_wait_backends_of "^$RELOAD_VIP:" mix1,mix2,mix3 10 "${MIXLB_NODES[@]}" || rc=1
	lo=$(mixlb_in mix2 ip -br addr show dev lo)
	[[ $lo == *"$RELOAD_VIP/32"* ]] || { fail "$RELOAD_VIP is not on mix2's lo: $lo"; rc=1; }
	for ((code = 0; code < 30; code++)); do
		[ "$(mixlb_in client curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$RELOAD_VIP/")" = 200 ] && ok=$((ok + 1))
	done
	diag "VIP $RELOAD_VIP added by reload on every node: in every table within $(($(now_ms) - t0)) ms, $ok/30 requests to it answered"
	[ $ok -eq 30 ] || { fail "only $ok of 30 requests to the added VIP were answered"; rc=1; }
	# 2. a weight changed (mix3: 3)
	config=$(mixlb_config_path mix3)
	sed -i 's/^\[node\]$/[node]\nweight = 3/' "$config"
	out=$(mixlb_ctl mix3 reload --json 2>&1) || { fail "mix3: reload: $out"; rc=1; }
	t0=$(now_ms)
	weights=""
	while [ $(($(now_ms) - t0)) -lt 5000 ]; do
		weights=$(mixlb_status_get mix1 '",".join(sorted({f"{k}:{w}" for x in d["vips"] if x["vip"].startswith("'"$MIXLB_VIP"':") for k, w in x.get("weights", {}).items()}))')
		[[ $weights == *"mix3:3"* ]] && break
		sleep 0.1
	done
	[[ $weights == *"mix3:3"* ]] || { fail "mix1 does not see mix3's weight 3: $weights"; rc=1; }
	diag "mix3's weight 3 by reload: in mix1's tables within $(($(now_ms) - t0)) ms"
	# 3. a broken file: refused with file:line:key, nothing changed
	config=$(mixlb_config_path mix2)
	cp "$config" "$config.good"
	printf '\n[[vip]]\naddress = "10.100.0.300"\n' >>"$config"
	if out=$(mixlb_ctl mix2 reload 2>&1); then
		fail "mix2 accepted a broken file: $out"
		rc=1
	elif [[ $out != *"mix2.toml:"*"vip["*"].address"* ]]; then
		fail "the refusal does not say file:line:key: $out"
		rc=1
	else
		diag "a broken file is refused: $out"
	fi
	mv "$config.good" "$config"
	mixlb_wait_backends_of "^$RELOAD_VIP:" mix1,mix2,mix3 1 mix2 || rc=1
	# 4. the VIP removed again, the weight back
	for n in "${MIXLB_NODES[@]}"; do
		config=$(mixlb_config_path "$n")
		python3 - "$config" "$RELOAD_VIP" <<'PY'
import sys
path, vip = sys.argv[1], sys.argv[2]
text = open(path).read().replace('\n[[vip]]\naddress = "%s"\n' % vip, '\n#removed\n').replace('[node]\nweight = 3\n', '[node]\n')
lines = text.split('\n')
out = []
skip = False
for line in lines:
    if line == '#removed':
        skip = True
        continue
    if skip and line.startswith('ports = '):
        skip = False
        continue
    out.append(line)
open(path, 'w').write('\n'.join(out))
PY
	done
	t0=$(now_ms)
	reload_all || rc=1
	reload_route del || rc=1
	for n in "${MIXLB_NODES[@]}"; do
		out=$(mixlb_status_get "$n" '" ".join(v["vip"] for v in d["vips"])') || rc=1
		[[ $out == *"$RELOAD_VIP"* ]] && { fail "$n still has $RELOAD_VIP: $out"; rc=1; }
	done
	lo=$(mixlb_in mix2 ip -br addr show dev lo)
	[[ $lo == *"$RELOAD_VIP/32"* ]] && { fail "$RELOAD_VIP is still on mix2's lo: $lo"; rc=1; }
	diag "VIP $RELOAD_VIP removed by reload: gone from every node in $(($(now_ms) - t0)) ms"
	clients_stop r1 || rc=1
	diag "figures: reloads under load: $LOAD_TOTAL requests, $LOAD_FAILED failed; $HELD_BROKEN of $HOLD_COUNT held connections broke"
	return $rc
}

# The end: the cluster is whole again (mix2 rejoins after its leave).
scenario_whole() {
	local start
	start=$(now_ms)
	ensure_cluster || return 1
	mixlb_wait_backends mix1,mix2,mix3 10 "${MIXLB_NODES[@]}" || return 1
	diag "the cluster is whole again in $(($(now_ms) - start)) ms"
}

# stop_leftovers: the clients and the watch a failed scenario left running.
stop_leftovers() {
	local pid
	for pid in "${HOLDS_PID:-}" "${LOAD_PID:-}" "${XDP_WATCH_PID:-}"; do
		{ [ -n "$pid" ] && mixlb_alive "$pid"; } || continue
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	HOLDS_PID=""
	LOAD_PID=""
	XDP_WATCH_PID=""
}

# run NODE DESCRIPTION FUNCTION: one scenario on a whole cluster; on failure
# the end of NODE's sidecar log.
run() {
	local log_node=$1 desc=$2 rc
	shift 2
	if ! ensure_cluster; then
		mixlb_tap 1 "$desc"
		echo "Bail out! the cluster could not be brought back before: $desc"
		exit 1
	fi
	local start
	start=$(now_ms)
	"$@"
	rc=$?
	stop_leftovers
	diag "($(($(now_ms) - start)) ms)"
	if [ $rc -ne 0 ]; then
		diag "the end of $log_node's sidecar log:"
		mixlb_log_file "$(mixlb_sidecar_log "$log_node")" 25
	fi
	mixlb_tap $rc "$desc"
}

# ---------------------------------------------------------------- main

start_ms=$(now_ms)
# bpftool reads the pinned maps of a stopped sidecar.
mixlb_tap_start "$plan" "${1:-}" bpftool || exit "$MIXLB_TAP_EXIT"
mixlb_tap_up scenario_up
run mix1 "1: SIGTERM + start of mix1's sidecar under load: no request failed, no held connection broke" \
	scenario_sigterm
run mix2 "2: SIGKILL + start within 10 s of mix2's sidecar under load: no request failed, no held connection broke" \
	scenario_sigkill
run mix3 "3: a second sidecar for mix3 is refused, names the running pid, changes nothing; the first balances on" \
	scenario_second
run mix1 "4: after mix1's crash, starts failing late (keyring 0644, gossip port taken) leave its data path running; a proper start adopts it" \
	scenario_failed_start
run mix3 "5: mixlb cleanup is refused while mix3's sidecar runs and removes everything after a restart stop" \
	scenario_cleanup
run mix2 "6: mixlbctl leave of mix2: new flows gone within the suspicion timeout, its connections served until closed, exit 0, nothing left" \
	scenario_leave
run mix2 "7: reloads under load: a VIP added and served, a weight changed, a broken file refused with its line, the VIP removed; nothing failed on the other VIPs" \
	scenario_reload
scenario_whole
mixlb_tap $? "the cluster is whole again: mix2 rejoins after its leave"
mixlb_tap_end "$start_ms"
