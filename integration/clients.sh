# shellcheck shell=bash
# The clients of the load scenarios (integration/lifecycle.sh and
# integration/containers.sh), from the client namespace of lib.sh's topology:
# held connections to the VIP's line port (mixlb-testnode hold-many) whose
# ingress node is found in the connection tables, and a request loop of new
# HTTP connections (mixlb-testnode load). The caller sources lib.sh first and
# defines diag and fail; HOLD_COUNT, LOAD_WORKERS and LOAD_PAUSE_MS size the
# load.

HOLD_COUNT=${HOLD_COUNT:-36}
LOAD_WORKERS=${LOAD_WORKERS:-3}
LOAD_PAUSE_MS=${LOAD_PAUSE_MS:-20}

# holds_start TAG: HOLD_COUNT held connections in the background (HOLDS_PID),
# waits until every one has had its first answer, then finds each one's
# ingress node: writes $MIXLB_TMP/TAG.conns, "sport ingress server" a line.
holds_start() {
	local tag=$1 out=$MIXLB_TMP/$1.hold i opened=0
	nsenter --net="$(mixlb_netns client)" -- "$MIXLB_TESTNODE" hold-many \
		--connect "$MIXLB_VIP:$MIXLB_LINE_PORT" --connections "$HOLD_COUNT" --seconds 120 \
		--interval-ms 200 >"$out" 2>&1 &
	HOLDS_PID=$!
	MIXLB_OTHER_PIDS+=("$HOLDS_PID")
	for ((i = 0; i < 100; i++)); do
		opened=$(grep -c '^open ' "$out" 2>/dev/null)
		opened=${opened:-0}
		[ "$opened" -ge "$HOLD_COUNT" ] && break
		grep -qs '^broken ' "$out" && break
		mixlb_alive "$HOLDS_PID" || break
		sleep 0.1
	done
	if [ "$opened" -lt "$HOLD_COUNT" ]; then
		mixlb_log_file "$out" 10
		fail "only $opened of $HOLD_COUNT held connections opened"
		return
	fi
	holds_ingress "$tag"
}

# holds_ingress TAG: each held connection's ingress node is the one whose
# connection table has its 5-tuple refreshed within the last second (an older
# entry with the same source port is a connection of an earlier scenario).
holds_ingress() {
	local tag=$1 n conns=$MIXLB_TMP/$1.conns
	: >"$MIXLB_TMP/$tag.ct"
	for n in "${MIXLB_NODES[@]}"; do
		mixlb_ct_flows "$n" | awk -v n="$n" -v dport="$MIXLB_LINE_PORT" \
			'$1 == 6 && $2 == "10.0.1.2" && $4 == dport && $7 < 1000 { print $3, n }' \
			>>"$MIXLB_TMP/$tag.ct" || { fail "cannot read $n's connection table"; return; }
	done
	awk 'NR == FNR { ingress[$1] = ingress[$1] (ingress[$1] == "" ? "" : "+") $2; next }
		$1 == "open" { print $4, (ingress[$4] == "" ? "-" : ingress[$4]), $6 }' \
		"$MIXLB_TMP/$tag.ct" "$MIXLB_TMP/$tag.hold" >"$conns"
	local unknown
	unknown=$(awk '$2 == "-" || $2 ~ /\+/ { printf "%s(%s) ", $1, $2 }' "$conns")
	[ -z "$unknown" ] || { fail "no single ingress node for the connections from ports $unknown"; return; }
	diag "$(holds_spread "$tag")"
	for n in "${MIXLB_NODES[@]}"; do
		[ "$(awk -v n="$n" '$2 == n' "$conns" | wc -l)" -gt 0 ] ||
			{ fail "no held connection enters through $n"; return; }
	done
}

# holds_spread TAG: one line on how the held connections enter and are served.
holds_spread() {
	awk -v nodes="${MIXLB_NODES[*]}" -v count="$HOLD_COUNT" '
		{ in_[$2]++; by[$3]++ }
		END {
			split(nodes, ns, " ")
			line = count " held connections; ingress:"
			for (i = 1; i in ns; i++) line = line " " ns[i] "=" in_[ns[i]] + 0
			line = line "; served by:"
			for (i = 1; i in ns; i++) line = line " " ns[i] "=" by[ns[i]] + 0
			print line
		}' "$MIXLB_TMP/$1.conns"
}

