#!/usr/bin/env bash
# App restarts under load, with the reuseport selector and without it.
#
#   integration/reuseport.sh BUILD_DIR            the test (TAP)
#   integration/reuseport.sh BUILD_DIR --bench    ./dev bench reuseport
#
# The integration topology (lib.sh), with mix2 and mix3 drained so that every
# new flow through the VIP is served by mix1. mix1's app is replaced by
# generations of `mixlb-testnode serve --reuseport 1` (SO_REUSEPORT on every
# socket; SIGTERM shuts the listeners down, finishes what it serves, exits).
#
# TCP: a client loop opens a new connection per HTTP request through the VIP
# (16 workers) while mix1's app is restarted RESTARTS times: a new instance
# starts, then (selector) `mixlbctl sockets adopt --pid NEW` switches new
# flows to it, then the old instance gets SIGTERM and exits. Counted: failed
# requests, resets among them, mix1's TcpExtListenDrops,
# TcpExtListenOverflows and TcpExtTCPAbortOn* deltas, and (selector) the
# connections migrated from closing listeners. `plain` is the same loop
# with no selector: the kernel's own SO_REUSEPORT hash, which spreads new
# connections over the old and the new listeners and resets what was
# queued on the old one when it closes.
#
# UDP: 20 long-lived flows (one datagram each every 100 ms) through the VIP
# while generations are started and switched to RESTARTS times, the old
# ones left running (a QUIC-like app drains its flows): each flow must be
# answered by one instance only. `plain` again for comparison: a new
# socket in the group takes a share of the existing flows.
#
# handoff: the TCP loop again, each instance started by mixlb-run, which
# makes the HTTP socket, hands it to the sidecar over its handoff socket
# (SCM_RIGHTS; the registration switches) and execs the app with it
# (LISTEN_FDS).
#
# nginx: Debian's nginx (`listen 80 reuseport`, two workers) restarted
# RESTARTS times under the same load: a new master started, adopted (which
# switches), the old one stopped with QUIT.
#
# The test wants selector: 0 failed, 0 resets, the counters' deltas 0, no
# UDP flow moved and none unanswered; it only reports plain. The benchmark
# prints one JSON object per mode and protocol.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

MIXLB_LOG_PREFIX="# "
build=${1:-}
bench=0
[ "${2:-}" = --bench ] && bench=1
restarts=${MIXLB_RESTARTS:-20}
GENS=()    # pids of mix1's app generations still running, oldest first
GEN_NO=0

# Starts the next generation of mix1's app; waits until it listens.
start_generation() {
	local log pid i
	GEN_NO=$((GEN_NO + 1))
	log=$MIXLB_TMP/mix1.gen$GEN_NO.log
	local run=()
	# handoff: the app is started by mixlb-run, which makes its HTTP socket
	# and hands it to the sidecar (the switch) before the app runs.
	[ "${GEN_VIA_RUN:-0}" = 1 ] && run=("$MIXLB_BUILD/sidecar/mixlb-run" --socket "$MIXLB_RUN_DIR/mix1.handoff"
		--label "g$GEN_NO" --listen "tcp:0.0.0.0:$MIXLB_HTTP_PORT" --)
	nsenter --net="$(mixlb_netns mix1)" -- "${run[@]}" "$MIXLB_TESTNODE" serve --name "mix1-g$GEN_NO" --reuseport 1 \
		--http-port "$MIXLB_HTTP_PORT" --line-port "$MIXLB_LINE_PORT" --udp-port "$MIXLB_UDP_PORT" >"$log" 2>&1 &
	pid=$!
	MIXLB_OTHER_PIDS+=("$pid")
	for ((i = 0; i < 100; i++)); do
		if [ "$(mixlb_in mix1 ss -Htlnp "( sport = :$MIXLB_HTTP_PORT )" | grep -c "pid=$pid,")" -ge 2 ] &&
			[ "$(mixlb_in mix1 ss -Hulnp "( sport = :$MIXLB_UDP_PORT )" | grep -c "pid=$pid,")" -ge 2 ]; then
			GENS+=("$pid")
			return 0
		fi
		mixlb_alive "$pid" || break
		sleep 0.05
	done
	mixlb_log "generation $GEN_NO of mix1's app did not start listening:"
	mixlb_log_file "$log"
	return 1
}

