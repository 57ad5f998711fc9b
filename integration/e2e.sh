#!/usr/bin/env bash
# ./dev bench e2e: requests per second and latency through the mixlb VIP,
# next to going direct to one node and next to the load balancers a user
# already has, measured side by side in one run.
#
#   integration/e2e.sh BUILD_DIR [--rounds N] [--duration S]
#
# Defaults (about 8 minutes on a 2-core machine): 5 rounds, 8 s per wrk
# measurement; the environment changes them and the rest:
# MIXLB_E2E_ROUNDS, MIXLB_E2E_DURATION, MIXLB_E2E_WARMUP (2 s),
# MIXLB_E2E_CONNECTIONS (64), MIXLB_E2E_THREADS (2),
# MIXLB_E2E_IPERF_SECONDS (4), MIXLB_E2E_PAGE_BYTES (1024),
# MIXLB_E2E_WORKLOADS ("keepalive close iperf": a subset measures less),
# MIXLB_E2E_NFT (roundrobin; hash: the nftables path's pick, below).
# MIXLB_E2E_PROFILE=DIR
# records the sidecars with perf during each workload's first VIP round
# (DIR/sidecars.WORKLOAD.data; perf report -i FILE --sort comm,sym).
#
# The integration topology (lib.sh: a client, an ECMP router, a switch,
# three nodes with the real sidecar). Each node's app is Debian's nginx
# (a static page of PAGE_BYTES, one worker per CPU, no access log) on port
# 80, on every address, so both the node's address and the VIP reach it;
# and an iperf3 server on the VIP's TCP port 7000 (its tcp health check
# keeps that VIP's backends up). The paths, all from the client:
#
#   direct     one node's own address (10.0.0.11): one nginx
#   vip        the mixlb VIP 10.100.0.1: the router's ECMP picks the
#              ingress node, which serves the flow or forwards it (L2 DSR)
#              to the node its Maglev table names; replies go straight back
#   nftables   10.100.0.2 on the router: an nftables DNAT (numgen inc,
#              round robin per new connection) to the three node addresses;
#              the nodes reply via the router, whose conntrack un-NATs.
#              MIXLB_E2E_NFT=hash picks by a hash of the client's address
#              and port instead (jhash), so each new connection lands where
#              a hash puts it, as with any balancer that picks per flow
#              without shared state (mixlb's Maglev, ECMP): what round
#              robin's even spread is worth. One pick per run: the two
#              would share the router's conntrack, where a client port
#              reused for the other pick's address clashes with the old
#              connection's reply tuple
#   haproxy    10.100.0.3 on the router: HAProxy in TCP mode, balance
#              roundrobin over the three nodes, no logging
#
# Workloads: keepalive (wrk, CONNECTIONS connections held open, 2 threads),
# close (the same with `Connection: close`, a new TCP connection per
# request) and iperf (iperf3, one stream, client to server): direct to
# mix1's address; vip_local, the VIP routed to mix1, which serves it;
# vip_forwarded, the VIP routed to mix2, which forwards to mix1. For iperf
# mix2 and mix3 are drained, so mix1 serves every new flow (iperf3's
# control and data connections both), and the router's ECMP route is
# replaced by a single next hop; both are put back after the round.
#
# The switch forwards in XDP (lib.sh, MIXLB_SWITCH=xdp; MIXLB_SWITCH=bridge
# measures on the bridge instead). Everything here shares two CPUs, the
# switch included, and a hardware switch costs the hosts nothing: on the
# bridge each frame became an skb, crossed the bridge and was segmented
# again on the nodes' CPUs, and a flow mixlb forwards crosses the switch
# twice, so the bridge charged vip_forwarded a second trip that a real
# network makes for free (docs/benchmarks.md has both switches' figures).
# The setup row names the switch, and a run on xdp fails if the switch
# redirected nothing.
#
# Each wrk measurement also reports sidecar_cpu_pct: the CPU time the
# three sidecars used during it, in percent of one CPU (what mixlb's own
# daemons cost: close tracking and invalidation are per connection).
#
# The nftables table exists only while its path is measured: with it in
# place the router's conntrack would track every path's packets, which a
# plain router in front of mixlb does not do.
#
# Rounds interleave the paths (round 1 measures every path once, round 2
# again, ...; the order of the paths rotates by one each round), so a slow
# stretch of the machine hits every path alike. Before round 1, every path
# answers one curl and gets a wrk warm-up. One JSON object per line on
# stdout: the setup, then each measurement with its ratio to direct in the
# same round and workload, then per workload and path the median over the
# rounds ("round": "median", the ratios being ratios of medians, errors
# the sum over the rounds). The log goes to stderr. A benchmark: it
# reports, it checks no target.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MIXLB_SWITCH=${MIXLB_SWITCH:-xdp}
# shellcheck source=lib.sh
source "$here/lib.sh"

