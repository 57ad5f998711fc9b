#!/usr/bin/env bash
# Draws the medians of a `./dev bench e2e` run (integration/e2e.sh) as one
# PNG: requests/s and p99 latency per path for the keep-alive and the
# `Connection: close` workloads, and iperf3's Mbit/s per path.
#
#   ./dev bench e2e | tee e2e.jsonl
#   integration/e2e-plot.sh e2e.jsonl [OUT.png]     (default docs/e2e.png)
#
# Needs python3 and gnuplot (Debian's gnuplot-nox, installed by ./dev).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
in=${1:?usage: $0 RESULTS.jsonl [OUT.png]}
out=${2:-$root/docs/e2e.png}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mixlb-e2e-plot.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT

# Two data files from the median rows: per HTTP path "path keepalive_rps
# close_rps keepalive_p99 close_p99", per iperf path "path mbit"; and the
# setup for the title.
python3 - "$in" "$tmp" <<'EOF'
import json, sys
src, tmp = sys.argv[1], sys.argv[2]
med, setup = {}, {}
for line in open(src):
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    if r.get("bench") != "e2e":
        continue
    if "setup" in r:
        setup = r["setup"]
    elif r.get("round") == "median":
        med[r["workload"], r["path"]] = r
if not med:
    sys.exit("no median rows in " + src)
with open(tmp + "/http.dat", "w") as f:
    for p in ("direct", "vip", "nftables", "haproxy"):
        k, c = med.get(("keepalive", p), {}), med.get(("close", p), {})
        f.write("%s %s %s %s %s\n" % (p, k.get("req_per_s", "NaN"), c.get("req_per_s", "NaN"),
                                      k.get("p99_ms", "NaN"), c.get("p99_ms", "NaN")))
with open(tmp + "/iperf.dat", "w") as f:
    for p in ("direct", "vip_local", "vip_forwarded"):
        f.write("%s %s\n" % (p, med.get(("iperf", p), {}).get("mbit_per_s", "NaN")))
with open(tmp + "/title", "w") as f:
    # Runs before the switch was named in the setup row ran on the bridge.
    f.write("mixlb e2e: medians of %s rounds, wrk -c %s, %s-byte page, XDP %s, %s switch, %s CPUs" % (
        setup.get("rounds", "?"), setup.get("wrk_connections", "?"), setup.get("page_bytes", "?"),
        setup.get("xdp_mode", "?"), setup.get("switch", "bridge"), setup.get("cpus", "?")))
EOF

# Two series per cluster with gap 1: the bars are 1/3 wide, centred 1/6
# left and right of the cluster's x; each carries its figure.
gnuplot <<EOF
set terminal pngcairo size 1200,420 font "DejaVu Sans,10" noenhanced
set output "$out"
set multiplot layout 1,3 title "$(cat "$tmp/title")"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0
set key below
set title "requests/s (higher is better)"
plot "$tmp/http.dat" using 2:xtic(1) title "keep-alive" lc rgb "#3b75af", \
     "" using 3 title "Connection: close" lc rgb "#ef8636", \
     "" using (\$0 - 1.0/6):2:(sprintf("%.0f", \$2)) with labels offset 0,0.6 font ",8" notitle, \
     "" using (\$0 + 1.0/6):3:(sprintf("%.0f", \$3)) with labels offset 0,0.6 font ",8" notitle
set title "p99 latency, ms (lower is better)"
plot "$tmp/http.dat" using 4:xtic(1) title "keep-alive" lc rgb "#3b75af", \
     "" using 5 title "Connection: close" lc rgb "#ef8636", \
     "" using (\$0 - 1.0/6):4:(sprintf("%.1f", \$4)) with labels offset 0,0.6 font ",8" notitle, \
     "" using (\$0 + 1.0/6):5:(sprintf("%.1f", \$5)) with labels offset 0,0.6 font ",8" notitle
set title "iperf3, one stream, Mbit/s (higher is better)"
plot "$tmp/iperf.dat" using 2:xtic(1) title "client to server" lc rgb "#519e3e", \
     "" using 0:2:(sprintf("%.0f", \$2)) with labels offset 0,0.6 font ",8" notitle
unset multiplot
EOF
echo "wrote $out ($(stat -c %s "$out") bytes)" >&2
