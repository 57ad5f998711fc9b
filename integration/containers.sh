#!/usr/bin/env bash
# mixlb's container integration test (meson test, protocol TAP; ./dev test
# containers).
#
#   integration/containers.sh BUILD_DIR
#
# The topology of integration/lib.sh (a client, an ECMP router, a switch and
# three mix nodes), with each node's app and sidecar run by podman
# (--runtime runc) in the node's namespace (--network ns:...), from the
# images containers/build-image.sh builds. The sidecar container runs as
# docs/deployment.md says: CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON only, the
# seccomp profile of containers/seccomp.py, the host's bpffs and the admin
# socket directory as volumes, the config as a read-only file and the keyring
# as a podman secret of mode 0400. Checks:
#   1. the cluster comes up in containers; mixlbctl on the host and in a
#      debug container (the image itself, sharing the socket volume) answer;
#   2. 300 requests through the VIP all succeed and every node serves;
#   3. `podman restart` of mix1's sidecar container under load: no request
#      fails and none of the 36 held connections breaks;
#   4. `podman stop` of mix2's app container: every node drops mix2 from the
#      VIP's backends within the health check's fall time (plus gossip), and
#      requests keep succeeding; `podman start` brings it back;
#   5. mix3 moves to a pod played by `podman kube play` from the podman form
#      of containers/kube/mixlb-pod.yaml: the pod's sidecar adopts mix3's
#      data path, mix3 rejoins, and the VIP is served by all three again;
#   6. the three nodes move to the lab of containers/compose.yaml, played by
#      podman-compose: every new sidecar adopts its node's data path, the
#      cluster is whole and 300 requests through the VIP all succeed;
#   7. containers/systemd/mixlb@.service passes `systemd-analyze verify`
#      without a warning (with ExecStart pointing at the build's mixlb).
# Everything the run makes (containers, pods, secrets, namespaces, pins) is
# removed at the end, also on failure. Prints "1..0 # SKIP reason" when the
# machine lacks root, podman or a kernel feature.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=clients.sh
source "$here/clients.sh"

plan=7
diag() { mixlb_log "$@"; }
fail() { mixlb_fail "$@"; }
now_ms() { mixlb_now_ms; }

# spread TAG: 300 HTTP requests to the VIP, 8 at a time: all must succeed
# and every node must serve some.
spread() {
	local dir=$MIXLB_TMP/$1 code body file ok=0 bad=0 n dist=""
	local -A served=()
	mkdir -p "$dir"
	mixlb_in client curl -s --parallel --parallel-max 8 --connect-timeout 2 --max-time 3 \
		-o "$dir/#1" -w '%{http_code} %{filename_effective}\n' \
		"http://$MIXLB_VIP/?r=[1-300]" >"$dir/results" 2>"$dir/curl.err"
	while read -r code file; do
		body=""
		[ -f "$file" ] && body=$(cat "$file")
		if [ "$code" = 200 ] && [[ "$body" =~ ^mix[0-9]+$ ]]; then
			ok=$((ok + 1))
			served[$body]=$((${served[$body]:-0} + 1))
		else
			bad=$((bad + 1))
		fi
	done <"$dir/results"
	for n in "${MIXLB_NODES[@]}"; do dist+="$n=${served[$n]:-0} "; done
	diag "300 requests to http://$MIXLB_VIP/: $ok answered, $bad failed; served by: ${dist% }"
	[ $ok -eq 300 ] || { fail "$((300 - ok)) of 300 requests failed"; return; }
	for n in "${MIXLB_NODES[@]}"; do
		[ "${served[$n]:-0}" -gt 0 ] || { fail "$n served none of the 300 requests"; return; }
	done
}

# wait_backends_without NODE TIMEOUT_S: every other node's backends for the
# VIP's HTTP port leave NODE out (MIXLB_WAITED_MS: how long it took).
backends_of_http() { mixlb_wait_backends_of "^$MIXLB_VIP:$MIXLB_HTTP_PORT/tcp" "$@"; }

