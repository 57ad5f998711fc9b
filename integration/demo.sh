#!/usr/bin/env bash
# mixlb demo (./dev demo): the integration topology — a client, an ECMP router
# and three mix nodes, each running the app and the real sidecar — then 100
# requests to the VIP, a table of which node served each, one request to each
# of the IPv6 and UDP services, mix1's status, and a teardown of everything it
# made (also on Ctrl-C or failure).
#
#   integration/demo.sh BUILD_DIR [--containers]
#
# --containers: each node's app and sidecar run in podman containers, from
# the images containers/build-image.sh builds, played by podman-compose from
# containers/compose.yaml on the demo's namespaces.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

MIXLB_LOG_PREFIX="  "
requests=100

build=${1:-}
containers=0
case "${2:-}" in
"") ;;
--containers) containers=1 ;;
*)
	echo "usage: $0 BUILD_DIR [--containers]" >&2
	exit 2
	;;
esac
if [ -z "$build" ]; then
	echo "usage: $0 BUILD_DIR [--containers]" >&2
	exit 2
fi
mixlb_init "$build" || exit 1
if ! reason=$(mixlb_probe); then
	echo "demo: cannot run here: $reason" >&2
	exit 1
fi
mixlb_claim || exit 1

echo "mixlb demo: client -> router (ECMP over ${MIXLB_NODES[*]}) -> VIPs $MIXLB_VIP and $MIXLB_VIP6"
up=mixlb_cluster_up
if [ $containers = 1 ]; then
	for tool in podman podman-compose; do
		command -v "$tool" >/dev/null || { echo "demo: $tool is not installed (./dev installs it)" >&2; exit 1; }
	done
	echo "building the container images (cached) ..."
	mixlb_containers_init || exit 1
	up=mixlb_cluster_up_compose
fi
echo "starting the topology, the apps and the sidecars (run prefix $MIXLB_P) ..."
if ! $up; then
	echo "demo: the cluster did not come up" >&2
	exit 1
fi
modes=""
for n in "${MIXLB_NODES[@]}"; do
	modes+="$n=$(mixlb_status_get "$n" 'd["xdp_mode"]') "
done
echo "ready; XDP mode per node: $modes"
if [ $containers = 1 ]; then
	echo "containers (podman-compose project $MIXLB_P-lab):"
	podman ps --filter "label=io.podman.compose.project=$MIXLB_P-lab" \
		--format '  {{.Names}}  {{.Image}}  {{.Status}}'
fi
echo

dir=$MIXLB_TMP/demo
mkdir -p "$dir"
mixlb_in client curl -s --parallel --parallel-max 8 --connect-timeout 2 --max-time 3 \
	-o "$dir/#1" "http://$MIXLB_VIP/?r=[1-$requests]" 2>/dev/null

declare -A total=()
failed=0
echo "$requests requests to http://$MIXLB_VIP/ from the client — request number: node"
for ((row = 0; row < requests; row += 10)); do
	line=$(printf '  %3d-%-3d ' $((row + 1)) $((row + 10)))
	for ((i = row + 1; i <= row + 10 && i <= requests; i++)); do
		body=""
		[ -f "$dir/$i" ] && body=$(cat "$dir/$i")
		if [[ "$body" =~ ^mix[0-9]+$ ]]; then
			total[$body]=$((${total[$body]:-0} + 1))
		else
			body=FAILED
			failed=$((failed + 1))
		fi
		line+=$(printf ' %-6s' "$body")
	done
	echo "$line"
done
echo
# The served totals say who answered; the XDP counters say how the packets
# got there (arrived and kept, arrived and forwarded, forwarded by a peer).
echo "per node:   served   XDP packets: local  forwarded  from_peer  dropped"
for n in "${MIXLB_NODES[@]}"; do
	counters=$(mixlb_status_get "$n" \
		'(vipsum("local_pkts"), vipsum("fwd_pkts"), vipsum("from_peer_pkts"), drops())') ||
		counters="? ? ? ?"
	# shellcheck disable=SC2086 # four numbers
	printf '  %-6s %8d %19s %10s %10s %8s\n' "$n" "${total[$n]:-0}" $counters
done
[ $failed -eq 0 ] || printf '  %-6s %8d\n' failed "$failed"
echo

# The same VIPs over IPv6 and UDP: the node that answered, or FAILED.
udp_node() {
	local out
	out=$(mixlb_in client "$MIXLB_TESTNODE" udp --to "$1" --count 1 2>/dev/null) || { echo FAILED; return 1; }
	echo "${out##* }"
}
http6=$(mixlb_in client curl -s --connect-timeout 2 --max-time 3 "http://[$MIXLB_VIP6]/" 2>/dev/null)
[[ "$http6" =~ ^mix[0-9]+$ ]] || { http6=FAILED; failed=$((failed + 1)); }
udp4=$(udp_node "$MIXLB_VIP:$MIXLB_UDP_PORT") || failed=$((failed + 1))
udp6=$(udp_node "[$MIXLB_VIP6]:$MIXLB_UDP_PORT") || failed=$((failed + 1))
echo "and one each: http://[$MIXLB_VIP6]/: $http6, udp $MIXLB_VIP:$MIXLB_UDP_PORT: $udp4," \
	"udp [$MIXLB_VIP6]:$MIXLB_UDP_PORT: $udp6"
echo

echo "mixlbctl status (mix1):"
mixlb_ctl mix1 status | sed 's/^/  /'
echo
echo "mixlbctl members (mix1): the cluster as gossip sees it"
mixlb_ctl mix1 members | sed 's/^/  /'
echo
echo "tearing down ..."
[ $failed -eq 0 ]