# holds_on TAG NODE: how many held connections enter through NODE (HELD_IN),
# are served by it (HELD_ON) and, of those, enter through a peer (HELD_VIA):
# the flows its peers forward to it.
holds_on() {
	read -r HELD_IN HELD_ON HELD_VIA < <(awk -v n="$2" '
		$2 == n { in_++ } $3 == n { on++; if ($2 != n) via++ } END { print in_ + 0, on + 0, via + 0 }' \
		"$MIXLB_TMP/$1.conns")
	diag "on $2: $HELD_IN held connections enter through it, $HELD_ON are served by it ($HELD_VIA of them entering through a peer)"
}

# holds_stop TAG: ends the held connections (SIGTERM: each closes with a FIN
# and waits for the server's) and counts them: HELD_BROKEN.
holds_stop() {
	local tag=$1 out=$MIXLB_TMP/$1.hold summary total ok stopped rc=0 sport node at trips reason
	HELD_BROKEN=""
	kill -TERM "$HOLDS_PID" 2>/dev/null
	wait "$HOLDS_PID"
	summary=$(grep '^held ' "$out")
	read -r _ total _ ok _ HELD_BROKEN _ stopped <<<"$summary"
	if [ -z "$summary" ]; then
		mixlb_log_file "$out" 10
		fail "hold-many printed no summary"
		HELD_BROKEN=$HOLD_COUNT
		return
	fi
	diag "held connections: $total, $ok kept working until the client closed them, $HELD_BROKEN broke"
	while read -r _ _ _ sport _ node _ at _ trips _ _ reason; do
		diag "  broken: sport $sport (ingress $(awk -v p="$sport" '$1 == p { print $2 }' \
			"$MIXLB_TMP/$tag.conns")), served by $node, at $at after $trips round trips: $reason"
	done < <(grep '^broken ' "$out" | head -10)
	[ "$HELD_BROKEN" -eq 0 ] || { fail "$HELD_BROKEN held connections broke"; rc=1; }
	[ "$stopped" = signal ] || { fail "the held connections ended (by $stopped) before the scenario did"; rc=1; }
	return $rc
}

# load_start TAG: the request loop, in the background (LOAD_PID).
load_start() {
	nsenter --net="$(mixlb_netns client)" -- "$MIXLB_TESTNODE" load \
		--to "$MIXLB_VIP:$MIXLB_HTTP_PORT" --workers "$LOAD_WORKERS" --seconds 120 \
		--pause-ms "$LOAD_PAUSE_MS" >"$MIXLB_TMP/$1.load" 2>&1 &
	LOAD_PID=$!
	MIXLB_OTHER_PIDS+=("$LOAD_PID")
}

# load_stop TAG: ends the request loop and reads its summary: LOAD_TOTAL,
# LOAD_FAILED. Fails if a request failed or the loop ended before the stop.
load_stop() {
	local out=$MIXLB_TMP/$1.load summary slowest over_1s stopped served at took sport reason
	LOAD_TOTAL=0
	LOAD_FAILED=""
	kill -TERM "$LOAD_PID" 2>/dev/null
	wait "$LOAD_PID"
	summary=$(grep '^load ' "$out")
	if [ -z "$summary" ]; then
		mixlb_log_file "$out" 10
		fail "the request loop printed no summary"
		return
	fi
	read -r _ _ LOAD_TOTAL _ _ _ LOAD_FAILED _ slowest _ over_1s _ stopped _ served <<<"$summary"
	diag "request loop: $LOAD_TOTAL new connections, $LOAD_FAILED failed, slowest ${slowest} ms," \
		"$over_1s took over 1 s; served by $served"
	awk '$1 == "req" && $5 == "-"' "$out" | head -5 | while read -r _ at took sport _ reason; do
		diag "  failed: at $at, source port $sport, after $took ms: $reason"
	done
	[ "$LOAD_FAILED" -eq 0 ] || { fail "$LOAD_FAILED of $LOAD_TOTAL requests failed"; return; }
	[ "$stopped" = signal ] || fail "the request loop ended by time, before the scenario did"
}

# load_window TAG FROM_MS TO_MS NODE: "N requests (K served by NODE)" of
# those the loop started between FROM_MS and TO_MS (epoch ms).
load_window() {
	awk -v from="$2" -v to="$3" -v n="$4" '$1 == "req" && $2 >= from && $2 < to { all++; if ($5 == n) on++ }
		END { printf "%d requests (%d served by %s)\n", all, on, n }' "$MIXLB_TMP/$1.load"
}

# clients_start TAG NODE: the held connections and the request loop, then
# how the held ones use NODE (holds_on).
clients_start() {
	holds_start "$1" || return 1
	load_start "$1"
	sleep 1
	holds_on "$1" "$2"
}

# clients_stop TAG: stops both; fails if either saw a failure.
clients_stop() {
	local rc=0
	load_stop "$1" || rc=1
	holds_stop "$1" || rc=1
	return $rc
}