scenario_up() {
	local start n modes="" out
	start=$(now_ms)
	mixlb_containers_init || return 1
	mixlb_cluster_up || return 1
	for n in "${MIXLB_NODES[@]}"; do
		modes+="$n=$(mixlb_status_get "$n" 'd["xdp_mode"]') "
	done
	diag "cluster up in containers in $(($(now_ms) - start)) ms; XDP mode: ${modes% }"
	# The sidecar's capabilities as the kernel sees them: exactly the three.
	out=$(podman exec "$(mixlb_container mix1 mixlb)" /usr/bin/mixlbctl -s "$(mixlb_socket mix1)" status --json 2>&1 |
		mixlb_json 'd["node"]') || { fail "mixlbctl inside the sidecar container: $out"; return 1; }
	[ "$out" = mix1 ] || { fail "mixlbctl inside the container answered '$out'"; return 1; }
	# A debug container: the same image with mixlbctl as its entry point,
	# nothing but the socket volume and no capability at all.
	out=$(podman run --rm --runtime runc --network none --cap-drop all \
		-v "$MIXLB_RUN_DIR:$MIXLB_RUN_DIR" --entrypoint /usr/bin/mixlbctl "$MIXLB_IMAGE" \
		-s "$(mixlb_socket mix2)" members 2>&1) || { fail "mixlbctl in a debug container: $out"; return 1; }
	diag "mixlbctl members from a debug container (no capabilities, only the socket volume):"
	mixlb_log "$out"
	local caps
	caps=$(podman inspect "$(mixlb_container mix1 mixlb)" --format '{{.EffectiveCaps}}')
	diag "the sidecar container's effective capabilities: $caps"
	[[ "$caps" == *CAP_BPF* && "$caps" == *CAP_NET_ADMIN* && "$caps" == *CAP_PERFMON* && "$caps" != *SYS_ADMIN* ]] ||
		{ fail "the sidecar runs with $caps"; return 1; }
	# With those three, the invalidation program loads too.
	out=$(mixlb_ctl mix1 stats --json | mixlb_json 'd.get("invalidation_apply", "")')
	[ "$out" = kernel ] || { fail "the sidecar in its container applies invalidations '$out', not in the kernel"; return 1; }
}

scenario_spread() { spread spread; }

# 3: podman restart of mix1's sidecar container under load.
scenario_restart() {
	local n=mix1 rc=0 t0 t1 link
	clients_start r "$n" || return 1
	link=$(mixlb_xdp_link_id "$n")
	t0=$(now_ms)
	podman restart -t 10 "$(mixlb_container "$n" mixlb)" >/dev/null || { fail "podman restart failed"; rc=1; }
	t1=$(now_ms)
	mixlb_wait_ready "$n" || rc=1
	mixlb_wait_backends mix1,mix2,mix3 10 "${MIXLB_NODES[@]}" || rc=1
	diag "podman restart took $((t1 - t0)) ms; ready, and in every node's backends, $(($(now_ms) - t0)) ms after it began"
	[ "$(mixlb_xdp_link_id "$n")" = "$link" ] || { fail "the XDP link changed ($link -> $(mixlb_xdp_link_id "$n"))"; rc=1; }
	grep -q "adopted pinned maps" "$(mixlb_sidecar_log "$n")" ||
		{ fail "the restarted sidecar did not adopt the pinned maps"; rc=1; }
	sleep 1
	clients_stop r || rc=1
	diag "figures: podman restart of $n's sidecar: $LOAD_TOTAL requests, $LOAD_FAILED failed; $HOLD_COUNT held ($HELD_VIA on $n through a peer), $HELD_BROKEN broken"
	return $rc
}

# failures_since TAG FROM_MS: how many of the loop's requests started at or
# after FROM_MS (epoch ms) failed.
failures_since() {
	awk -v from="$2" '$1 == "req" && $2 >= from && $5 == "-" { n++ } END { print n + 0 }' "$MIXLB_TMP/$1.load"
}