MIXLB_LOG_PREFIX="# "
usage() {
	echo "usage: $0 BUILD_DIR [--rounds N] [--duration S]" >&2
	exit 2
}
build=${1:-}
[ -n "$build" ] || usage
shift
rounds=${MIXLB_E2E_ROUNDS:-5}
duration=${MIXLB_E2E_DURATION:-8}             # seconds per wrk measurement
warmup=${MIXLB_E2E_WARMUP:-2}                 # seconds of wrk per path before round 1
connections=${MIXLB_E2E_CONNECTIONS:-64}
threads=${MIXLB_E2E_THREADS:-2}
iperf_seconds=${MIXLB_E2E_IPERF_SECONDS:-4}   # measured, after one omitted second
page_bytes=${MIXLB_E2E_PAGE_BYTES:-1024}
profile=${MIXLB_E2E_PROFILE:-}                # a directory: perf profiles of the sidecars (vip, round 1)
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=${2:-}; shift 2 || usage ;;
	--duration) duration=${2:-}; shift 2 || usage ;;
	*) usage ;;
	esac
done
for v in "$rounds" "$duration" "$warmup" "$connections" "$threads" "$iperf_seconds" "$page_bytes"; do
	[[ "$v" =~ ^[1-9][0-9]*$ ]] || usage
done

NFT_ADDR=10.100.0.2
HAPROXY_ADDR=10.100.0.3
IPERF_PORT=$MIXLB_LINE_PORT
WRK_PATHS=(direct vip nftables haproxy)
IPERF_PATHS=(direct vip_local vip_forwarded)
read -r -a WORKLOADS <<<"${MIXLB_E2E_WORKLOADS:-keepalive close iperf}"
case ${MIXLB_E2E_NFT:-roundrobin} in
roundrobin) nft_pick="numgen inc" ;;
hash) nft_pick="jhash ip saddr . tcp sport" ;;
*) echo "MIXLB_E2E_NFT: '$MIXLB_E2E_NFT' is neither roundrobin nor hash" >&2; exit 2 ;;
esac
[ ${#WORKLOADS[@]} -gt 0 ] || { echo "MIXLB_E2E_WORKLOADS: no workload" >&2; exit 2; }
for v in "${WORKLOADS[@]}"; do
	case $v in
	keepalive | close | iperf) ;;
	*) echo "MIXLB_E2E_WORKLOADS: unknown workload '$v' (keepalive close iperf)" >&2; exit 2 ;;
	esac
done
measures() { [[ " ${WORKLOADS[*]} " == *" $1 "* ]]; }
workers=$(nproc)
# The sidecars as shipped: connection-table entries of closing flows live
# 30 s (lib.sh's 5 s is for the tests' sweeper checks).
export MIXLB_TCP_CLOSING_IDLE_MS=30000

# e2e_spawn NS LOG CMD...: CMD in the background in namespace NS, its pid
# kept for e2e_stop_all (and the teardown, should the script fail first).
e2e_spawn() {
	local ns=$1 log=$2
	shift 2
	nsenter --net="$(mixlb_netns "$ns")" -- "$@" >"$log" 2>&1 &
	MIXLB_OTHER_PIDS+=("$!")
}

