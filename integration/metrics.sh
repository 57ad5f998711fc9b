#!/usr/bin/env bash
# mixlb's metrics integration test (meson test, protocol TAP).
#
#   integration/metrics.sh BUILD_DIR
#
# On the topology of integration/lib.sh (a client, an ECMP router, three mix
# nodes each running the app and the real sidecar), with each sidecar's
# /metrics on its node address ([metrics] listen = "10.0.0.1N:9650"), checks
# that:
#   2. every sidecar serves /metrics there, its status names the address,
#      and `promtool check metrics` accepts what it serves;
#   3. HTTP requests through the VIP (both families) all succeed;
#   4. a real prometheus, run in the router's namespace with a scrape config
#      naming the three sidecars, scrapes all three (up == 1);
#   5. its query for the VIP's packets returns one series per node, each
#      above 0, and every node that served requests has packets in the
#      per-(VIP, node) series summed over the cluster; the invalidation
#      families count the entries of the closed requests deleted; every
#      node's connection-table census, taken at every scrape, counts the
#      flows of 30 open connections;
#   6. every node reports three gossip members alive and its app healthy.
# Prometheus keeps its data in the run's temp dir; the teardown of lib.sh
# ends it with everything else, also on failure.
# Prints "1..0 # SKIP reason" when the machine lacks root, a kernel feature,
# prometheus or promtool (Debian package prometheus).
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

plan=6
MIXLB_METRICS_PORT=9650
PROM_PORT=9090
PROM_PID=""
LOAD_SECONDS=3
HTTP_VIP_LABEL="$MIXLB_VIP:$MIXLB_HTTP_PORT/tcp"
HTTP_VIP6_LABEL="[$MIXLB_VIP6]:$MIXLB_HTTP_PORT/tcp"

metrics_address() { printf '%s:%s' "$(mixlb_addr "$1")" "$MIXLB_METRICS_PORT"; }

# ---------------------------------------------------------------- prometheus

# prom_start: prometheus in the router's namespace, scraping each sidecar
# every second, its API on the router's 127.0.0.1.
prom_start() {
	local dir=$MIXLB_TMP/prometheus n targets="" i
	mkdir -p "$dir/data" || return 1
	for n in "${MIXLB_NODES[@]}"; do
		targets+="${targets:+, }'$(metrics_address "$n")'"
	done
	cat >"$dir/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: mixlb
    static_configs:
      - targets: [$targets]
EOF
	nsenter --net="$(mixlb_netns router)" -- prometheus --config.file="$dir/prometheus.yml" \
		--storage.tsdb.path="$dir/data" --web.listen-address="127.0.0.1:$PROM_PORT" \
		--log.level=warn >"$dir/log" 2>&1 &
	PROM_PID=$!
	MIXLB_OTHER_PIDS+=("$PROM_PID")
	for ((i = 0; i < 100; i++)); do
		mixlb_in router curl -sf "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null 2>&1 && return 0
		mixlb_alive "$PROM_PID" || break
		sleep 0.1
	done
	mixlb_log_file "$dir/log" 20
	mixlb_fail "prometheus did not become ready"
}

# prom_query EXPR: the instant query's result, one "instance labels value"
# line per series (labels other than instance and job as name=value,...).
prom_query() {
	mixlb_in router curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
		"$MIXLB_PYTHON" -c '
import json, sys
d = json.load(sys.stdin)
if d.get("status") != "success":
    raise SystemExit("query failed: %s" % d)
for r in d["data"]["result"]:
    m = r["metric"]
    rest = ",".join("%s=%s" % (k, v) for k, v in sorted(m.items()) if k not in ("instance", "job", "__name__"))
    print(m.get("instance", "-"), rest or "-", r["value"][1])
'
}

# prom_wait EXPR SERIES OP VALUE TIMEOUT_S: polls the query until it returns
# SERIES series, each with a value OP (eq or gt) VALUE; PROM_LAST holds the
# last answer.
prom_wait() {
	local expr=$1 series=$2 op=$3 value=$4 timeout=$5 start
	start=$(mixlb_now_ms)
	PROM_LAST=""
	while [ $(($(mixlb_now_ms) - start)) -lt $((timeout * 1000)) ]; do
		if PROM_LAST=$(prom_query "$expr" 2>&1) &&
			awk -v series="$series" -v op="$op" -v want="$value" '
				{ n++; if (op == "eq" ? $3 + 0 != want + 0 : $3 + 0 <= want + 0) bad = 1 }
				END { exit !(n == series && !bad) }' <<<"$PROM_LAST"; then
			return 0
		fi
		sleep 0.5
	done
	return 1
}