# 4: podman stop of mix2's app container, found out by the health checks;
# then the same with a drain first, the way to stop an app without a failed
# request.
scenario_app_stop() {
	local n=mix2 rc=0 t0 gone bound before after
	# fall = 2 checks of 200 ms (lib.sh's [health]), plus the gossip of the
	# change: a second is typical, five is the bound.
	bound=5
	load_start a
	sleep 1
	t0=$(now_ms)
	podman stop -t 10 "$(mixlb_container "$n" app)" >/dev/null || { fail "podman stop failed"; rc=1; }
	backends_of_http mix1,mix3 "$bound" "${MIXLB_NODES[@]}" || rc=1
	gone=$(now_ms)
	diag "$n's app stopped: every node dropped $n from $MIXLB_VIP:$MIXLB_HTTP_PORT within $((gone - t0)) ms of the stop"
	sleep 2
	podman start "$(mixlb_container "$n" app)" >/dev/null || { fail "podman start failed"; rc=1; }
	backends_of_http mix1,mix2,mix3 10 "${MIXLB_NODES[@]}" || rc=1
	diag "$n's app started again: back in every node's backends within $MIXLB_WAITED_MS ms"
	sleep 1
	load_stop a >/dev/null
	before=$(($(failures_since a 0) - $(failures_since a "$gone")))
	after=$(failures_since a "$gone")
	diag "figures: podman stop/start of $n's app: $LOAD_TOTAL requests; $before refused between the stop and" \
		"the last node dropping $n ($((gone - t0)) ms), $after failed after it"
	[ "$after" -eq 0 ] || { fail "$after requests failed after every node had dropped $n"; rc=1; }

	# The procedure of docs/deployment.md: drain, stop, start, undrain.
	load_start b
	sleep 1
	mixlb_ctl "$n" drain >/dev/null || { fail "mixlbctl drain failed"; rc=1; }
	backends_of_http mix1,mix3 "$bound" "${MIXLB_NODES[@]}" || rc=1
	podman stop -t 10 "$(mixlb_container "$n" app)" >/dev/null || { fail "podman stop failed"; rc=1; }
	sleep 1
	podman start "$(mixlb_container "$n" app)" >/dev/null || { fail "podman start failed"; rc=1; }
	sleep 1
	mixlb_ctl "$n" undrain >/dev/null || { fail "mixlbctl undrain failed"; rc=1; }
	backends_of_http mix1,mix2,mix3 10 "${MIXLB_NODES[@]}" || rc=1
	sleep 1
	load_stop b || rc=1
	diag "figures: drain, podman stop/start of $n's app, undrain: $LOAD_TOTAL requests, $LOAD_FAILED failed"
	return $rc
}

# 5: mix3 moves to a pod played from the manifest.
scenario_kube() {
	local n=mix3 rc=0 yaml=$MIXLB_TMP/pod.yaml pod t0 config secret
	pod=$MIXLB_P-$n
	config=$MIXLB_TMP/$n.pod.toml
	secret=$MIXLB_TMP/$n.secret
	# The manifest's paths: the run directory at /run/mixlb, the keyring in
	# a directory of its own (the Secret's stand-in, see podman-form.py).
	sed "s#$MIXLB_RUN_DIR#/run/mixlb#g" "$(mixlb_config_path "$n")" >"$config" || return 1
	mkdir -m 0700 "$secret" && install -m 0400 "$(mixlb_keyring "$n")" "$secret/keyring" || return 1
	"$MIXLB_PYTHON" "$MIXLB_SOURCE/containers/kube/podman-form.py" \
		--node "$n" --name "$pod" --image "$MIXLB_IMAGE" --app-image "$MIXLB_APP_IMAGE" \
		--config "$config" --run-dir "$MIXLB_RUN_DIR" \
		--keyring-dir "$secret" \
		"$MIXLB_SOURCE/containers/kube/mixlb-pod.yaml" >"$yaml" || { fail "cannot write the podman form"; return 1; }
	t0=$(now_ms)
	# The containers go (the sidecar with SIGTERM: its data path stays), the
	# pod comes: the new sidecar adopts what the old one left. The pod's
	# containers take the same names (pod name + container name).
	podman rm -f -t 10 "$(mixlb_container "$n" mixlb)" "$(mixlb_container "$n" app)" >/dev/null || rc=1
	MIXLB_PODS+=("$pod")
	# hostNetwork: the namespace podman runs in, here the node's.
	if ! nsenter --net="$(mixlb_netns "$n")" -- podman kube play \
		--seccomp-profile-root "$(dirname "$MIXLB_SECCOMP")" "$yaml" >"$MIXLB_TMP/kube.out" 2>&1; then
		mixlb_log_file "$MIXLB_TMP/kube.out" 10
		fail "podman kube play failed"
		return 1
	fi
	mixlb_wait_ready "$n" || rc=1
	mixlb_wait_backends mix1,mix2,mix3 15 "${MIXLB_NODES[@]}" || rc=1
	diag "$n's pod played: ready and in every node's backends $(($(now_ms) - t0)) ms after the containers were stopped"
	podman pod ps --filter "name=$pod" --format '{{.Name}} {{.Status}} {{.NumberOfContainers}} containers' | while read -r line; do diag "pod: $line"; done
	local caps
	caps=$(podman inspect "$(mixlb_container "$n" mixlb)" --format '{{.EffectiveCaps}}')
	diag "the pod's sidecar: capabilities $caps"
	[ "$caps" = "[CAP_BPF CAP_NET_ADMIN CAP_PERFMON]" ] || { fail "the pod's sidecar runs with $caps"; rc=1; }
	grep -q "adopted pinned maps" < <(podman logs "$(mixlb_container "$n" mixlb)" 2>&1) ||
		{ fail "the pod's sidecar did not adopt $n's data path"; rc=1; }
	spread kube || rc=1
	return $rc
}