# Ends every process e2e_spawn started: SIGTERM (nginx's fast shutdown ends
# its workers too), 5 s at most for all of them together, then SIGKILL for
# what is left.
e2e_stop_all() {
	local pid i left
	[ ${#MIXLB_OTHER_PIDS[@]} -gt 0 ] || return 0
	kill -TERM "${MIXLB_OTHER_PIDS[@]}" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		left=0
		for pid in "${MIXLB_OTHER_PIDS[@]}"; do mixlb_alive "$pid" && left=$((left + 1)); done
		[ $left -gt 0 ] || break
		sleep 0.05
	done
	kill -KILL "${MIXLB_OTHER_PIDS[@]}" 2>/dev/null
	for pid in "${MIXLB_OTHER_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
	MIXLB_OTHER_PIDS=()
}

# The page every node serves: PAGE_BYTES of HTML, the same on every node so
# that every path moves the same bytes.
write_page() {
	local head='<!DOCTYPE html><html><head><title>mixlb e2e</title></head><body><pre>'
	local tail=$'</pre></body></html>\n'
	local fill=$((page_bytes - ${#head} - ${#tail}))
	[ $fill -ge 0 ] || fill=0
	{
		printf '%s' "$head"
		head -c "$fill" /dev/zero | tr '\0' 'x'
		printf '%s' "$tail"
	} >"$1"
}

# nginx on NODE instead of mixlb-testnode: the same port, every address,
# one worker per CPU, static page, no access log; keep-alive connections
# are not cut after nginx's default 1000 requests, so the keepalive
# workload stays one connection per wrk connection.
start_nginx() {
	local node=$1 dir=$MIXLB_TMP/nginx.$1 i
	mkdir -p "$dir/www" || return 1
	write_page "$dir/www/index.html" || return 1
	cat >"$dir/nginx.conf" <<-EOF
		daemon off;
		# The workers read the page from the run's temp dir, which is
		# root's alone.
		user root;
		pid $dir/nginx.pid;
		worker_processes $workers;
		worker_rlimit_nofile 16384;
		error_log $dir/error.log warn;
		events { worker_connections 8192; }
		http {
		  access_log off;
		  sendfile on;
		  tcp_nopush on;
		  keepalive_requests 10000000;
		  default_type text/html;
		  client_body_temp_path $dir/body;
		  proxy_temp_path $dir/proxy;
		  server {
		    listen $MIXLB_HTTP_PORT reuseport backlog=4096;
		    listen [::]:$MIXLB_HTTP_PORT reuseport backlog=4096 ipv6only=on;
		    root $dir/www;
		  }
		}
	EOF
	e2e_spawn "$node" "$dir/start.log" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
	for ((i = 0; i < 100; i++)); do
		mixlb_in "$node" curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$MIXLB_HTTP_PORT/index.html" &&
			return 0
		sleep 0.05
	done
	mixlb_log "$node: nginx did not answer:"
	mixlb_log_file "$dir/start.log"
	mixlb_log_file "$dir/error.log"
	return 1
}

# Every node's app becomes nginx and an iperf3 server; waits until every
# VIP has all three nodes as backends again (the HTTP checks reach nginx,
# the line port's tcp check the iperf3 server).
swap_apps() {
	local n
	for n in "${MIXLB_NODES[@]}"; do
		kill -TERM "${MIXLB_SERVER_PID[$n]}" 2>/dev/null
		wait "${MIXLB_SERVER_PID[$n]}" 2>/dev/null
		unset "MIXLB_SERVER_PID[$n]"
		start_nginx "$n" || return 1
		# The health checks connect and close every 200 ms; iperf3 logs
		# each as a failed test and goes on listening.
		e2e_spawn "$n" "$MIXLB_TMP/$n.iperf3.log" iperf3 -s -p "$IPERF_PORT"
	done
	mixlb_wait_backends mix1,mix2,mix3 15 "${MIXLB_NODES[@]}"
}

# HAProxy on the router, TCP mode, round robin over the nodes, no logging;
# enough connections for any workload here.
start_haproxy() {
	local dir=$MIXLB_TMP/haproxy n i
	mkdir -p "$dir" || return 1
	{
		cat <<-EOF
			global
			  maxconn 8000
			  nbthread $workers
			defaults
			  mode tcp
			  timeout connect 5s
			  timeout client 30s
			  timeout server 30s
			frontend e2e
			  bind $HAPROXY_ADDR:$MIXLB_HTTP_PORT
			  maxconn 8000
			  default_backend nodes
			backend nodes
			  balance roundrobin
		EOF
		for n in "${MIXLB_NODES[@]}"; do
			printf '  server %s %s:%s\n' "$n" "$(mixlb_addr "$n")" "$MIXLB_HTTP_PORT"
		done
	} >"$dir/haproxy.cfg"
	e2e_spawn router "$dir/haproxy.log" haproxy -db -f "$dir/haproxy.cfg"
	for ((i = 0; i < 100; i++)); do
		[ -n "$(mixlb_in router ss -Htln "( src $HAPROXY_ADDR and sport = :$MIXLB_HTTP_PORT )")" ] && return 0
		sleep 0.05
	done
	mixlb_log "haproxy did not start listening:"
	mixlb_log_file "$dir/haproxy.log"
	return 1
}

# The nftables balancer on the router: DNAT of NFT_ADDR:80 to the nodes,
# round robin per new connection (numgen inc) or by MIXLB_E2E_NFT's hash.
# Added for its measurement only (see the top).
nft_up() {
	local n i=0 map=""
	for n in "${MIXLB_NODES[@]}"; do
		map+="${map:+, }$i : $(mixlb_addr "$n")"
		i=$((i + 1))
	done
	mixlb_in router nft -f - <<-EOF
		table ip mixlb_e2e {
		  chain prerouting {
		    type nat hook prerouting priority dstnat; policy accept;
		    ip daddr $NFT_ADDR tcp dport $MIXLB_HTTP_PORT dnat to $nft_pick mod ${#MIXLB_NODES[@]} map { $map }
		  }
		}
	EOF
}
nft_down() { mixlb_in router nft delete table ip mixlb_e2e 2>/dev/null; }

# The router's side of the baselines: their addresses on its lo (the client
# reaches them by its default route), HAProxy.
router_up() {
	mixlb_do ip -n "$(mixlb_ns router)" addr add "$NFT_ADDR/32" dev lo || return 1
	mixlb_do ip -n "$(mixlb_ns router)" addr add "$HAPROXY_ADDR/32" dev lo || return 1
	start_haproxy
}

path_addr() {
	case $1 in
	direct) mixlb_addr mix1 ;;
	vip) echo "$MIXLB_VIP" ;;
	nftables) echo "$NFT_ADDR" ;;
	haproxy) echo "$HAPROXY_ADDR" ;;
	esac
}
path_url() { printf 'http://%s:%s/index.html' "$(path_addr "$1")" "$MIXLB_HTTP_PORT"; }

# One curl through PATH from the client: the page, whole.
check_path() {
	local got
	[ "$1" = nftables ] && { nft_up || return 1; }
	got=$(mixlb_in client curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 3 "$(path_url "$1")")
	[ "$1" = nftables ] && nft_down
	if [ "$got" != "200 $page_bytes" ]; then
		mixlb_log "$1 ($(path_url "$1")) answered '$got', not '200 $page_bytes'"
		return 1
	fi
	mixlb_log "$1: $(path_url "$1") answers"
}

# The sidecars' XDP mode: one word when every node has the same, else per node.
xdp_modes() {
	local n m modes=() uniq
	for n in "${MIXLB_NODES[@]}"; do
		m=$(mixlb_status_get "$n" 'd["xdp_mode"]') || m=unknown
		modes+=("$n=$m")
	done
	uniq=$(printf '%s\n' "${modes[@]#*=}" | sort -u)
	if [ "$(wc -l <<<"$uniq")" = 1 ]; then echo "$uniq"; else echo "${modes[*]}"; fi
}

# wrk's figures from its --latency report: requests/s, p50 and p99 in ms,
# and the errors it counted (socket errors, non-2xx answers).
wrk_figures() {
	awk '
	function ms(v) {
		if (v ~ /us$/) return v / 1000
		if (v ~ /ms$/) return v + 0
		if (v ~ /m$/) return v * 60000
		if (v ~ /s$/) return v * 1000
		return v + 0
	}
	$1 == "50%" { p50 = ms($2) }
	$1 == "99%" { p99 = ms($2) }
	$1 == "Requests/sec:" { rps = $2 }
	/Socket errors:/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
	/Non-2xx or 3xx responses:/ { err += $NF }
	END { if (rps == "" || p99 == "") exit 1; printf "%s %s %s %d\n", rps, p50, p99, err }
	' "$1"
}

# wrk_run WORKLOAD PATH SECONDS OUT: wrk from the client through PATH.
wrk_run() {
	local hdr=()
	[ "$1" = close ] && hdr=(-H "Connection: close")
	[ "$2" = nftables ] && { nft_up || return 1; }
	mixlb_in client wrk -t "$threads" -c "$connections" -d "${3}s" --latency "${hdr[@]}" "$(path_url "$2")" \
		>"$4" 2>&1
	local rc=$?
	[ "$2" = nftables ] && nft_down
	return $rc
}

# record JSON: one measurement's object, kept for the rows and the medians.
record() { printf '%s\n' "$1" >>"$results"; }

# The CPU time (clock ticks, user and system) the three sidecars have used
# so far: what mixlb's own daemons cost a workload (close tracking and
# invalidation work per connection, on the same CPUs as everything else).
sidecar_ticks() {
	local pid t=0 u s
	for pid in "${MIXLB_SIDECAR_PID[@]}"; do
		read -r u s < <(awk '{ print $14, $15 }' "/proc/$pid/stat" 2>/dev/null) || continue
		t=$((t + u + s))
	done
	echo "$t"
}

# measure_wrk WORKLOAD PATH ROUND: wrk's figures and the sidecars' CPU.
measure_wrk() {
	local out=$MIXLB_TMP/wrk.$1.$2.$3 f rps p50 p99 err t0 t1 ms0 ms1 cpu
	local perf_pid=""
	if [ -n "$profile" ] && [ "$2" = vip ] && [ "$3" = 1 ]; then
		mkdir -p "$profile"
		perf record -q -F 499 -g -p "$(IFS=,; echo "${MIXLB_SIDECAR_PID[*]}")" -o "$profile/sidecars.$1.data" \
			-- sleep "$duration" >/dev/null 2>&1 &
		perf_pid=$!
	fi
	t0=$(sidecar_ticks)
	ms0=$(mixlb_now_ms)
	wrk_run "$1" "$2" "$duration" "$out"
	local wrk_rc=$?
	[ -z "$perf_pid" ] || wait "$perf_pid"
	if [ "$wrk_rc" = 0 ] && f=$(wrk_figures "$out"); then
		t1=$(sidecar_ticks)
		ms1=$(mixlb_now_ms)
		# Percent of one CPU, the three sidecars together.
		cpu=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v ms=$((ms1 - ms0)) \
			'BEGIN { printf "%.1f", t / hz * 100000 / ms }')
		read -r rps p50 p99 err <<<"$f"
		mixlb_log "round $3 $1 $2: $rps req/s, p50 $p50 ms, p99 $p99 ms, $err errors, sidecars $cpu % of a CPU"
		record "{\"workload\": \"$1\", \"path\": \"$2\", \"round\": $3, \"req_per_s\": $rps, \"p50_ms\": $p50, \"p99_ms\": $p99, \"errors\": $err, \"sidecar_cpu_pct\": $cpu}"
	else
		mixlb_log "round $3 $1 $2: wrk failed:"
		mixlb_log_file "$out" 15
		record "{\"workload\": \"$1\", \"path\": \"$2\", \"round\": $3, \"error\": \"wrk failed\"}"
	fi
	sleep 0.5
}

# VIP packets so far on mix1 and mix2 (their status): each node's served
# locally, forwarded to a peer, received from a peer; six numbers.
vip_counts() {
	local n
	for n in mix1 mix2; do
		mixlb_status_get "$n" '(vipsum("local_pkts"), vipsum("fwd_pkts"), vipsum("from_peer_pkts"))' || return 1
	done | tr '\n' ' '
}

# path_shown PATH BEFORE AFTER: the counters' growth shows the iperf path
# taken (a stream is hundreds of thousands of packets): vip_local, mix1
# served it and nothing was forwarded; vip_forwarded, mix2 forwarded it to
# mix1 and served none of it.
path_shown() {
	local l1 f1 p1 l2 f2 L1 F1 P1 L2 F2
	read -r l1 f1 p1 l2 f2 _ <<<"$2"
	read -r L1 F1 P1 L2 F2 _ <<<"$3"
	mixlb_log "  VIP packets: mix1 served +$((L1 - l1)), forwarded +$((F1 - f1)), from a peer +$((P1 - p1));" \
		"mix2 served +$((L2 - l2)), forwarded +$((F2 - f2))"
	case $1 in
	vip_local) [ $((L1 - l1)) -ge 1000 ] && [ $((F1 - f1 + L2 - l2 + F2 - f2)) -eq 0 ] ;;
	vip_forwarded) [ $((F2 - f2)) -ge 1000 ] && [ $((P1 - p1)) -ge 1000 ] && [ $((L2 - l2)) -eq 0 ] ;;
	esac
}