# ---------------------------------------------------------------- scenarios

scenario_up() {
	local start
	start=$(mixlb_now_ms)
	mixlb_cluster_up || return 1
	mixlb_log "cluster up in $(($(mixlb_now_ms) - start)) ms (run prefix $MIXLB_P), metrics on port $MIXLB_METRICS_PORT of each node address"
}

# 2: /metrics on each node's address, named by status, accepted by promtool.
scenario_served() {
	local n rc=0 named out families
	for n in "${MIXLB_NODES[@]}"; do
		named=$(mixlb_status_get "$n" 'd.get("metrics", "(none)")') || { rc=1; continue; }
		[ "$named" = "$(metrics_address "$n")" ] ||
			{ mixlb_fail "$n's status names metrics '$named', not $(metrics_address "$n")"; rc=1; }
		if ! mixlb_in router curl -sf "http://$(metrics_address "$n")/metrics" >"$MIXLB_TMP/$n.metrics"; then
			mixlb_fail "GET http://$(metrics_address "$n")/metrics from the router failed"
			rc=1
			continue
		fi
		if ! out=$(promtool check metrics <"$MIXLB_TMP/$n.metrics" 2>&1); then
			mixlb_fail "promtool check metrics refuses $n's metrics:"
			mixlb_log "  ${out//$'\n'/$'\n'  }"
			rc=1
		elif [ -n "$out" ]; then
			mixlb_fail "promtool check metrics has remarks on $n's metrics: $out"
			rc=1
		fi
		families=$(grep -c '^# TYPE ' "$MIXLB_TMP/$n.metrics")
		mixlb_log "$n: /metrics at $named, $families families, $(wc -c <"$MIXLB_TMP/$n.metrics") bytes; promtool: ok"
	done
	return $rc
}

