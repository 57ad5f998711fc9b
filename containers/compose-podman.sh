#!/usr/bin/env bash
# The podman that podman-compose is given (podman-compose --podman-path) to
# play containers/compose.yaml with Debian's podman-compose 1.0.3.
#
# That version adds its project network (--net PROJECT_default
# --network-alias SERVICE) to every container, even to one whose
# network_mode already says where it lives (--network ns:PATH or
# container:NAME), and podman refuses the pair ("cannot set multiple networks
# without bridge network mode"). A mixlb sidecar must live in its node's (or
# its app's) network namespace, so for such a container this drops the two
# added options and runs podman with the rest unchanged.
set -euo pipefail
args=("$@")
own_mode=0
for ((i = 0; i + 1 < ${#args[@]}; i++)); do
	if [ "${args[i]}" = --network ]; then
		case ${args[i + 1]} in ns:* | container:* | host | none) own_mode=1 ;; esac
	fi
done
if [ $own_mode = 1 ]; then
	kept=()
	for ((i = 0; i < ${#args[@]}; i++)); do
		case ${args[i]} in
		--net | --network-alias) i=$((i + 1)) ;;
		*) kept+=("${args[i]}") ;;
		esac
	done
	args=("${kept[@]}")
fi
exec podman "${args[@]}"
