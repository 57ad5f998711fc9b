# shellcheck shell=bash
# The multi-node topology shared by integration/run.sh and integration/demo.sh.
#
#   client ns            router ns                      switch ns              mixN ns
#   10.0.1.2   [P-c] == [P-rc] 10.0.1.1
#   fd00:1::2                  fd00:1::1
#                              10.0.0.1 [P-rs] ==== [P-sr]-+
#                              fd00::1                     [P-br]-+- [P-s1] == [P-m1] 10.0.0.11 fd00::11
#                                                                 +- [P-s2] == [P-m2] 10.0.0.12 fd00::12
#                                                                 +- [P-s3] == [P-m3] 10.0.0.13 fd00::13
#
# Every link is dual-stack. The VIPs are 10.100.0.1 and fd00:100::1; each
# serves TCP ports 80 (HTTP) and 7000 (echoed lines) and UDP port 5300
# (datagram echo). The router reaches each VIP through an ECMP multipath route
# over the three mix nodes (layer-4 hash, for IPv4 and IPv6), as BGP anycast
# would; each mix node runs the app (mixlb-testnode serve) and the real mixlb
# sidecar, which puts the VIPs on lo. The sidecars know each other by their
# IPv4 node addresses only: L2 DSR forwards an IPv6 VIP packet to a peer found
# by its IPv4 address, since only the MACs change. The peer list is the gossip
# seed list; membership, app health and drain travel by gossip (encrypted with
# a keyring generated per run), with a 200 ms probe interval and a 200 ms app
# check so that failures are seen within seconds.
#
# IPv6 duplicate address detection is off in every namespace (and addresses
# are added nodad): a tentative address would leave the first seconds of a
# run without IPv6. Neighbour discovery happens on first use; the start-up
# reach check (one datagram from the router to every node, in both families)
# resolves the router's and the nodes' neighbours before any test traffic.
# Every switch-side veth end runs xdp_pass, because native XDP_TX on a veth
# needs an XDP program on the peer, and every veth has TX checksum offload off,
# because a frame sent back with XDP_TX keeps whatever checksum it carried.
#
# MIXLB_SWITCH picks how the switch forwards. bridge (the default): every
# frame crosses the bridge as an skb, on the host's CPUs. xdp: the switch
# ports run bpf/xdp_switch.bpf.c instead of xdp_pass, which sends a unicast
# frame for a known port's MAC straight to that port as an XDP frame, as a
# hardware switch would without the hosts' CPUs; broadcast, multicast and
# unknown destinations still go through the bridge. Its table is filled
# here from the MACs of the ports' peers, and the router's end gets
# xdp_pass, since a redirect into a veth needs an XDP program on its peer.
# `./dev bench e2e` runs on xdp (integration/e2e.sh says why).
#
# Everything a run creates carries a per-run prefix P ("mx" + 4 hex digits,
# claimed atomically by creating /run/mixlb-P), so the demo and a test run can
# share a machine. A script calls mixlb_init (build outputs, teardown trap),
# mixlb_probe (skip reasons) and mixlb_claim (prefix, temp dir) in that order;
# the EXIT/INT/TERM/PIPE trap tears everything down: processes, namespaces, the
# bpffs directory, the run and temp dirs.
#
# Commands run in a namespace through nsenter --net, never `ip netns exec`:
# the latter remounts /sys, which hides the sidecar's bpffs pins.
#
# Functions return non-zero on failure and say why through mixlb_log (a TAP
# diagnostic in run.sh, plain text in demo.sh); none of them exits the shell.

MIXLB_VIP=10.100.0.1
MIXLB_VIP6=fd00:100::1
MIXLB_HTTP_PORT=80
MIXLB_LINE_PORT=7000
MIXLB_UDP_PORT=5300
MIXLB_NODES=(mix1 mix2 mix3)
MIXLB_LOG_PREFIX=${MIXLB_LOG_PREFIX-"# "}
MIXLB_XDP_MODE=${MIXLB_XDP_MODE:-auto}   # auto: native, or generic reported as a fallback
MIXLB_SWITCH=${MIXLB_SWITCH:-bridge}     # bridge, or xdp: known unicast forwarded in XDP
MIXLB_READY_TIMEOUT=${MIXLB_READY_TIMEOUT:-20}
MIXLB_PROBE_MS=${MIXLB_PROBE_MS:-200}     # gossip probe interval
# Set: each sidecar's /metrics listens on its node address and this port
# (reachable from the router); unset: the default, 127.0.0.1:9650 inside
# the node's namespace.
MIXLB_METRICS_PORT=${MIXLB_METRICS_PORT:-}
# 1: each node's app and sidecar run as podman containers (images from
# containers/build-image.sh) in the node's namespace instead of processes;
# see mixlb_containers_init.
MIXLB_CONTAINER_MODE=${MIXLB_CONTAINER_MODE:-0}
MIXLB_IMAGE=""
MIXLB_APP_IMAGE=""
MIXLB_SECCOMP=""
# Names of the containers, pods and secrets this run made (removed at teardown).
MIXLB_CONTAINERS=()
MIXLB_PODS=()
MIXLB_SECRETS=()
MIXLB_COMPOSE_PROJECTS=()
MIXLB_KUBE_NETWORK_NEW=0
MIXLB_PAUSE_IMAGE_NEW=0

MIXLB_P=""
MIXLB_TMP=""
MIXLB_RUN_DIR=""
MIXLB_BPFFS=""
MIXLB_PYTHON=""
MIXLB_NETNS_CREATED=()
MIXLB_OTHER_PIDS=()
declare -A MIXLB_SIDECAR_PID=()
declare -A MIXLB_SERVER_PID=()
# A node whose sidecar finds its peers by name: MIXLB_SEED_NAME[NODE] goes to
# its gossip.seeds instead of the others' [[peer]] entries, and resolves
# through the hosts file MIXLB_SEED_HOSTS[NODE], put on /etc/hosts in a mount
# namespace of the sidecar's own.
declare -A MIXLB_SEED_NAME=()
declare -A MIXLB_SEED_HOSTS=()
MIXLB_SERVING=("${MIXLB_NODES[@]}")  # the nodes mixlb_wait_ready expects in the tables
MIXLB_TORN_DOWN=0

mixlb_log() {
	local line
	while IFS= read -r line; do
		printf '%s%s\n' "$MIXLB_LOG_PREFIX" "$line"
	done <<<"$*"
}

# Prints a file as log lines, indented, at most its last $2 lines.
mixlb_log_file() {
	local file=$1 max=${2:-40}
	[ -s "$file" ] || { mixlb_log "  ($file is empty)"; return 0; }
	tail -n "$max" "$file" | while IFS= read -r line; do
		printf '%s  | %s\n' "$MIXLB_LOG_PREFIX" "$line"
	done
}

# Runs a command; on failure logs it with its output and returns its status.
mixlb_do() {
	local out rc
	out=$("$@" 2>&1)
	rc=$?
	if [ $rc -ne 0 ]; then
		mixlb_log "command failed ($rc): $*"
		[ -n "$out" ] && mixlb_log "  $out"
	fi
	return $rc
}

mixlb_ns() { printf '%s-%s' "$MIXLB_P" "$1"; }
mixlb_netns() { printf '/run/netns/%s-%s' "$MIXLB_P" "$1"; }

# mixlb_in NS CMD...: runs CMD inside namespace NS (client, router, switch, mixN).
# Not for background processes whose pid is needed: `mixlb_in ... &` forks a
# subshell, and $! would be that shell. Start those with a plain
# `nsenter --net="$(mixlb_netns NS)" -- CMD &`, which bash execs, so $! is CMD.
mixlb_in() {
	local ns=$1
	shift
	nsenter --net="$(mixlb_netns "$ns")" -- "$@"
}

