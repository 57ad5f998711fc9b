#!/bin/sh
# mixlbctl links only the small admin client library (sidecar/meson.build):
# none of the daemon's libraries, so the operator's tool stays small and
# runs wherever libc, libstdc++ and fmt do. Boost.Asio is header-only and
# would leave no NEEDED entry, so the symbols are read as well as the
# dynamic section. Exit 77 (skipped) when the binary cannot be read so.
#
#   sh mixlbctl_links.sh build/sidecar/mixlbctl
set -eu

bin=${1:?usage: mixlbctl_links.sh MIXLBCTL}
[ -f "$bin" ] || { echo "no such file: $bin"; exit 1; }
for tool in readelf nm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "skipped: no $tool"; exit 77; }
done

needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
# Mangled names, one per line: C++ namespaces read as <length><name>.
symbols=$(nm --format=posix "$bin" 2>/dev/null | cut -d' ' -f1) || true
if ! printf '%s\n' "$symbols" | grep -Eq '[^0-9]5mixlb'; then
  echo "skipped: $bin has no symbol table (stripped?)"
  exit 77
fi

status=0
for lib in libbpf libelf libuv libsodium libboost libspdlog libtomlplusplus; do
  if printf '%s\n' "$needed" | grep -q "^$lib"; then
    echo "mixlbctl needs $lib: $(printf '%s\n' "$needed" | grep "^$lib")"
    status=1
  fi
done
for what in 'libbpf:^bpf_' 'libbpf:^btf__' 'libuv:^uv_' 'libsodium:^sodium_' \
            'libsodium:^crypto_' 'Boost:[^0-9]5boost' 'spdlog:[^0-9]6spdlog' 'toml++:[^0-9]4toml'; do
  name=${what%%:*}
  pattern=${what#*:}
  found=$(printf '%s\n' "$symbols" | grep -E "$pattern" | head -n 3) || true
  if [ -n "$found" ]; then
    echo "mixlbctl holds code of $name, e.g.:"
    printf '  %s\n' $found
    status=1
  fi
done
[ "$status" -eq 0 ] && echo "mixlbctl needs only: $(echo $needed)"
exit "$status"