# Stops the oldest running generation (a graceful stop) and waits for it.
stop_oldest() {
	local pid=${GENS[0]} i
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 200; i++)); do
		mixlb_alive "$pid" || break
		sleep 0.05
	done
	GENS=("${GENS[@]:1}")
}

stop_all() {
	while [ "${#GENS[@]}" -gt 0 ]; do stop_oldest; done
}

# Hands generation pid $1 to mix1's sidecar; prints the switch time in µs.
adopt() {
	local out
	out=$(mixlb_ctl mix1 sockets adopt --pid "$1" --json) || { mixlb_log "adopt failed: $out"; return 1; }
	mixlb_json 'max(a.get("switch_us", 0) for a in d["adopted"])' <<<"$out"
}

# The sum of mix1's counters whose names match the regex $1 (nstat, absolute).
nstat_sum() {
	mixlb_in mix1 nstat -asz 2>/dev/null | awk -v re="$1" '$1 ~ re { s += $2 } END { print s + 0 }'
}

# Migrated connections so far: the selector's counter of every generation it
# still knows (a generation's count lives as long as the generation does, so
# this is read before each old one goes).
migrated_now() {
	mixlb_ctl mix1 sockets --json |
		mixlb_json 'sum(g.get("migrated", 0) for s in d["services"] if s["service"].startswith("tcp") for g in s["generations"])'
}

# The client loop through the VIP (16 workers, a new connection per HTTP
# request), its report in $1; sets LOAD_PID.
load_start() {
	nsenter --net="$(mixlb_netns client)" -- "$MIXLB_TESTNODE" load --to "$MIXLB_VIP:$MIXLB_HTTP_PORT" \
		--workers 16 --seconds 600 >"$1" 2>&1 &
	LOAD_PID=$!
	MIXLB_OTHER_PIDS+=("$LOAD_PID")
}

# Stops the loop whose report is $1 and logs it under the name $2; sets
# LOAD_REQUESTS, LOAD_FAILED, LOAD_RESETS.
load_stop() {
	local summary
	kill -TERM "$LOAD_PID"
	wait "$LOAD_PID"
	summary=$(grep '^load ' "$1")
	mixlb_log "$2: $summary"
	grep '^req .* - ' "$1" | head -3 | while read -r line; do mixlb_log "  $line"; done
	LOAD_REQUESTS=$(awk '{ print $3 }' <<<"$summary")
	LOAD_FAILED=$(awk '{ print $7 }' <<<"$summary")
	LOAD_RESETS=$(grep -c '^req .* - .*reset' "$1")
	[ -n "$LOAD_REQUESTS" ] && [ -n "$LOAD_FAILED" ]
}

# p99 of the numbers on stdin.
p99() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) { print 0; exit } i = int(NR * 0.99 + 0.999); if (i < 1) i = 1; print v[i] }'; }