# The node's uplink (inside its namespace) and its addresses on the segment.
mixlb_if() { printf '%s-m%s' "$MIXLB_P" "${1#mix}"; }
mixlb_addr() { printf '10.0.0.1%s' "${1#mix}"; }
mixlb_addr6() { printf 'fd00::1%s' "${1#mix}"; }

# mixlb_init BUILD_DIR: checks the build outputs and installs the teardown trap.
mixlb_init() {
	MIXLB_BUILD=$(cd "${1:?build dir}" 2>/dev/null && pwd) || {
		mixlb_log "no build directory '$1'"
		return 1
	}
	MIXLB_SOURCE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	MIXLB_SIDECAR=$MIXLB_BUILD/sidecar/mixlb
	MIXLB_CTL=$MIXLB_BUILD/sidecar/mixlbctl
	MIXLB_TESTNODE=$MIXLB_BUILD/integration/mixlb-testnode
	MIXLB_XDP_PASS=$MIXLB_BUILD/bpf/xdp_pass.o
	MIXLB_XDP_SWITCH=$MIXLB_BUILD/bpf/xdp_switch.o
	local f
	for f in "$MIXLB_SIDECAR" "$MIXLB_CTL" "$MIXLB_TESTNODE"; do
		[ -x "$f" ] || { mixlb_log "missing build output $f (run ninja)"; return 1; }
	done
	[ -f "$MIXLB_XDP_PASS" ] || { mixlb_log "missing build output $MIXLB_XDP_PASS"; return 1; }
	MIXLB_PYTHON=$(command -v /usr/bin/python3 || command -v python3 || true)

	trap 'mixlb__on_exit' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 141' PIPE
}

# mixlb_claim: claims a run prefix and makes the temp dir. Sets MIXLB_P,
# MIXLB_TMP, MIXLB_RUN_DIR, MIXLB_BPFFS.
mixlb_claim() {
	local try p
	for try in 1 2 3 4 5 6 7 8; do
		p=$(printf 'mx%04x' $(((RANDOM << 3 ^ $$ ^ try) & 0xffff)))
		if [ ! -e "/sys/fs/bpf/mixlb-$p" ] && mkdir -m 0700 "/run/mixlb-$p" 2>/dev/null; then
			MIXLB_P=$p
			break
		fi
	done
	[ -n "$MIXLB_P" ] || { mixlb_log "cannot claim a run prefix under /run"; return 1; }
	MIXLB_RUN_DIR=/run/mixlb-$MIXLB_P
	MIXLB_BPFFS=/sys/fs/bpf/mixlb-$MIXLB_P
	MIXLB_TMP=$(mktemp -d "${TMPDIR:-/tmp}/mixlb-$MIXLB_P.XXXXXX") || return 1
}

mixlb__on_exit() {
	local rc=$?
	mixlb_teardown
	exit $rc
}

# Prints why this machine cannot run the topology (and returns 1), or nothing.
# Only missing privileges, tools and kernel features count; anything else that
# goes wrong later is a failure, not a skip.
mixlb_probe() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "needs root (network namespaces, XDP, bpffs)"
		return 1
	fi
	local tool
	for tool in ip nsenter ethtool curl; do
		command -v "$tool" >/dev/null || { echo "$tool is not installed"; return 1; }
	done
	[ -n "$MIXLB_PYTHON" ] || { echo "python3 is not installed"; return 1; }
	# A new machine boots without a bpffs; mount one as the sidecar would.
	if [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != bpf_fs ]; then
		local out
		if ! out=$(mount -t bpf -o mode=0700 bpf /sys/fs/bpf 2>&1); then
			echo "no bpffs on /sys/fs/bpf and mounting one failed: $out"
			return 1
		fi
	fi
	# Probe names of our own: no prefix is claimed yet.
	local a=mixlb-probe-$$-a b=mixlb-probe-$$-b if_a=mxp$$a if_b=mxp$$b reason=""
	if ! ip netns add "$a" 2>/dev/null; then
		echo "cannot create network namespaces"
		return 1
	fi
	if ! ip netns add "$b" 2>/dev/null; then
		reason="cannot create network namespaces"
	elif ! ip -n "$a" link add "$if_a" type veth peer name "$if_b" netns "$b" 2>/dev/null; then
		reason="no veth support"
	elif ! ip -n "$a" link set dev "$if_a" up ||
		! ip -n "$a" link set dev "$if_a" xdpdrv obj "$MIXLB_XDP_PASS" sec xdp 2>/dev/null; then
		reason="cannot attach a native-mode XDP program to a veth"
	fi
	ip netns del "$a" 2>/dev/null
	ip netns del "$b" 2>/dev/null
	[ -z "$reason" ] || { echo "$reason"; return 1; }
	return 0
}

# A namespace, lo up, and no IPv6 DAD for the links made in it afterwards
# (the default applies to devices created later; "all" to the rest).
mixlb__add_ns() {
	mixlb_do ip netns add "$(mixlb_ns "$1")" || return 1
	MIXLB_NETNS_CREATED+=("$(mixlb_ns "$1")")
	mixlb__sysctl "$1" net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 || return 1
	mixlb_do ip -n "$(mixlb_ns "$1")" link set dev lo up
}

# mixlb__veth NS_A IF_A NS_B IF_B: a veth pair, up, TX checksum offload off.
mixlb__veth() {
	local ns_a=$1 if_a=$2 ns_b=$3 if_b=$4
	mixlb_do ip -n "$(mixlb_ns "$ns_a")" link add "$if_a" type veth peer name "$if_b" \
		netns "$(mixlb_ns "$ns_b")" || return 1
	mixlb_do mixlb_in "$ns_a" ethtool -K "$if_a" tx off || return 1
	mixlb_do mixlb_in "$ns_b" ethtool -K "$if_b" tx off || return 1
	mixlb_do ip -n "$(mixlb_ns "$ns_a")" link set dev "$if_a" up || return 1
	mixlb_do ip -n "$(mixlb_ns "$ns_b")" link set dev "$if_b" up
}

mixlb__sysctl() {
	local ns=$1
	shift
	mixlb_do mixlb_in "$ns" sysctl -q -w "$@"
}