# iperf_record PATH ROUND [FIELDS | error REASON]: its measurement, or why none.
iperf_record() {
	if [ "$3" = error ]; then
		record "{\"workload\": \"iperf\", \"path\": \"$1\", \"round\": $2, \"error\": \"$4\"}"
	else
		record "{\"workload\": \"iperf\", \"path\": \"$1\", \"round\": $2, $3}"
	fi
}

# iperf_run TO OUT: one iperf3 stream from the client to TO, its report in
# OUT; prints "Mbit/s retransmits". iperf3's server closes and reopens its
# listener after every test, and each of the tcp health check's connections
# counts as a (failed) test, so a connection can find no listener or be
# dropped with the old one: up to three attempts.
iperf_run() {
	local try
	for try in 1 2 3; do
		if mixlb_in client iperf3 -c "$1" -p "$IPERF_PORT" -P 1 -O 1 -t "$iperf_seconds" -J \
			--connect-timeout 3000 >"$2" 2>&1; then
			mixlb_json '(round(d["end"]["sum_received"]["bits_per_second"] / 1e6, 1), d["end"]["sum_sent"].get("retransmits", 0))' \
				<"$2" && return 0
		fi
		mixlb_log "iperf3 to $1, attempt $try: $(mixlb_json 'd.get("error", "no figures")' <"$2" 2>&1 | tail -n 1)"
		sleep 0.3
	done
	return 1
}