# One TCP run of RESTARTS restarts in mode $1: selector (each new instance
# adopted), handoff (each started by mixlb-run, which registers its socket),
# plain (neither). Sets
# T_REQUESTS T_FAILED T_RESETS T_MIGRATED T_SWITCH_P99 T_DROPS T_RATE.
tcp_run() {
	local mode=$1 out=$MIXLB_TMP/tcp.$1.load switches=() migrated=0 drops_before drops_after start_ms took_ms r
	stop_all
	GEN_VIA_RUN=0
	[ "$mode" = handoff ] && GEN_VIA_RUN=1
	start_generation || return 1
	if [ "$mode" = selector ]; then adopt "${GENS[0]}" >/dev/null || return 1; fi
	drops_before=$(nstat_sum '^(TcpExtListenDrops|TcpExtListenOverflows|TcpExtTCPAbortOn)')
	start_ms=$(mixlb_now_ms)
	load_start "$out"
	sleep 1
	for ((r = 1; r <= restarts; r++)); do
		start_generation || { kill -TERM "$LOAD_PID"; return 1; }
		if [ "$mode" = selector ]; then
			switches+=("$(adopt "${GENS[-1]}")") || { kill -TERM "$LOAD_PID"; return 1; }
			migrated=$((migrated + $(migrated_now)))
		fi
		stop_oldest
		sleep 0.5
	done
	sleep 1
	load_stop "$out" "$mode" || return 1
	took_ms=$(($(mixlb_now_ms) - start_ms))
	# What moved to the last generation when the one before it closed.
	[ "$mode" = selector ] && migrated=$((migrated + $(migrated_now)))
	GEN_VIA_RUN=0
	drops_after=$(nstat_sum '^(TcpExtListenDrops|TcpExtListenOverflows|TcpExtTCPAbortOn)')
	T_REQUESTS=$LOAD_REQUESTS
	T_FAILED=$LOAD_FAILED
	T_RESETS=$LOAD_RESETS
	T_MIGRATED=$migrated
	T_DROPS=$((drops_after - drops_before))
	T_RATE=$((T_REQUESTS * 1000 / took_ms))
	T_SWITCH_P99=$(printf '%s\n' "${switches[@]}" | grep -v '^$' | p99)
	mixlb_log "$mode: $T_REQUESTS connections in $took_ms ms ($T_RATE/s), $T_FAILED failed, $T_RESETS reset, $T_MIGRATED migrated, listen drops/overflows/aborts +$T_DROPS, switch p99 ${T_SWITCH_P99} us"
}

# One UDP run in mode $1: 20 held flows while RESTARTS generations start
# (and, with the selector, are switched to); the old ones keep running.
# Sets U_FLOWS U_SENT U_ANSWERED U_MOVED U_SWITCH_P99.
udp_run() {
	local mode=$1 hold_pid out=$MIXLB_TMP/udp.$1.hold switches=() r summary
	stop_all
	start_generation || return 1
	if [ "$mode" = selector ]; then adopt "${GENS[0]}" >/dev/null || return 1; fi
	nsenter --net="$(mixlb_netns client)" -- "$MIXLB_TESTNODE" udp-hold --to "$MIXLB_VIP:$MIXLB_UDP_PORT" \
		--flows 20 --seconds 600 --interval-ms 100 >"$out" 2>&1 &
	hold_pid=$!
	MIXLB_OTHER_PIDS+=("$hold_pid")
	sleep 1
	for ((r = 1; r <= restarts; r++)); do
		start_generation || { kill -TERM "$hold_pid"; return 1; }
		if [ "$mode" = selector ]; then
			switches+=("$(adopt "${GENS[-1]}")") || { kill -TERM "$hold_pid"; return 1; }
		fi
		sleep 0.3
	done
	sleep 1
	kill -TERM "$hold_pid"
	wait "$hold_pid"
	summary=$(grep '^flows ' "$out")
	mixlb_log "$mode udp: $summary"
	grep '^flow .*,' "$out" | head -3 | while read -r line; do mixlb_log "  $line"; done
	U_FLOWS=$(awk '{ print $2 }' <<<"$summary")
	U_ANSWERED=$(awk '{ split($4, a, "/"); print a[1] }' <<<"$summary")
	U_SENT=$(awk '{ split($4, a, "/"); print a[2] }' <<<"$summary")
	U_MOVED=$(awk '{ print $6 }' <<<"$summary")
	U_SWITCH_P99=$(printf '%s\n' "${switches[@]}" | grep -v '^$' | p99)
	stop_all
	[ -n "$U_MOVED" ]
}

# nginx (Debian's) on mix1: instance $1 with `listen 80 reuseport` and two
# workers, daemonised; prints its master's pid once it listens.
start_nginx() {
	local n=$1 dir=$MIXLB_TMP/nginx.$1 pid i
	mkdir -p "$dir"
	cat >"$dir/nginx.conf" <<-EOF
		daemon on;
		pid $dir/nginx.pid;
		worker_processes 2;
		error_log $dir/error.log warn;
		events { worker_connections 4096; }
		http {
		  access_log off;
		  client_body_temp_path $dir/body;
		  proxy_temp_path $dir/proxy;
		  server {
		    listen $MIXLB_HTTP_PORT reuseport backlog=4096;
		    location / { default_type text/plain; return 200 "mix1-nginx$n\n"; }
		  }
		}
	EOF
	mixlb_in mix1 nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/start.log" 2>&1 || {
		mixlb_log "nginx $n did not start:"
		mixlb_log_file "$dir/start.log"
		return 1
	}
	for ((i = 0; i < 100; i++)); do
		pid=$(cat "$dir/nginx.pid" 2>/dev/null)
		if [ -n "$pid" ] && [ "$(mixlb_in mix1 ss -Htlnp "( sport = :$MIXLB_HTTP_PORT )" | grep -c "\"nginx\",pid=")" -ge 2 ]; then
			MIXLB_OTHER_PIDS+=("$pid")
			echo "$pid"
			return 0
		fi
		sleep 0.05
	done
	mixlb_log "nginx $n did not start listening"
	return 1
}