# Builds namespaces, links, addresses and routes (no processes yet).
mixlb_topology_up() {
	local P=$MIXLB_P ns n
	for ns in client router switch "${MIXLB_NODES[@]}"; do
		mixlb__add_ns "$ns" || return 1
	done

	# client <-> router
	mixlb__veth client "$P-c" router "$P-rc" || return 1
	mixlb_do ip -n "$(mixlb_ns client)" addr add 10.0.1.2/24 dev "$P-c" || return 1
	mixlb_do ip -n "$(mixlb_ns client)" addr add fd00:1::2/64 dev "$P-c" nodad || return 1
	mixlb_do ip -n "$(mixlb_ns client)" route add default via 10.0.1.1 || return 1
	mixlb_do ip -n "$(mixlb_ns client)" -6 route add default via fd00:1::1 dev "$P-c" || return 1
	mixlb_do ip -n "$(mixlb_ns router)" addr add 10.0.1.1/24 dev "$P-rc" || return 1
	mixlb_do ip -n "$(mixlb_ns router)" addr add fd00:1::1/64 dev "$P-rc" nodad || return 1

	# router <-> switch, and the bridge. The switch only switches: with
	# br_netfilter in the kernel (built in here), every bridged IPv4 and IPv6
	# frame would also go through the switch namespace's IP hooks, with an
	# skb extension and a route lookup each -- host CPU that a hardware
	# switch does not take, which a frame forwarded between nodes paid twice.
	if mixlb_in switch test -e /proc/sys/net/bridge/bridge-nf-call-iptables; then
		mixlb__sysctl switch net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 \
			net.bridge.bridge-nf-call-arptables=0 || return 1
	fi
	mixlb_do ip -n "$(mixlb_ns switch)" link add "$P-br" type bridge stp_state 0 || return 1
	mixlb_do ip -n "$(mixlb_ns switch)" link set dev "$P-br" up || return 1
	mixlb__veth router "$P-rs" switch "$P-sr" || return 1
	mixlb_do ip -n "$(mixlb_ns router)" addr add 10.0.0.1/24 dev "$P-rs" || return 1
	mixlb_do ip -n "$(mixlb_ns router)" addr add fd00::1/64 dev "$P-rs" nodad || return 1
	mixlb__sysctl router net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1 \
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
		net.ipv6.conf.all.forwarding=1 net.ipv6.fib_multipath_hash_policy=1 || return 1

	# one veth per mix node, its switch end in the bridge with xdp_pass (or
	# the XDP switch)
	case $MIXLB_SWITCH in
	bridge) ;;
	xdp) mixlb__xdp_switch_load || return 1 ;;
	*) mixlb_log "MIXLB_SWITCH is '$MIXLB_SWITCH'; it must be bridge or xdp"; return 1 ;;
	esac
	for n in sr "${MIXLB_NODES[@]}"; do
		local sw_if=$P-sr
		if [ "$n" != sr ]; then
			sw_if=$P-s${n#mix}
			mixlb__veth switch "$sw_if" "$n" "$(mixlb_if "$n")" || return 1
		fi
		mixlb_do ip -n "$(mixlb_ns switch)" link set dev "$sw_if" master "$P-br" || return 1
		if [ "$MIXLB_SWITCH" = xdp ]; then
			mixlb__xdp_switch_port "$sw_if" || return 1
		else
			mixlb_do ip -n "$(mixlb_ns switch)" link set dev "$sw_if" xdpdrv obj "$MIXLB_XDP_PASS" sec xdp ||
				return 1
		fi
	done
	for n in "${MIXLB_NODES[@]}"; do
		mixlb_do ip -n "$(mixlb_ns "$n")" addr add "$(mixlb_addr "$n")/24" dev "$(mixlb_if "$n")" || return 1
		mixlb_do ip -n "$(mixlb_ns "$n")" addr add "$(mixlb_addr6 "$n")/64" dev "$(mixlb_if "$n")" nodad ||
			return 1
		mixlb_do ip -n "$(mixlb_ns "$n")" route add default via 10.0.0.1 || return 1
		mixlb_do ip -n "$(mixlb_ns "$n")" -6 route add default via fd00::1 dev "$(mixlb_if "$n")" || return 1
		mixlb__sysctl "$n" net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
			"net.ipv4.conf.lo.rp_filter=0" "net.ipv4.conf.$(mixlb_if "$n").rp_filter=0" || return 1
	done

	mixlb_route_via "${MIXLB_NODES[@]}"
}

# The XDP switch (MIXLB_SWITCH=xdp): its program and table, pinned under the
# run's bpffs directory (gone with it at teardown), and the router's end of
# its link ready to receive redirected frames.
mixlb__xdp_switch_load() {
	local dir=$MIXLB_BPFFS/switch
	mkdir -p "$dir" || return 1
	mixlb_do bpftool prog load "$MIXLB_XDP_SWITCH" "$dir/xdp_switch" type xdp pinmaps "$dir"
}