# measure_iperf PATH ROUND: one iperf3 stream from the client, with mix2
# and mix3 drained. vip_local routes the VIP to mix1 alone, vip_forwarded
# to mix2 alone.
measure_iperf() {
	local path=$1 round=$2 out=$MIXLB_TMP/iperf.$1.$2 to=$MIXLB_VIP via="" before="" f mbit retr
	case $path in
	direct) to=$(mixlb_addr mix1) ;;
	vip_local) via=mix1 ;;
	vip_forwarded) via=mix2 ;;
	esac
	if [ -n "$via" ]; then
		if ! mixlb_route_via "$via" || ! before=$(vip_counts); then
			iperf_record "$path" "$round" error "route or status"
			return
		fi
	fi
	if ! f=$(iperf_run "$to" "$out"); then
		mixlb_log "round $round iperf $path: iperf3 failed:"
		mixlb_log_file "$out" 15
		iperf_record "$path" "$round" error "iperf3 failed"
		return
	fi
	read -r mbit retr <<<"$f"
	mixlb_log "round $round iperf $path: $mbit Mbit/s, $retr retransmits"
	if [ -n "$via" ] && ! path_shown "$path" "$before" "$(vip_counts)"; then
		iperf_record "$path" "$round" error "the counters do not show the $path path"
	else
		iperf_record "$path" "$round" "\"mbit_per_s\": $mbit, \"retransmits\": $retr"
	fi
	sleep 0.5
}