# Waits (5 s at most) for a graceful stop (QUIT) of nginx master $1.
stop_nginx() {
	local i
	kill -QUIT "$1" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		mixlb_alive "$1" || return 0
		sleep 0.05
	done
	mixlb_log "nginx $1 still runs 5 s after QUIT"
}

# nginx restarted RESTARTS times under the same load, each new master
# adopted (the switch), then the old one QUIT. Sets N_REQUESTS N_FAILED N_RESETS.
nginx_run() {
	local out=$MIXLB_TMP/nginx.load old new r
	stop_all
	old=$(start_nginx 0) || return 1
	adopt "$old" >/dev/null || return 1
	load_start "$out"
	sleep 1
	for ((r = 1; r <= restarts; r++)); do
		new=$(start_nginx "$r") || { kill -TERM "$LOAD_PID"; return 1; }
		adopt "$new" >/dev/null || { kill -TERM "$LOAD_PID"; return 1; }
		stop_nginx "$old"
		old=$new
		sleep 0.5
	done
	sleep 1
	load_stop "$out" nginx || return 1
	stop_nginx "$old"
	N_REQUESTS=$LOAD_REQUESTS
	N_FAILED=$LOAD_FAILED
	N_RESETS=$LOAD_RESETS
}

# mix1 alone serves new flows; its original app makes way for generations.
prepare() {
	mixlb_ctl mix2 drain >/dev/null && mixlb_ctl mix3 drain >/dev/null || { mixlb_log "drain failed"; return 1; }
	kill -TERM "${MIXLB_SERVER_PID[mix1]}" 2>/dev/null
	wait "${MIXLB_SERVER_PID[mix1]}" 2>/dev/null
	sleep 1  # the drains reach every node's tables
}

tcp_json() {
	emit "{\"bench\": \"reuseport\", \"mode\": \"$1\", \"proto\": \"tcp\", \"restarts\": $restarts, \"connections\": $T_REQUESTS, \"connections_per_s\": $T_RATE, \"failed\": $T_FAILED, \"resets\": $T_RESETS, \"migrated\": $T_MIGRATED, \"listen_drops_overflows_aborts\": $T_DROPS, \"switch_latency_us_p99\": ${T_SWITCH_P99:-0}}"
}
udp_json() {
	emit "{\"bench\": \"reuseport\", \"mode\": \"$1\", \"proto\": \"udp\", \"restarts\": $restarts, \"connections\": $U_FLOWS, \"datagrams\": $U_SENT, \"failed\": $((U_SENT - U_ANSWERED)), \"resets\": 0, \"migrated\": 0, \"moved_flows\": $U_MOVED, \"switch_latency_us_p99\": ${U_SWITCH_P99:-0}}"
}

if [ "$bench" = 1 ]; then
	mixlb_bench_start "${build:?usage: $0 BUILD_DIR [--bench]}" restarts reuseport
	prepare || { emit '{"bench": "reuseport", "error": "see the log"}'; exit 1; }
	for mode in plain selector; do
		tcp_run "$mode" && tcp_json "$mode" || emit "{\"bench\": \"reuseport\", \"mode\": \"$mode\", \"proto\": \"tcp\", \"error\": \"see the log\"}"
		udp_run "$mode" && udp_json "$mode" || emit "{\"bench\": \"reuseport\", \"mode\": \"$mode\", \"proto\": \"udp\", \"error\": \"see the log\"}"
	done
	tcp_run handoff && tcp_json handoff || emit '{"bench": "reuseport", "mode": "handoff", "proto": "tcp", "error": "see the log"}'
	if nginx_run; then
		emit "{\"bench\": \"reuseport\", \"mode\": \"selector\", \"proto\": \"tcp\", \"app\": \"nginx\", \"restarts\": $restarts, \"connections\": $N_REQUESTS, \"failed\": $N_FAILED, \"resets\": $N_RESETS}"
	else
		emit '{"bench": "reuseport", "mode": "selector", "proto": "tcp", "app": "nginx", "error": "see the log"}'
	fi
	exit 0