# mixlb__xdp_switch_port PORT: attaches the XDP switch to the switch port
# PORT and enters the MAC of PORT's peer (the router's or a node's end) in
# its table. Through nsenter, which keeps the bpffs pins in sight.
mixlb__xdp_switch_port() {
	local port=$1 dir=$MIXLB_BPFFS/switch peer_ns peer_if mac idx
	if [ "$port" = "$MIXLB_P-sr" ]; then
		peer_ns=router peer_if=$MIXLB_P-rs
	else
		peer_ns=mix${port##*-s} peer_if=$(mixlb_if "mix${port##*-s}")
	fi
	mixlb_do mixlb_in switch ip link set dev "$port" xdpdrv pinned "$dir/xdp_switch" || return 1
	# A veth takes redirected frames only while its peer polls with NAPI,
	# which GRO turns on (as does an XDP program, but a node's sidecar
	# attaches its own only once it runs, and not across a stop).
	mixlb_do mixlb_in "$peer_ns" ethtool -K "$peer_if" gro on || return 1
	mac=$(ip -n "$(mixlb_ns "$peer_ns")" -o link show dev "$peer_if" | grep -o 'link/ether [0-9a-f:]*')
	idx=$(ip -n "$(mixlb_ns switch)" -o link show dev "$port" | cut -d: -f1)
	if [[ ! "$mac" =~ ^link/ether\ ([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] || [[ ! "$idx" =~ ^[0-9]+$ ]]; then
		mixlb_log "the XDP switch cannot read $peer_if's MAC ($mac) or $port's ifindex ($idx)"
		return 1
	fi
	mac=${mac#link/ether }
	# The key: the MAC's 6 bytes, then 2 zero bytes; the value: the ifindex,
	# little endian. bpftool takes one argument per byte.
	local key value
	read -r -a key <<<"${mac//:/ } 00 00"
	read -r -a value <<<"$(printf '%02x %02x %02x %02x' $((idx & 255)) $((idx >> 8 & 255)) \
		$((idx >> 16 & 255)) $((idx >> 24 & 255)))"
	mixlb_do bpftool map update pinned "$dir/switch_fdb" key hex "${key[@]}" value hex "${value[@]}"
}

# mixlb_switch_redirects: how many frames the switch's ports have redirected
# in XDP so far (0 on the bridge switch).
mixlb_switch_redirects() {
	local port sum=0 n
	for port in "$MIXLB_P-sr" "${MIXLB_NODES[@]/#mix/$MIXLB_P-s}"; do
		n=$(mixlb_in switch ethtool -S "$port" 2>/dev/null | awk '/_xdp_redirect:/ { s += $2 } END { print s + 0 }')
		sum=$((sum + n))
	done
	echo "$sum"
}

# mixlb_route_via NODE...: the router's routes to both VIPs, as one nexthop or
# an ECMP multipath over several (what BGP announcements would produce: a node
# announces, or withdraws, both families at once).
mixlb_route_via() {
	local args=() args6=() n
	if [ $# -eq 1 ]; then
		args=(via "$(mixlb_addr "$1")" dev "$MIXLB_P-rs")
		args6=(via "$(mixlb_addr6 "$1")" dev "$MIXLB_P-rs")
	else
		for n in "$@"; do
			args+=(nexthop via "$(mixlb_addr "$n")" dev "$MIXLB_P-rs")
			args6+=(nexthop via "$(mixlb_addr6 "$n")" dev "$MIXLB_P-rs")
		done
	fi
	mixlb_do ip -n "$(mixlb_ns router)" route replace "$MIXLB_VIP/32" "${args[@]}" || return 1
	mixlb_do ip -n "$(mixlb_ns router)" -6 route replace "$MIXLB_VIP6/128" "${args6[@]}" || return 1
	# Before Linux 4.16, `ip -6 route replace` of a multipath route could keep
	# or append nexthops; the route must hold exactly the nexthops asked for.
	local got want
	got=$(ip -n "$(mixlb_ns router)" -6 route show "$MIXLB_VIP6/128" | grep -o 'via [0-9a-f:]*' | sort)
	want=$(for n in "$@"; do echo "via $(mixlb_addr6 "$n")"; done | sort)
	if [ "$got" != "$want" ]; then
		mixlb_log "the router's route to $MIXLB_VIP6 has nexthops '${got//$'\n'/, }', not '${want//$'\n'/, }'"
		return 1
	fi
}

mixlb_config_path() { printf '%s/%s.toml' "$MIXLB_TMP" "$1"; }
mixlb_socket() { printf '%s/%s.sock' "$MIXLB_RUN_DIR" "$1"; }
mixlb_sidecar_log() { printf '%s/%s.sidecar.log' "$MIXLB_TMP" "$1"; }

mixlb_write_config() {
	local node=$1 peer
	{
		cat <<EOF
# Generated by integration/lib.sh for run $MIXLB_P.
[node]
name = "$node"
interface = "$(mixlb_if "$node")"
address = "$(mixlb_addr "$node")"
admin_socket = "$(mixlb_socket "$node")"
run_dir = "$MIXLB_RUN_DIR"
bpffs_dir = "$MIXLB_BPFFS"
log_level = "info"

[datapath]
xdp_mode = "$MIXLB_XDP_MODE"
conntrack_entries = ${MIXLB_CT_ENTRIES:-65536}

[gossip]
keyring = "$(mixlb_keyring "$node")"
probe_interval_ms = $MIXLB_PROBE_MS
probe_timeout_ms = $((MIXLB_PROBE_MS / 2))
interval_ms = 100
${MIXLB_SEED_NAME[$node]:+seeds = [\"${MIXLB_SEED_NAME[$node]}\"]}

[conntrack]
invalidation = "${MIXLB_INVALIDATION:-targeted}"
# Short, so the tests see the sweeper work (integration/run.sh, s), and a
# stray packet of a closed connection (a window update after the server's
# close) does not leave an entry for long (run.sh, v).
sweep_interval_ms = 500
udp_idle_ms = 2000
tcp_closing_idle_ms = ${MIXLB_TCP_CLOSING_IDLE_MS:-5000}
close_batch_ms = ${MIXLB_CLOSE_BATCH_MS:-10}

[health]
kind = "http"
interval_ms = 200
timeout_ms = 150
rise = 2
fall = 2

[[vip]]
address = "$MIXLB_VIP"
protocol = "tcp"
ports = [$MIXLB_HTTP_PORT]

[[vip]]
address = "$MIXLB_VIP"
protocol = "tcp"
ports = [$MIXLB_LINE_PORT]
health = "tcp"

[[vip]]
address = "$MIXLB_VIP6"
protocol = "tcp"
ports = [$MIXLB_HTTP_PORT]

[[vip]]
address = "$MIXLB_VIP6"
protocol = "tcp"
ports = [$MIXLB_LINE_PORT]
health = "tcp"

[[vip]]
address = "$MIXLB_VIP"
protocol = "udp"
ports = [$MIXLB_UDP_PORT]
health_port = $MIXLB_HTTP_PORT

[[vip]]
address = "$MIXLB_VIP6"
protocol = "udp"
ports = [$MIXLB_UDP_PORT]
health_port = $MIXLB_HTTP_PORT
EOF
		if [ -n "$MIXLB_METRICS_PORT" ]; then
			printf '\n[metrics]\nlisten = "%s:%s"\n' "$(mixlb_addr "$node")" "$MIXLB_METRICS_PORT"
		fi
		for peer in "${MIXLB_NODES[@]}"; do
			[ -z "${MIXLB_SEED_NAME[$node]:-}" ] || [ "$peer" = "$node" ] || continue
			printf '\n[[peer]]\nname = "%s"\naddress = "%s"\n' "$peer" "$(mixlb_addr "$peer")"
		done
	} >"$(mixlb_config_path "$node")"
}

# The app: mixlb-testnode serve, waited for until its six sockets are bound
# (HTTP, lines and UDP, each for IPv4 and IPv6).
mixlb_start_server() {
	local node=$1 log=$MIXLB_TMP/$1.server.log i
	if [ "$MIXLB_CONTAINER_MODE" = 1 ]; then
		mixlb_start_app_container "$node" >"$log" 2>&1 || { mixlb_log_file "$log"; return 1; }
	else
		nsenter --net="$(mixlb_netns "$node")" -- "$MIXLB_TESTNODE" serve --name "$node" \
			--http-port "$MIXLB_HTTP_PORT" --line-port "$MIXLB_LINE_PORT" \
			--udp-port "$MIXLB_UDP_PORT" >"$log" 2>&1 &
		MIXLB_SERVER_PID[$node]=$!
	fi
	for ((i = 0; i < 50; i++)); do
		if [ "$(mixlb_in "$node" ss -Htln "( sport = :$MIXLB_HTTP_PORT or sport = :$MIXLB_LINE_PORT )" |
			wc -l)" -ge 4 ] &&
			[ "$(mixlb_in "$node" ss -Huln "( sport = :$MIXLB_UDP_PORT )" | wc -l)" -ge 2 ]; then
			return 0
		fi
		[ "$MIXLB_CONTAINER_MODE" = 1 ] || mixlb_alive "${MIXLB_SERVER_PID[$node]}" || break
		sleep 0.1
	done
	[ "$MIXLB_CONTAINER_MODE" = 1 ] && podman logs "$(mixlb_container "$node" app)" >>"$log" 2>&1
	mixlb_log "$node: mixlb-testnode serve did not start listening:"
	mixlb_log_file "$log"
	return 1
}

# True while PID runs (a zombie that is not yet reaped counts as gone).
mixlb_alive() {
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# The cluster's first keyring: one random key, readable by root only. Each
# node gets its own copy (mixlb_keyring), which its sidecar rewrites when
# `mixlbctl keys` changes the keys.
mixlb_keyring() { printf '%s/%s.keyring' "$MIXLB_TMP" "$1"; }
mixlb_write_keyring() {
	local file=$MIXLB_TMP/keyring node=$1
	[ -s "$file" ] || (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$file" && echo >>"$file") ||
		return 1
	[ -s "$(mixlb_keyring "$node")" ] || cp -p "$file" "$(mixlb_keyring "$node")"
}

mixlb_start_sidecar() {
	local node=$1
	mixlb_write_keyring "$node" || return 1
	mixlb_write_config "$node" || return 1
	if [ "$MIXLB_CONTAINER_MODE" = 1 ]; then
		mixlb_start_sidecar_container "$node" >"$MIXLB_TMP/$node.podman-run" 2>&1 || {
			mixlb_log "$node: the sidecar container did not start:"
			mixlb_log_file "$MIXLB_TMP/$node.podman-run" 10
			return 1
		}
		return 0
	fi
	local hosts=${MIXLB_SEED_HOSTS[$node]:-}
	if [ -n "$hosts" ]; then
		# unshare, sh and nsenter each exec the next: $! is the sidecar.
		unshare --mount --propagation private -- sh -c 'mount --bind "$1" /etc/hosts && shift && exec "$@"' \
			sh "$hosts" nsenter --net="$(mixlb_netns "$node")" -- "$MIXLB_SIDECAR" \
			--config "$(mixlb_config_path "$node")" >>"$(mixlb_sidecar_log "$node")" 2>&1 &
	else
		nsenter --net="$(mixlb_netns "$node")" -- "$MIXLB_SIDECAR" --config "$(mixlb_config_path "$node")" \
			>>"$(mixlb_sidecar_log "$node")" 2>&1 &
	fi
	MIXLB_SIDECAR_PID[$node]=$!
}

# mixlb_bench_start BUILD_DIR CASE [BENCH]: the start of a benchmark on this
# topology (./dev bench BENCH, conntrack by default): its JSON goes to fd 3, its log to
# stderr. Exits with a "skipped" line when the machine cannot run it and an
# "error" line when the cluster does not come up; returns with the cluster
# up otherwise. Defines emit LINE (to fd 3).
mixlb_bench_start() {
	local case=$2 bench=${3:-conntrack} reason
	exec 3>&1 1>&2
	emit() { printf '%s\n' "$1" >&3; }
	mixlb_init "$1" || exit 1
	reason=$(mixlb_probe)
	if [ -n "$reason" ]; then
		emit "{\"bench\": \"$bench\", \"case\": \"$case\", \"skipped\": \"$reason\"}"
		exit 0
	fi
	mixlb_claim || exit 1
	mixlb_cluster_up || {
		emit "{\"bench\": \"$bench\", \"case\": \"$case\", \"error\": \"the cluster did not come up\"}"
		exit 1
	}
}

# mixlb_ct_matched VIP_LABEL CLIENT: the entries of CLIENT's flows to
# VIP_LABEL ("10.100.0.1:80/tcp"), summed over every node's table.
mixlb_ct_matched() {
	local n left=0
	for n in "${MIXLB_NODES[@]}"; do
		left=$((left + $(mixlb_ctl "$n" ct --vip "$1" --client "$2" --limit 0 --json | mixlb_json 'd["matched"]')))
	done
	echo "$left"
}

# mixlb_ctl NODE ARGS...: mixlbctl against NODE's admin socket, inside its namespace.
mixlb_ctl() {
	local node=$1
	shift
	mixlb_in "$node" "$MIXLB_CTL" -s "$(mixlb_socket "$node")" "$@"
}

mixlb_status_json() { mixlb_ctl "$1" status --json; }

# mixlb_json EXPR [ARG...] < JSON: prints a Python expression over the document d
# (ARGs are sys.argv[2:]; a list or tuple prints space-separated). Helpers:
# vipsum(key) sums a counter over the VIPs, drops() sums every drop counter;
# both take an optional VIP label ("[fd00:100::1]:80/tcp", as status shows
# it) to count that VIP entry only.
mixlb_json() {
	"$MIXLB_PYTHON" -c '
import json, sys
d = json.load(sys.stdin)
def vips(label):
    found = [v for v in d["vips"] if label is None or v["vip"] == label]
    if not found:
        raise SystemExit("status shows no VIP %s (it shows %s)" % (label, [v["vip"] for v in d["vips"]]))
    return found
def vipsum(key, label=None):
    return sum(int(v["counters"][key]) for v in vips(label))
def drops(label=None):
    total = 0
    for v in vips(label):
        dr = v["counters"]["drops"]
        total += sum(int(x) for x in (dr.values() if isinstance(dr, dict) else dr))
    return total
r = eval("(" + sys.argv[1] + "\n)")
print(" ".join(str(x) for x in r) if isinstance(r, (list, tuple)) else r)
' "$@"
}

# mixlb_status_get NODE EXPR: mixlb_json EXPR over NODE's current status.
mixlb_status_get() {
	local json
	json=$(mixlb_status_json "$1" 2>&1) || {
		mixlb_log "$1: mixlbctl status failed: $json"
		return 1
	}
	mixlb_json "$2" <<<"$json"
}

# Ready: the admin socket answers for this node, gossip has brought in every
# running node (status lists each with its MAC resolved, so the first
# forwarded packet cannot meet an unresolved neighbour), and every VIP's
# backends are exactly those nodes (their apps passed their checks).
mixlb_wait_ready() {
	local node=$1 timeout=${2:-$MIXLB_READY_TIMEOUT} deadline json last=""
	deadline=$((SECONDS + timeout))
	while [ $SECONDS -lt $deadline ]; do
		if [ "$MIXLB_CONTAINER_MODE" = 1 ]; then
			# Not running yet, or between the stop and the start of a
			# restart: wait on (its log tells what went wrong, at the end).
			if [ "$(podman inspect -f '{{.State.Running}}' "$(mixlb_container "$node" mixlb)" 2>&1)" != true ]; then
				sleep 0.2
				continue
			fi
		elif ! mixlb_alive "${MIXLB_SIDECAR_PID[$node]}"; then
			wait "${MIXLB_SIDECAR_PID[$node]}"
			mixlb_log "$node: the sidecar exited with status $? before it was ready; its log:"
			mixlb_log_file "$(mixlb_sidecar_log "$node")"
			return 1
		fi
		if json=$(mixlb_status_json "$node" 2>&1); then
			last=$(mixlb_json '"ok" if d["node"] == sys.argv[2] and all(
				n.get("mac") not in (None, "", "-", "00:00:00:00:00:00")
				for n in d["nodes"] if n["name"] != sys.argv[2])
				and sorted(n["name"] for n in d["nodes"]) == sorted(sys.argv[3:])
				and all(sorted(v["backends"]) == sorted(sys.argv[3:]) for v in d["vips"])
				else "node " + str(d["node"]) + ", nodes " + json.dumps(d["nodes"]) +
				", backends " + json.dumps({v["vip"]: v["backends"] for v in d["vips"]})' \
				"$node" "${MIXLB_SERVING[@]}" <<<"$json" 2>&1)
			[ "$last" = ok ] && return 0
		else
			last=$json
		fi
		sleep 0.2
	done
	mixlb_log "$node: not ready within ${timeout}s (last: ${last:-no answer}); the sidecar's log:"
	mixlb_log_file "$(mixlb_sidecar_log "$node")"
	return 1
}

# mixlb_stop_sidecar NODE [TIMEOUT]: SIGTERM, then waits. Sets MIXLB_STOP_RC to
# the exit status and MIXLB_STOP_MS to how long the exit took; returns 1 (after
# SIGKILL) if it did not exit within TIMEOUT seconds.
# shellcheck disable=SC2034 # MIXLB_STOP_* are read by the caller
mixlb_stop_sidecar() {
	local node=$1 timeout=${2:-5} pid start
	pid=${MIXLB_SIDECAR_PID[$node]:-}
	MIXLB_STOP_RC=""
	MIXLB_STOP_MS=""
	[ -n "$pid" ] || return 1
	start=$(date +%s%N)
	kill -TERM "$pid" 2>/dev/null
	local deadline=$((start + timeout * 1000000000))
	while mixlb_alive "$pid" && [ "$(date +%s%N)" -lt $deadline ]; do
		sleep 0.05
	done
	MIXLB_STOP_MS=$((($(date +%s%N) - start) / 1000000))
	if mixlb_alive "$pid"; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		unset "MIXLB_SIDECAR_PID[$node]"
		return 1
	fi
	wait "$pid"
	MIXLB_STOP_RC=$?
	unset "MIXLB_SIDECAR_PID[$node]"
	return 0
}

# Brings up the topology and, on every node, the app and the sidecar; waits
# until all sidecars are ready. Snapshots each node's sysctls first, so a test
# can check that a stopped sidecar put them back.
mixlb_cluster_up() {
	local n
	mkdir -p "$MIXLB_RUN_DIR" || return 1
	mixlb_topology_up || return 1
	for n in "${MIXLB_NODES[@]}"; do
		mixlb_sysctls "$n" >"$MIXLB_TMP/$n.sysctl.before" || return 1
		mixlb_start_server "$n" || return 1
		mixlb_check_reach "$n" || return 1
		mixlb_start_sidecar "$n" || return 1
	done
	for n in "${MIXLB_NODES[@]}"; do
		mixlb_wait_ready "$n" || return 1
	done
}

# The same with the apps and sidecars in containers, played from
# containers/compose.yaml (after mixlb_containers_init).
mixlb_cluster_up_compose() {
	local n
	mkdir -p "$MIXLB_RUN_DIR" || return 1
	mixlb_topology_up || return 1
	mixlb_compose_up || return 1
	for n in "${MIXLB_NODES[@]}"; do
		mixlb_wait_ready "$n" || return 1
	done
}

# mixlb_check_reach NODE: before the sidecar runs, the router gets an answer
# from NODE's app at both its node addresses (one UDP datagram each). Proves
# the IPv4 and IPv6 plumbing, and leaves the neighbour entries resolved on
# both sides (router -> node, node -> router) for the first test packets.
mixlb_check_reach() {
	local node=$1 to out
	for to in "$(mixlb_addr "$node"):$MIXLB_UDP_PORT" "[$(mixlb_addr6 "$node")]:$MIXLB_UDP_PORT"; do
		if ! out=$(mixlb_in router "$MIXLB_TESTNODE" udp --to "$to" --count 1 --timeout-ms 3000 2>&1); then
			mixlb_log "the router cannot reach $node's app at $to: $out"
			return 1
		fi
	done
}

# The sysctls a sidecar may change on a node, one "key = value" per line.
mixlb_sysctls() {
	local node=$1 ifname
	ifname=$(mixlb_if "$node")
	# shellcheck disable=SC2016 # expanded by the inner shell
	mixlb_in "$node" sh -c '
		for f in /proc/sys/net/ipv4/ip_forward \
			/proc/sys/net/ipv4/conf/all/* /proc/sys/net/ipv4/conf/default/* \
			/proc/sys/net/ipv4/conf/lo/* /proc/sys/net/ipv4/conf/'"$ifname"'/* \
			/proc/sys/net/ipv6/conf/all/* /proc/sys/net/ipv6/conf/default/* \
			/proc/sys/net/ipv6/conf/lo/* /proc/sys/net/ipv6/conf/'"$ifname"'/*; do
			case $f in
			*/forwarding|*/arp_ignore|*/arp_announce|*/rp_filter|*/accept_local|*/ip_forward)
				printf "%s = %s\n" "${f#/proc/sys/}" "$(cat "$f")" ;;
			esac
		done'
}

# mixlb_xdp_prog NS IFNAME: prints "mode name" of the XDP program on IFNAME, or nothing.
mixlb_xdp_prog() {
	ip -n "$(mixlb_ns "$1")" -j link show dev "$2" | mixlb_json '
" ".join(str(x) for x in (d[0]["xdp"]["mode"], d[0]["xdp"].get("prog", {}).get("name", "?")))
if d and "xdp" in d[0] else ""'
}

mixlb_teardown() {
	[ "$MIXLB_TORN_DOWN" = 1 ] && return 0
	MIXLB_TORN_DOWN=1
	trap - INT TERM PIPE
	local node pid ns i
	# Compose projects, containers and pods first (podman stops a sidecar
	# with SIGTERM: the
	# restart stop, which leaves its data path; the namespaces and the bpffs
	# directory go below).
	local project ids
	for project in "${MIXLB_COMPOSE_PROJECTS[@]}"; do
		mapfile -t ids < <(podman ps -aq --filter "label=io.podman.compose.project=$project" 2>/dev/null)
		[ ${#ids[@]} -eq 0 ] || podman rm -f --ignore -t 5 "${ids[@]}" >/dev/null 2>&1
		# The project network podman-compose creates (and nothing uses).
		podman network rm -f "${project}_default" >/dev/null 2>&1
	done
	MIXLB_COMPOSE_PROJECTS=()
	if [ ${#MIXLB_PODS[@]} -gt 0 ]; then
		podman pod rm -f --ignore -t 5 "${MIXLB_PODS[@]}" >/dev/null 2>&1
		MIXLB_PODS=()
	fi
	if [ ${#MIXLB_CONTAINERS[@]} -gt 0 ]; then
		podman rm -f --ignore -t 5 "${MIXLB_CONTAINERS[@]}" >/dev/null 2>&1
		MIXLB_CONTAINERS=()
	fi
	if [ "$MIXLB_KUBE_NETWORK_NEW" = 1 ]; then
		podman network rm -f podman-default-kube-network >/dev/null 2>&1
		MIXLB_KUBE_NETWORK_NEW=0
	fi
	if [ "$MIXLB_PAUSE_IMAGE_NEW" = 1 ]; then
		podman rmi -f "localhost/podman-pause:$(podman version -f '{{.Client.Version}}')-0" >/dev/null 2>&1
		MIXLB_PAUSE_IMAGE_NEW=0
	fi
	if [ ${#MIXLB_SECRETS[@]} -gt 0 ]; then
		podman secret rm "${MIXLB_SECRETS[@]}" >/dev/null 2>&1
		MIXLB_SECRETS=()
	fi
	# Sidecars first. SIGTERM stops them for a restart, which leaves their
	# data path in place; the namespaces and the bpffs directory go below.
	for node in "${!MIXLB_SIDECAR_PID[@]}"; do
		kill -TERM "${MIXLB_SIDECAR_PID[$node]}" 2>/dev/null
	done
	for node in "${!MIXLB_SIDECAR_PID[@]}"; do
		pid=${MIXLB_SIDECAR_PID[$node]}
		for ((i = 0; i < 100; i++)); do
			mixlb_alive "$pid" || break
			sleep 0.05
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	MIXLB_SIDECAR_PID=()
	for pid in "${MIXLB_SERVER_PID[@]}" "${MIXLB_OTHER_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	MIXLB_SERVER_PID=()
	MIXLB_OTHER_PIDS=()
	# Anything still running inside our namespaces was started by this run
	# (they are ours alone) and would keep them alive: end it.
	local left=() pids=()
	for ns in "${MIXLB_NETNS_CREATED[@]}"; do
		mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null)
		left+=("${pids[@]}")
	done
	if [ ${#left[@]} -gt 0 ]; then
		echo "mixlb: ending leftover processes in the test namespaces: ${left[*]}" >&2
		kill -TERM "${left[@]}" 2>/dev/null
		sleep 0.5
		kill -KILL "${left[@]}" 2>/dev/null
	fi
	for ns in "${MIXLB_NETNS_CREATED[@]}" "mixlb-probe-$$-a" "mixlb-probe-$$-b"; do
		ip netns del "$ns" 2>/dev/null
	done
	MIXLB_NETNS_CREATED=()
	# A sidecar that had to be killed leaves its pins; they are ours to remove.
	[ -n "$MIXLB_BPFFS" ] && [ -d "$MIXLB_BPFFS" ] && rm -rf -- "$MIXLB_BPFFS"
	[ -n "$MIXLB_RUN_DIR" ] && [ -d "$MIXLB_RUN_DIR" ] && rm -rf -- "$MIXLB_RUN_DIR"
	if [ -n "$MIXLB_TMP" ] && [ -d "$MIXLB_TMP" ]; then
		if [ "${MIXLB_KEEP_LOGS:-0}" = 1 ]; then
			echo "mixlb: kept logs in $MIXLB_TMP" >&2
		else
			rm -rf -- "$MIXLB_TMP"
		fi
	fi
}

# ---------------------------------------------------------------- containers

# mixlb_containers_init: builds (or finds cached) the images and the
# seccomp profile, and switches the app and sidecar starts to containers.
# Returns 1 with the reason logged when podman cannot do it.
mixlb_containers_init() {
	local out
	export CONTAINERS_CONF=$MIXLB_SOURCE/containers/containers.conf
	out=$("$MIXLB_SOURCE/containers/build-image.sh" "$MIXLB_BUILD" 2>&1) || {
		mixlb_log "building the images failed:"
		mixlb_log "$out"
		return 1
	}
	mixlb_log "images: ${out//$'\n'/; }"
	MIXLB_IMAGE=$(awk '$1 ~ /^mixlb:/ {print $1}' <<<"$out")
	MIXLB_APP_IMAGE=$(awk '$1 ~ /^mixlb-testnode:/ {print $1}' <<<"$out")
	# Named as the pod manifest's localhostProfile wants it.
	mkdir -p "$MIXLB_TMP/seccomp" || return 1
	MIXLB_SECCOMP=$MIXLB_TMP/seccomp/mixlb.json
	"$MIXLB_PYTHON" "$MIXLB_SOURCE/containers/seccomp.py" >"$MIXLB_SECCOMP" || {
		mixlb_log "cannot write the seccomp profile"
		return 1
	}
	# podman makes this network the first time it plays a pod; one that was
	# not there before the run is the run's to remove.
	podman network exists podman-default-kube-network 2>/dev/null || MIXLB_KUBE_NETWORK_NEW=1
	# And this image, for a pod's infra container.
	podman image exists "localhost/podman-pause:$(podman version -f '{{.Client.Version}}')-0" 2>/dev/null ||
		MIXLB_PAUSE_IMAGE_NEW=1
	MIXLB_CONTAINER_MODE=1
}

# mixlb_container NODE ROLE: the name of NODE's container (ROLE app or
# mixlb); once MIXLB_COMPOSE is 1, the one podman-compose gave it.
MIXLB_COMPOSE=0
mixlb_container() {
	if [ "$MIXLB_COMPOSE" = 1 ]; then
		printf '%s-lab_%s-%s_1' "$MIXLB_P" "$1" "$2"
	else
		printf '%s-%s-%s' "$MIXLB_P" "$1" "$2"
	fi
}

mixlb_start_app_container() {
	local node=$1 name
	name=$(mixlb_container "$node" app)
	MIXLB_CONTAINERS+=("$name")
	podman run -d --name "$name" --runtime runc --network "ns:$(mixlb_netns "$node")" \
		--cap-drop all --cap-add CAP_NET_BIND_SERVICE \
		"$MIXLB_APP_IMAGE" --name "$node" --http-port "$MIXLB_HTTP_PORT" \
		--line-port "$MIXLB_LINE_PORT" --udp-port "$MIXLB_UDP_PORT"
}

# The sidecar as docs/deployment.md runs it: the minimum capabilities, the
# seccomp profile that lets them load BPF, the host's bpffs and the admin
# socket directory as volumes, the config as a read-only file, the keyring
# as a podman secret of mode 0400. The volumes sit at the paths the test's
# config names (the run's own directories), so mixlbctl and bpftool on the
# host see the same files.
mixlb_start_sidecar_container() {
	local node=$1 name secret
	name=$(mixlb_container "$node" mixlb)
	secret=$MIXLB_P-$node-keyring
	if ! podman secret inspect "$secret" >/dev/null 2>&1; then
		podman secret create "$secret" "$(mixlb_keyring "$node")" >/dev/null || return 1
		MIXLB_SECRETS+=("$secret")
	fi
	# The sysctls the sidecar wants, set as the platform would (podman
	# --sysctl, a pod's securityContext.sysctls): /proc/sys is read-only in
	# the container, and the sidecar leaves alone what is already right.
	mixlb_container_sysctls "$node" || return 1
	MIXLB_CONTAINERS+=("$name")
	podman run -d --name "$name" --runtime runc --network "ns:$(mixlb_netns "$node")" \
		--log-driver k8s-file --log-opt "path=$(mixlb_sidecar_log "$node")" \
		--cap-drop all --cap-add CAP_BPF,CAP_NET_ADMIN,CAP_PERFMON \
		--security-opt "seccomp=$MIXLB_SECCOMP" \
		-v /sys/fs/bpf:/sys/fs/bpf -v "$MIXLB_RUN_DIR:$MIXLB_RUN_DIR" \
		-v "$(mixlb_config_path "$node"):/etc/mixlb/mixlb.toml:ro" \
		--secret "$secret,target=/run/secrets/mixlb-keyring,mode=0400" \
		"$MIXLB_IMAGE" --config /etc/mixlb/mixlb.toml --keyring /run/secrets/mixlb-keyring
}

# mixlb_compose_up: plays containers/compose.yaml (the three-node lab) on
# the run's namespaces, configs and keyrings, as project $MIXLB_P-lab.
mixlb_compose_up() {
	local n i=1 out
	local -a env=(MIXLB_IMAGE="$MIXLB_IMAGE" MIXLB_APP_IMAGE="$MIXLB_APP_IMAGE"
		MIXLB_SECCOMP="$MIXLB_SECCOMP" MIXLB_RUN_DIR="$MIXLB_RUN_DIR")
	for n in "${MIXLB_NODES[@]}"; do
		mixlb_write_keyring "$n" && mixlb_write_config "$n" && mixlb_container_sysctls "$n" || return 1
		env+=("MIXLB_NETNS_$i=$(mixlb_netns "$n")" "MIXLB_CONFIG_$i=$(mixlb_config_path "$n")"
			"MIXLB_KEYRING_$i=$(mixlb_keyring "$n")")
		i=$((i + 1))
	done
	MIXLB_COMPOSE_PROJECTS+=("$MIXLB_P-lab")
	MIXLB_COMPOSE=1
	# podman-compose returns 0 when a container fails to start: the caller
	# waits for the sidecars to be ready.
	if ! out=$(env "${env[@]}" podman-compose --podman-path "$MIXLB_SOURCE/containers/compose-podman.sh" \
		-p "$MIXLB_P-lab" -f "$MIXLB_SOURCE/containers/compose.yaml" up -d 2>&1); then
		mixlb_log "podman-compose up failed:"
		mixlb_log "$out"
		return 1
	fi
}

mixlb_container_sysctls() {
	local node=$1 ifname
	ifname=$(mixlb_if "$node")
	mixlb_in "$node" sh -c "
		echo 1 >/proc/sys/net/ipv4/conf/all/arp_ignore &&
		echo 2 >/proc/sys/net/ipv4/conf/all/arp_announce &&
		echo 1 >/proc/sys/net/ipv4/conf/$ifname/arp_ignore &&
		echo 2 >/proc/sys/net/ipv4/conf/$ifname/arp_announce &&
		echo 1 >/proc/sys/net/ipv4/conf/$ifname/forwarding"
}

# ---------------------------------------------------------------- for the TAP tests
# integration/lifecycle.sh uses these; integration/run.sh still has its own
# tap, fail, now_ms and wait_backends.

MIXLB_TAP_NO=0
MIXLB_TAP_FAILED=0

# mixlb_tap RC DESCRIPTION: one TAP result line; counts the failures.
mixlb_tap() {
	MIXLB_TAP_NO=$((MIXLB_TAP_NO + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $MIXLB_TAP_NO - $2"
	else
		echo "not ok $MIXLB_TAP_NO - $2"
		MIXLB_TAP_FAILED=$((MIXLB_TAP_FAILED + 1))
	fi
}

# mixlb_tap_start PLAN BUILD_DIR [TOOL...]: the start of a TAP test: checks
# the build (mixlb_init), the machine (mixlb_probe, and each TOOL installed)
# and claims a run (mixlb_claim); prints the plan and returns 0. Otherwise it
# prints the usage, a skip ("1..0 # SKIP reason") or a bail-out, returns 1
# and sets MIXLB_TAP_EXIT to the status the script should exit with.
# shellcheck disable=SC2034 # MIXLB_TAP_EXIT is read by the caller
mixlb_tap_start() {
	local plan=$1 build=$2 tool reason
	shift 2
	MIXLB_TAP_EXIT=1
	if [ -z "$build" ]; then
		echo "usage: $0 BUILD_DIR" >&2
		MIXLB_TAP_EXIT=2
		return 1
	fi
	if ! mixlb_init "$build"; then
		echo "1..$plan"
		echo "Bail out! the build is incomplete"
		return 1
	fi
	reason=$(mixlb_probe)
	for tool in "$@"; do
		[ -n "$reason" ] || command -v "$tool" >/dev/null || reason="$tool is not installed"
	done
	if [ -n "$reason" ]; then
		# tools/run_tests.py counts a skipped run as this many skipped cases.
		echo "# would run $plan cases"
		echo "1..0 # SKIP $reason"
		MIXLB_TAP_EXIT=0
		return 1
	fi
	if ! mixlb_claim; then
		echo "1..$plan"
		echo "Bail out! cannot prepare the run"
		return 1
	fi
	echo "1..$plan"
}

# mixlb_tap_up UP_FUNCTION: brings the cluster up with UP_FUNCTION as the
# first TAP case; when it does not come up, bails out of the whole test.
mixlb_tap_up() {
	"$1"
	local rc=$?
	mixlb_tap $rc "cluster of ${#MIXLB_NODES[@]} mix nodes up, sidecars ready"
	if [ $rc -ne 0 ]; then
		echo "Bail out! the cluster did not come up"
		exit 1
	fi
}

# mixlb_tap_end START_MS: the end of a TAP test: after a failure, the end of
# every sidecar's log; how long the run took; returns 1 if a test failed.
mixlb_tap_end() {
	local n
	if [ "$MIXLB_TAP_FAILED" -gt 0 ]; then
		for n in "${MIXLB_NODES[@]}"; do
			mixlb_log "the end of $n's sidecar log:"
			mixlb_log_file "$(mixlb_sidecar_log "$n")" 15
		done
	fi
	mixlb_log "run took $((($(mixlb_now_ms) - $1) / 1000)) s"
	[ "$MIXLB_TAP_FAILED" -eq 0 ]
}

# mixlb_fail MESSAGE: logs why a check fails and returns 1.
mixlb_fail() {
	mixlb_log "FAIL: $*"
	return 1
}

mixlb_now_ms() { echo $(($(date +%s%N) / 1000000)); }

# mixlb_backends NODE: every VIP's backends on NODE, one "label a,b,c" per line.
mixlb_backends() {
	mixlb_status_get "$1" '"\n".join(v["vip"] + " " + ",".join(sorted(v["backends"])) for v in d["vips"])'
}

# mixlb_wait_backends WANT TIMEOUT_S NODE...: waits until every VIP on every
# NODE has exactly the backends WANT (comma-separated, sorted). Sets
# MIXLB_WAITED_MS (empty when it timed out).
mixlb_wait_backends() { mixlb_wait_backends_of . "$@"; }

# mixlb_wait_backends_of REGEX WANT TIMEOUT_S NODE...: the same for the VIPs
# whose label matches REGEX (awk), e.g. ':7000/tcp$'.
# shellcheck disable=SC2034 # MIXLB_WAITED_MS is read by the caller
mixlb_wait_backends_of() {
	local only=$1 want=$2 timeout=$3 start n ok
	shift 3
	start=$(mixlb_now_ms)
	MIXLB_WAITED_MS=""
	while [ $(($(mixlb_now_ms) - start)) -lt $((timeout * 1000)) ]; do
		ok=1
		for n in "$@"; do
			mixlb_backends "$n" >"$MIXLB_TMP/backends.$n" 2>&1 || { ok=0; continue; }
			awk -v w="$want" -v p="$only" '$1 ~ p && $2 != w { bad = 1 } END { exit bad }' \
				"$MIXLB_TMP/backends.$n" || ok=0
		done
		if [ $ok = 1 ]; then
			MIXLB_WAITED_MS=$(($(mixlb_now_ms) - start))
			return 0
		fi
		sleep 0.1
	done
	for n in "$@"; do mixlb_log "$n's backends: $(tr '\n' ';' <"$MIXLB_TMP/backends.$n")"; done
	mixlb_fail "the backends of VIPs matching '$only' did not become '$want' on $* within ${timeout} s"
}

# mixlb_suspicion_bound_s: how long gossip may take to declare a silent node
# dead: at most 6 x 3 probe intervals (n = 3) after a failed probe, which can
# take two probe rounds to reach the node; plus 2 s.
mixlb_suspicion_bound_s() { echo $(((MIXLB_PROBE_MS * 18 + MIXLB_PROBE_MS * 6 + 999) / 1000 + 2)); }

# mixlb_xdp_prog_id NODE: the id of the XDP program on NODE's uplink, or nothing.
mixlb_xdp_prog_id() {
	ip -n "$(mixlb_ns "$1")" link show dev "$(mixlb_if "$1")" | awk '$1 == "prog/xdp" { print $3 }'
}

# mixlb_xdp_link_id NODE: the id of the BPF link pinned at <bpffs>/NODE/xdp_link, or nothing.
mixlb_xdp_link_id() {
	bpftool -j link show pinned "$MIXLB_BPFFS/$1/xdp_link" 2>/dev/null | mixlb_json 'd["id"]' 2>/dev/null
}

# mixlb_ct_flows NODE: NODE's pinned connection table, read with bpftool (no
# sidecar needed), one entry a line: "proto src sport dport node_id flags
# age_ms" (age: since the data path last refreshed the entry, which it does
# at most every 100 ms while the flow sends).
mixlb_ct_flows() {
	bpftool -j map dump pinned "$MIXLB_BPFFS/$1/mixlb_ct" | "$MIXLB_PYTHON" -c '
import json, socket, struct, sys, time
# last_seen_ns is bpf_ktime_get_coarse_ns(): CLOCK_MONOTONIC_COARSE (6).
now = time.clock_gettime_ns(getattr(time, "CLOCK_MONOTONIC_COARSE", 6))
for e in json.load(sys.stdin):
    k = bytes(int(x, 16) for x in e["key"])    # struct mixlb_flow_key
    v = bytes(int(x, 16) for x in e["value"])  # struct mixlb_ct_value
    proto, family = k[36], k[37]
    if family == socket.AF_INET:
        src = socket.inet_ntop(socket.AF_INET, k[0:4])
    else:
        src = socket.inet_ntop(socket.AF_INET6, k[0:16])
    sport, dport = struct.unpack_from("!HH", k, 32)
    last_seen, node_id = struct.unpack_from("<QI", v, 0)
    flags = struct.unpack_from("<I", v, 16)[0]
    print(proto, src, sport, dport, node_id, flags, max(0, now - last_seen) // 1000000)
'
}

# mixlb_pinned_vip_pkts NODE: the VIP packets NODE's data path has counted
# (served, forwarded and received from peers, over every VIP and CPU), read
# from the pinned mixlb_vip_stats with bpftool: no sidecar needed.
mixlb_pinned_vip_pkts() {
	bpftool -j map dump pinned "$MIXLB_BPFFS/$1/mixlb_vip_stats" | "$MIXLB_PYTHON" -c '
import json, struct, sys
total = 0
for e in json.load(sys.stdin):
    for cpu in e["values"]:
        # struct mixlb_vip_stats: local, fwd and from_peer, packets and bytes each
        local, _, fwd, _, from_peer, _ = struct.unpack_from("<6Q", bytes(int(x, 16) for x in cpu["value"]))
        total += local + fwd + from_peer
print(total)
'
}

# mixlb_on_lo NODE ADDR: true if ADDR sits on NODE's lo. The list is read
# whole first: under pipefail, `ip ... | grep -q` fails when grep's early exit
# gets ip a SIGPIPE.
mixlb_on_lo() {
	local addrs
	addrs=$(ip -n "$(mixlb_ns "$1")" -o addr show dev lo) || return 2
	grep -qF " $2/" <<<"$addrs"
}

# mixlb_check_removed NODE: nothing mixlb adds is left on NODE: no XDP
# program on the uplink, no pins, no VIP on lo, no managed neighbour entry,
# no host record, and the sysctls as before its first sidecar. Logs every
# leftover; returns 1 if there is one.
mixlb_check_removed() {
	local n=$1 rc=0 prog vip left
	prog=$(mixlb_xdp_prog "$n" "$(mixlb_if "$n")")
	[ -z "$prog" ] || { mixlb_fail "$(mixlb_if "$n") still has an XDP program ($prog)"; rc=1; }
	for vip in "$MIXLB_VIP" "$MIXLB_VIP6"; do
		mixlb_on_lo "$n" "$vip"
		case $? in
		0) mixlb_fail "the VIP $vip is still on $n's lo"; rc=1 ;;
		1) ;;
		*) mixlb_fail "cannot list the addresses on $n's lo"; rc=1 ;;
		esac
	done
	[ ! -e "$MIXLB_BPFFS/$n" ] || { mixlb_fail "$MIXLB_BPFFS/$n is left: $(find "$MIXLB_BPFFS/$n" -mindepth 1 -printf '%f ')"; rc=1; }
	[ ! -e "$MIXLB_RUN_DIR/$n.host.json" ] || { mixlb_fail "the host record $MIXLB_RUN_DIR/$n.host.json is left"; rc=1; }
	left=$(ip -n "$(mixlb_ns "$n")" neigh show | grep -w managed)
	[ -z "$left" ] || { mixlb_fail "managed neighbour entries are left: ${left//$'\n'/; }"; rc=1; }
	if ! diff -u "$MIXLB_TMP/$n.sysctl.before" <(mixlb_sysctls "$n") >"$MIXLB_TMP/$n.sysctl.diff"; then
		mixlb_fail "$n's sysctls are not as before its first sidecar:"
		mixlb_log_file "$MIXLB_TMP/$n.sysctl.diff"
		rc=1
	fi
	return $rc
}