# mix1 alone takes new flows, or every node again.
drain_others() {
	mixlb_ctl mix2 drain >/dev/null && mixlb_ctl mix3 drain >/dev/null || return 1
	mixlb_wait_backends mix1 10 "${MIXLB_NODES[@]}"
}
undrain_others() {
	mixlb_route_via "${MIXLB_NODES[@]}" || return 1
	mixlb_ctl mix2 undrain >/dev/null && mixlb_ctl mix3 undrain >/dev/null || return 1
	mixlb_wait_backends mix1,mix2,mix3 10 "${MIXLB_NODES[@]}"
}

# report rows ROUND WORKLOAD | report medians: the JSON rows from the
# measurements: one round's, with ratios to that round's direct, or the
# median per workload and path over the rounds.
report() {
	"$MIXLB_PYTHON" - "$results" "$@" <<-'EOF' >&3
		import json, statistics, sys
		path, mode = sys.argv[1], sys.argv[2]
		ms = [json.loads(l) for l in open(path) if l.strip()]
		order = {"keepalive": 0, "close": 1, "iperf": 2}
		paths = ["direct", "vip", "nftables", "haproxy", "vip_local", "vip_forwarded"]
		main = lambda w: "mbit_per_s" if w == "iperf" else "req_per_s"
		def row(w, p, rnd, figs, direct):
		    r = {"bench": "e2e", "workload": w, "path": p}
		    r.update(figs)
		    if direct and direct.get(main(w)):
		        r["ratio_vs_direct"] = round(figs[main(w)] / direct[main(w)], 3)
		        if w != "iperf" and direct.get("p99_ms"):
		            r["p99_vs_direct"] = round(figs["p99_ms"] / direct["p99_ms"], 3)
		    r["round"] = rnd
		    print(json.dumps(r))
		if mode == "rows":
		    rnd, w = int(sys.argv[3]), sys.argv[4]
		    mine = [m for m in ms if m["round"] == rnd and m["workload"] == w]
		    direct = next((m for m in mine if m["path"] == "direct" and "error" not in m), None)
		    for m in mine:
		        if "error" in m:
		            print(json.dumps({"bench": "e2e", "workload": w, "path": m["path"], "round": rnd, "error": m["error"]}))
		            continue
		        figs = {k: v for k, v in m.items() if k not in ("workload", "path", "round")}
		        row(w, m["path"], rnd, figs, direct)
		else:
		    keys = sorted({(m["workload"], m["path"]) for m in ms}, key=lambda k: (order[k[0]], paths.index(k[1])))
		    med = {}
		    for w, p in keys:
		        good = [m for m in ms if m["workload"] == w and m["path"] == p and "error" not in m]
		        if not good:
		            continue
		        figs = {}
		        for k in ("req_per_s", "p50_ms", "p99_ms", "mbit_per_s", "retransmits", "sidecar_cpu_pct"):
		            if k in good[0]:
		                figs[k] = round(statistics.median(m[k] for m in good), 2)
		        if "retransmits" in figs:
		            figs["retransmits"] = int(figs["retransmits"])
		        if "errors" in good[0]:
		            figs["errors"] = sum(m["errors"] for m in good)  # over all rounds
		        figs["rounds"] = len(good)
		        med[w, p] = figs
		    for w, p in keys:
		        if (w, p) in med:
		            row(w, p, "median", med[w, p], med.get((w, "direct")))
	EOF
}