fi

start_ms=$(mixlb_now_ms)
mixlb_tap_start 8 "$build" nstat nginx || exit "$MIXLB_TAP_EXIT"
mixlb_tap_up mixlb_cluster_up
prepare
mixlb_tap $? "mix2 and mix3 drained; mix1's app replaced by SO_REUSEPORT generations"

tcp_run plain
mixlb_tap $? "plain SO_REUSEPORT, $restarts restarts under load: ${T_FAILED:-?} of ${T_REQUESTS:-?} connections failed, ${T_RESETS:-?} reset (reported, not checked)"

check_tcp() {
	tcp_run selector || return 1
	[ "$T_REQUESTS" -gt 0 ] || { mixlb_fail "no request went through"; return 1; }
	[ "$T_FAILED" -eq 0 ] || { mixlb_fail "$T_FAILED of $T_REQUESTS connections failed"; return 1; }
	[ "$T_RESETS" -eq 0 ] || { mixlb_fail "$T_RESETS connections were reset"; return 1; }
	[ "$T_DROPS" -eq 0 ] || { mixlb_fail "listen drops, overflows or aborts grew by $T_DROPS"; return 1; }
}
check_tcp
mixlb_tap $? "selector, $restarts restarts under load: 0 of ${T_REQUESTS:-?} connections failed or reset, listen drops/overflows/aborts +0"

check_handoff() {
	tcp_run handoff || return 1
	[ "$T_REQUESTS" -gt 0 ] || { mixlb_fail "no request went through"; return 1; }
	[ "$T_FAILED" -eq 0 ] || { mixlb_fail "$T_FAILED of $T_REQUESTS connections failed"; return 1; }
	# The running instance is the active generation, under mixlb-run's label.
	local active
	active=$(mixlb_ctl mix1 sockets --json |
		mixlb_json '[g["label"] for s in d["services"] if s["service"].startswith("tcp") for g in s["generations"] if g["state"] == "active"]')
	mixlb_log "handoff: the active generation is labelled '$active'"
	[ "$active" = "g$GEN_NO" ] || { mixlb_fail "the active generation is '$active', not g$GEN_NO"; return 1; }
}
check_handoff
mixlb_tap $? "mixlb-run hands each new instance's socket over (SCM_RIGHTS), $restarts restarts under load: 0 of ${T_REQUESTS:-?} connections failed"

udp_run plain
mixlb_tap $? "plain SO_REUSEPORT, $restarts new UDP generations: ${U_MOVED:-?} of 20 flows moved (reported, not checked)"

check_udp() {
	udp_run selector || return 1
	[ "$U_MOVED" -eq 0 ] || { mixlb_fail "$U_MOVED of $U_FLOWS flows reached another generation"; return 1; }
	[ "$U_ANSWERED" -eq "$U_SENT" ] || { mixlb_fail "$((U_SENT - U_ANSWERED)) of $U_SENT datagrams unanswered"; return 1; }
}
check_udp
mixlb_tap $? "selector, $restarts new UDP generations: every one of 20 flows stayed on its socket, every datagram answered"

check_nginx() {
	nginx_run || return 1
	[ "$N_REQUESTS" -gt 0 ] || { mixlb_fail "no request reached nginx"; return 1; }
	[ "$N_FAILED" -eq 0 ] || { mixlb_fail "$N_FAILED of $N_REQUESTS requests to nginx failed"; return 1; }
}
check_nginx
mixlb_tap $? "nginx restarted $restarts times with sockets adopt under load: 0 of ${N_REQUESTS:-?} requests failed"
mixlb_tap_end "$start_ms"