# 3: HTTP requests through both VIPs from the client.
scenario_traffic() {
	local vip out summary rc=0
	for vip in "$MIXLB_VIP:$MIXLB_HTTP_PORT" "[$MIXLB_VIP6]:$MIXLB_HTTP_PORT"; do
		out=$MIXLB_TMP/load.${vip//[^0-9a-f]/_}
		nsenter --net="$(mixlb_netns client)" -- "$MIXLB_TESTNODE" load --to "$vip" --workers 3 \
			--seconds "$LOAD_SECONDS" --pause-ms 20 >"$out" 2>&1
		summary=$(grep '^load ' "$out")
		mixlb_log "$vip: ${summary:-no summary}"
		if [ -z "$summary" ]; then
			mixlb_log_file "$out" 10
			mixlb_fail "the request loop to $vip printed no summary"
			rc=1
			continue
		fi
		# load requests N ok K failed F ...
		[ "$(awk '{ print $7 }' <<<"$summary")" = 0 ] || { mixlb_fail "requests to $vip failed"; rc=1; }
		[ "$(awk '{ print $3 }' <<<"$summary")" -gt 30 ] || { mixlb_fail "too few requests to $vip"; rc=1; }
	done
	return $rc
}

# 4: prometheus scrapes all three sidecars.
scenario_scraped() {
	prom_start || return 1
	if ! prom_wait 'up{job="mixlb"}' 3 eq 1 20; then
		mixlb_fail "up{job=\"mixlb\"} is not 1 for three targets: ${PROM_LAST//$'\n'/; }"
		mixlb_log_file "$MIXLB_TMP/prometheus/log" 10
		return 1
	fi
	mixlb_log "prometheus (pid $PROM_PID, router namespace) scrapes: ${PROM_LAST//$'\n'/; }"
}

# 5: the VIP's packets, one series per node, and per (VIP, node) for every
# node that served requests. Prometheus scrapes each second; the series are
# waited for until they show the traffic of scenario 3.
scenario_packets() {
	local rc=0 vip expr n served
	for vip in "$HTTP_VIP_LABEL" "$HTTP_VIP6_LABEL"; do
		expr="sum by (instance) (mixlb_vip_packets_total{vip=\"$vip\"})"
		if prom_wait "$expr" 3 gt 0 15; then
			mixlb_log "$expr: ${PROM_LAST//$'\n'/; }"
		else
			mixlb_fail "$expr is not one series above 0 per node: ${PROM_LAST//$'\n'/; }"
			rc=1
		fi
	done
	# Who served the requests, by the answers the client got.
	served=$(grep -h '^load ' "$MIXLB_TMP"/load.* | grep -o 'mix[0-9]*=[1-9][0-9]*' | cut -d= -f1 | sort -u)
	expr="sum by (node) (mixlb_vip_node_packets_total{vip=\"$HTTP_VIP_LABEL\"})"
	if ! PROM_LAST=$(prom_query "$expr" 2>&1); then
		mixlb_fail "query $expr: $PROM_LAST"
		return 1
	fi
	mixlb_log "$expr: ${PROM_LAST//$'\n'/; }"
	for n in $served; do
		awk -v n="node=$n" '$2 == n && $3 > 0 { found = 1 } END { exit !found }' <<<"$PROM_LAST" ||
			{ mixlb_fail "$n served requests to $HTTP_VIP_LABEL but has no packets in $expr"; rc=1; }
	done
	# The closed flows of scenario 3 left no entry (close tracking and
	# invalidation); the invalidation families count what they did.
	expr='sum(mixlb_invalidation_flows_total{outcome="applied"})'
	if prom_wait "$expr" 1 gt 0 10; then
		mixlb_log "$expr: ${PROM_LAST//$'\n'/; }"
	else
		mixlb_fail "$expr is not above 0: ${PROM_LAST//$'\n'/; }"
		rc=1
	fi
	# The census runs at each scrape (on its own thread): a series per node
	# that counts the flows of 30 open connections, which enter at every
	# node by the router's ECMP.
	local hold=$MIXLB_TMP/census.hold
	nsenter --net="$(mixlb_netns client)" -- "$MIXLB_TESTNODE" hold-many --connect "$MIXLB_VIP:$MIXLB_LINE_PORT" \
		--connections 30 --seconds 12 --interval-ms 500 >"$hold" 2>&1 &
	local hold_pid=$!
	MIXLB_OTHER_PIDS+=("$hold_pid")
	expr='mixlb_conntrack_entries'
	if prom_wait "$expr" 3 gt 0 10; then
		mixlb_log "$expr: ${PROM_LAST//$'\n'/; }"
	else
		mixlb_fail "$expr is not one series above 0 per node: ${PROM_LAST//$'\n'/; }"
		rc=1
	fi
	wait "$hold_pid" || { mixlb_log_file "$hold" 5; mixlb_fail "the open connections failed"; rc=1; }
	return $rc
}

# 6: gossip's view and the service checks, as every node reports them.
scenario_members() {
	local rc=0 expr
	expr='mixlb_gossip_members{state="alive"}'
	if prom_wait "$expr" 3 eq 3 10; then
		mixlb_log "$expr: ${PROM_LAST//$'\n'/; }"
	else
		mixlb_fail "$expr is not 3 on every node: ${PROM_LAST//$'\n'/; }"
		rc=1
	fi
	# One check per service: the HTTP port of the IPv4 VIP, on every node.
	expr="mixlb_health_check_healthy{service=\"$MIXLB_VIP:$MIXLB_HTTP_PORT/tcp\"}"
	if prom_wait "$expr" 3 eq 1 10; then
		mixlb_log "$expr: ${PROM_LAST//$'\n'/; }"
	else
		mixlb_fail "$expr is not 1 on every node: ${PROM_LAST//$'\n'/; }"
		rc=1
	fi
	return $rc
}

# run DESCRIPTION FUNCTION: one scenario; on failure the end of the logs.
run() {
	local desc=$1 rc start
	shift
	start=$(mixlb_now_ms)
	"$@"
	rc=$?
	mixlb_log "($(($(mixlb_now_ms) - start)) ms)"
	mixlb_tap $rc "$desc"
}

# ---------------------------------------------------------------- main

start_ms=$(mixlb_now_ms)
mixlb_tap_start "$plan" "${1:-}" prometheus promtool || exit "$MIXLB_TAP_EXIT"
mixlb_tap_up scenario_up
run "2: every sidecar serves /metrics on its node address, status names it, promtool accepts it" \
	scenario_served
run "3: HTTP requests through the IPv4 and IPv6 VIPs all succeed" scenario_traffic
run "4: a real prometheus scrapes the three sidecars" scenario_scraped
run "5: per-VIP packets: one series per node, each above 0; every serving node has per-(VIP, node) packets; invalidations counted; census counts open flows" \
	scenario_packets
run "6: every node reports 3 gossip members alive and its HTTP service check healthy" scenario_members
mixlb_tap_end "$start_ms"