# The start of ./dev bench e2e (as mixlb_bench_start, with this bench's own
# tools and its skip line): JSON to fd 3, the log to stderr.
exec 3>&1 1>&2
emit() { printf '%s\n' "$1" >&3; }
mixlb_init "$build" || exit 1
reason=$(mixlb_probe)
for tool in wrk iperf3 haproxy nginx nft; do
	[ -n "$reason" ] || command -v "$tool" >/dev/null || reason="$tool is not installed"
done
if [ -n "$reason" ]; then
	emit "{\"bench\": \"e2e\", \"skipped\": \"$reason\"}"
	exit 0
fi
mixlb_claim || exit 1
start_ms=$(mixlb_now_ms)
mixlb_cluster_up || {
	emit '{"bench": "e2e", "error": "the cluster did not come up"}'
	exit 1
}
results=$MIXLB_TMP/e2e.results   # one JSON object per measurement, without ratios

status=0
swap_apps || { emit '{"bench": "e2e", "error": "nginx or iperf3 did not take over the nodes"}'; exit 1; }
router_up || { emit '{"bench": "e2e", "error": "the router'"'"'s balancers did not start"}'; exit 1; }
for p in "${WRK_PATHS[@]}"; do
	check_path "$p" || { emit "{\"bench\": \"e2e\", \"error\": \"the $p path does not answer\"}"; exit 1; }