# 6: the compose lab takes over all three nodes.
scenario_compose() {
	local n rc=0 t0
	t0=$(now_ms)
	podman pod rm -f --ignore -t 10 "$MIXLB_P-mix3" >/dev/null || rc=1
	for n in mix1 mix2; do
		podman rm -f --ignore -t 10 "$(mixlb_container "$n" mixlb)" "$(mixlb_container "$n" app)" >/dev/null || rc=1
	done
	mixlb_compose_up || return 1
	for n in "${MIXLB_NODES[@]}"; do
		mixlb_wait_ready "$n" || return 1
		grep -q "adopted pinned maps" < <(podman logs "$(mixlb_container "$n" mixlb)" 2>&1) ||
			{ fail "$n's sidecar in the lab did not adopt its data path"; rc=1; }
	done
	diag "the compose lab is up and whole $(($(now_ms) - t0)) ms after the old containers began to stop:"
	podman ps --filter "label=io.podman.compose.project=$MIXLB_P-lab" --format '{{.Names}} {{.Status}}' |
		while read -r line; do diag "  $line"; done
	spread compose || rc=1
	return $rc
}

# 7: the systemd unit, checked by systemd itself.
scenario_unit() {
	local dir=$MIXLB_TMP/systemd out
	mkdir -p "$dir"
	sed "s#/usr/local/bin/mixlb#$MIXLB_SIDECAR#" "$MIXLB_SOURCE/containers/systemd/mixlb@.service" >"$dir/mixlb@.service"
	out=$(systemd-analyze verify "$dir/mixlb@mix1.service" 2>&1) || { fail "systemd-analyze verify: $out"; return 1; }
	[ -z "$out" ] || { fail "systemd-analyze verify warns: $out"; return 1; }
	diag "systemd-analyze verify mixlb@mix1.service: no warning"
}

run() {
	local desc=$1 rc start
	shift
	start=$(now_ms)
	"$@"
	rc=$?
	diag "($(($(now_ms) - start)) ms)"
	mixlb_tap $rc "$desc"
}

start_ms=$(now_ms)
mixlb_tap_start "$plan" "${1:-}" podman runc podman-compose systemd-analyze bpftool || exit "$MIXLB_TAP_EXIT"
mixlb_tap_up scenario_up
run "300 requests through the VIP served by the containers: all succeed, every node serves" scenario_spread
run "podman restart of mix1's sidecar container under load: no request failed, no held connection broke" scenario_restart
run "podman stop of mix2's app container: every node drops mix2 within the fall time, requests succeed; back after podman start" scenario_app_stop
run "mix3 moved to a pod played by podman kube play from the manifest: adopted, rejoined, serving" scenario_kube
run "the three nodes moved to the podman-compose lab: every sidecar adopted its data path, 300 requests succeed" scenario_compose
run "containers/systemd/mixlb@.service passes systemd-analyze verify" scenario_unit
mixlb_tap_end "$start_ms"
