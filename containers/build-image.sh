#!/usr/bin/env bash
# Builds the container images from a build directory, with podman and no
# registry: each image is FROM scratch plus the binaries and the exact shared
# libraries (and dynamic loader) they load, as ldd finds them on this Debian.
#
#   containers/build-image.sh BUILD_DIR [mixlb|testnode]...   (default: both)
#
# Images: mixlb:VERSION (mixlb, mixlbctl) and mixlb-testnode:VERSION (the
# test app). Each carries a label with the sha256 of what it holds; a build
# whose staged files hash the same as the existing image's label is skipped,
# so a rebuild costs the staging and the hash (~0.1 s) when nothing changed.
# Prints one line per image: "IMAGE built|cached SIZE_BYTES SECONDS".
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:?usage: $0 BUILD_DIR [mixlb|testnode]...}
shift
build=$(cd "$build" && pwd)
images=("$@")
[ ${#images[@]} -gt 0 ] || images=(mixlb testnode)

die() { echo "build-image: $*" >&2; exit 1; }
command -v podman >/dev/null || die "podman is not installed (./dev installs it)"
# Debian's podman fails to start containers with its default rlimits here.
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}

version=$("$build/sidecar/mixlb" --version | awk '{print $2}')
[ -n "$version" ] || die "cannot read the version from $build/sidecar/mixlb"

# stage ROOTFS BINARY...: copies each binary to ROOTFS/usr/bin and every
# shared object it loads (followed through symlinks) to the same path.
stage() {
	local rootfs=$1 bin lib
	shift
	mkdir -p "$rootfs/usr/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/run"
	chmod 1777 "$rootfs/tmp"
	for bin in "$@"; do
		[ -x "$bin" ] || die "$bin is not built"
		# Without the build's debug information (the image is for running;
		# debugging happens against the build directory).
		install -m 0755 "$bin" "$rootfs/usr/bin/"
		strip --strip-debug "$rootfs/usr/bin/$(basename "$bin")"
		# "libx.so => /path (0x...)" and the loader's "/lib64/ld-linux... (0x...)".
		while read -r lib; do
			mkdir -p "$rootfs$(dirname "$lib")"
			cp -L "$lib" "$rootfs$lib"
		done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
	done
}

content_hash() {
	(cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-64
}

build_one() {
	local name=$1 tag containerfile ctx start hash have
	start=$(date +%s%N)
	ctx=$(mktemp -d /tmp/mixlb-image-XXXXXX)
	# shellcheck disable=SC2064 # expand now: the trap outlives this function's locals
	trap "rm -rf '$ctx'" RETURN
	case "$name" in
	mixlb)
		tag=mixlb:$version
		containerfile=$here/Containerfile
		stage "$ctx/rootfs" "$build/sidecar/mixlb" "$build/sidecar/mixlbctl"
		mkdir -p "$ctx/rootfs/etc/mixlb" "$ctx/rootfs/run/mixlb" "$ctx/rootfs/sys/fs/bpf"
		;;
	testnode)
		tag=mixlb-testnode:$version
		containerfile=$here/Containerfile.testnode
		stage "$ctx/rootfs" "$build/integration/mixlb-testnode"
		;;
	*) die "unknown image '$name' (known: mixlb, testnode)" ;;
	esac
	hash=$(content_hash "$ctx/rootfs")
	have=$(podman image inspect "$tag" --format '{{index .Labels "mixlb.content"}}' 2>/dev/null || true)
	local how=cached
	if [ "$have" != "$hash" ]; then
		# --layers=false: no intermediate images; the image it replaces loses
		# its tag and is pruned below.
		podman build --quiet --layers=false --file "$containerfile" --tag "$tag" \
			--build-arg MIXLB_VERSION="$version" --build-arg MIXLB_CONTENT="$hash" "$ctx" >/dev/null ||
			die "podman build of $tag failed"
		how=built
		podman image prune -f --filter "label=mixlb.content" >/dev/null 2>&1 || true
	fi
	local size
	size=$(podman image inspect "$tag" --format '{{.Size}}')
	local ms=$((($(date +%s%N) - start) / 1000000))
	printf '%s %s %s %d.%03d\n' "$tag" "$how" "$size" $((ms / 1000)) $((ms % 1000))
}

for image in "${images[@]}"; do build_one "$image"; done