done
if [ "$MIXLB_SWITCH" = xdp ]; then
	switched=$(mixlb_switch_redirects)
	mixlb_log "the XDP switch redirected $switched frames while every path answered"
	if [ "$switched" -eq 0 ]; then
		emit '{"bench": "e2e", "error": "the XDP switch redirected no frame"}'
		exit 1
	fi
fi
xdp=$(xdp_modes)
mixlb_log "xdp mode: $xdp"
emit "{\"bench\": \"e2e\", \"setup\": {\"xdp_mode\": \"$xdp\", \"switch\": \"$MIXLB_SWITCH\", \"rounds\": $rounds, \"duration_s\": $duration, \"warmup_s\": $warmup, \"wrk_connections\": $connections, \"wrk_threads\": $threads, \"page_bytes\": $page_bytes, \"nginx_workers_per_node\": $workers, \"iperf_seconds\": $iperf_seconds, \"cpus\": $(nproc), \"kernel\": \"$(uname -r)\", \"workloads\": \"${WORKLOADS[*]}\", \"nftables\": \"dnat $nft_pick\", \"haproxy\": \"$(haproxy -v | awk 'NR == 1 { print $3 }') mode tcp roundrobin\", \"nginx\": \"$(nginx -v 2>&1 | sed 's|.*/||')\"}}"

for p in "${WRK_PATHS[@]}"; do
	wrk_run keepalive "$p" "$warmup" "$MIXLB_TMP/warmup.$p" || mixlb_log "warm-up of $p failed"
done
for ((r = 1; r <= rounds; r++)); do
	# The machine may be shared: what else ran shows here.
	mixlb_log "round $r, load average $(cut -d' ' -f1-3 /proc/loadavg)"
	# This round's order: the paths rotated by one per round.
	order=()
	for ((i = 0; i < ${#WRK_PATHS[@]}; i++)); do
		order+=("${WRK_PATHS[(i + r - 1) % ${#WRK_PATHS[@]}]}")
	done
	for w in keepalive close; do
		measures "$w" || continue
		for p in "${order[@]}"; do measure_wrk "$w" "$p" "$r"; done
		report rows "$r" "$w"
	done
	measures iperf || continue
	if drain_others; then
		for ((i = 0; i < ${#IPERF_PATHS[@]}; i++)); do
			measure_iperf "${IPERF_PATHS[(i + r - 1) % ${#IPERF_PATHS[@]}]}" "$r"
		done
	else
		mixlb_log "round $r: draining mix2 and mix3 failed; no iperf this round"
		for p in "${IPERF_PATHS[@]}"; do iperf_record "$p" "$r" error "drain failed"; done
	fi
	report rows "$r" iperf
	undrain_others || { emit '{"bench": "e2e", "error": "mix2 and mix3 did not come back after the drain"}'; status=1; break; }
done
report medians
grep -q '"error"' "$results" && status=1
e2e_stop_all
mixlb_log "run took $((($(mixlb_now_ms) - start_ms) / 1000)) s"
exit $status
