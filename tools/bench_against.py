#!/usr/bin/env python3
"""`./dev bench datapath --against REF`: the data path benchmark of this build
next to the one of another commit or build, in one run.

    tools/bench_against.py BUILD REF [--rounds N] [CASE...]

REF is a commit (anything `git rev-parse` takes: main, HEAD~3, a hash), a
build directory, or a datapath_bench binary. A commit is checked out into
BUILD/against/<hash>/src (a git worktree) and built there, in
BUILD/against/<hash>/build; both stay for the next run and are rebuilt only
when missing.

Why two processes and not two objects in one: each commit's benchmark loads
its own XDP object through its own sidecar code, so a change of the maps'
layout (a smaller key, a narrower table) is measured with the code that goes
with it. The two binaries run alternately, in rounds: round r runs this
build's benchmark and then REF's (odd rounds) or the other way round (even
rounds), each over the same cases. Every run still measures its program
against the trivial XDP_TX program of the same run (test/bench/datapath_bench.cc),
so each figure carries its own baseline.

Output, one JSON object per line:
  - every row of every run, with "build":"this"|"against" and "round":n added;
  - per case, after the last round, a summary with the medians over rounds:
      {"bench":"datapath","case":C,"compare":"<REF>","build":"summary",
       "ns_per_pkt":this,"against_ns_per_pkt":ref,"ratio":this/baseline,
       "against_ratio":ref/baseline,"change":x,"rounds":n}
    change = median over rounds of (this ns/pkt / REF ns/pkt of the same
    round) - 1: -0.25 is "25 % fewer ns/pkt". For live frames the figures
    are packets/s and change is this pps / REF pps - 1.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys


def die(msg):
    print(f"bench_against: {msg}", file=sys.stderr)
    sys.exit(2)


def emit(row):
    print(json.dumps(row, separators=(",", ":")), flush=True)


def source_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bench_in(build_dir):
    return os.path.join(build_dir, "test", "datapath_bench")


def commit_bench(build, ref):
    """The datapath_bench of commit `ref`, built in BUILD/against/<hash>."""
    root = source_root()
    sha = subprocess.run(["git", "-C", root, "rev-parse", "--verify", ref + "^{commit}"],
                         capture_output=True, text=True)
    if sha.returncode != 0:
        die(f"'{ref}' is neither a build directory, a binary nor a commit: {sha.stderr.strip()}")
    sha = sha.stdout.strip()
    home = os.path.join(os.path.abspath(build), "against", sha[:12])
    src, out = os.path.join(home, "src"), os.path.join(home, "build")
    if not os.path.isdir(src):
        os.makedirs(home, exist_ok=True)
        # A stale registration (a worktree directory removed by hand) would
        # refuse the path.
        subprocess.run(["git", "-C", root, "worktree", "prune"], check=True)
        subprocess.run(["git", "-C", root, "worktree", "add", "--detach", "--quiet", src, sha],
                       check=True)
    if not os.path.isfile(os.path.join(out, "build.ninja")):
        shutil.rmtree(out, ignore_errors=True)
        print(f"bench_against: configuring {ref} ({sha[:12]}) in {out}", file=sys.stderr)
        subprocess.run(["meson", "setup", out, src, "--buildtype=debugoptimized"], check=True,
                       stdout=subprocess.DEVNULL)
    print(f"bench_against: building {ref} ({sha[:12]})", file=sys.stderr)
    log = os.path.join(home, "ninja.log")
    with open(log, "w") as f:
        if subprocess.run(["ninja", "-C", out, "test/datapath_bench"], stdout=f,
                          stderr=subprocess.STDOUT).returncode != 0:
            die(f"building {ref} failed, see {log}")
    return bench_in(out), sha[:12]


def resolve(build, ref):
    """(binary, label) for REF."""
    if os.path.isfile(ref) and os.access(ref, os.X_OK):
        return os.path.abspath(ref), ref
    if os.path.isdir(ref):
        binary = bench_in(ref)
        if not os.access(binary, os.X_OK):
            die(f"{ref} is a directory without test/datapath_bench")
        return binary, ref
    binary, sha = commit_bench(build, ref)
    return binary, sha if sha.startswith(ref) else f"{ref} ({sha})"


def run_once(binary, cases):
    """The rows one run prints, by case (rows without a case are kept under None)."""
    proc = subprocess.run([binary, *cases], capture_output=True, text=True)
    rows = {}
    for line in proc.stdout.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        rows[row.get("case")] = row
    if proc.returncode != 0 and not rows:
        die(f"{binary} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return rows


def main(argv):
    args, cases, rounds = [], [], 5
    it = iter(argv)
    for a in it:
        if a == "--rounds":
            rounds = int(next(it, "0"))
        elif a.startswith("--rounds="):
            rounds = int(a.split("=", 1)[1])
        else:
            args.append(a)
    if len(args) < 2 or rounds < 1:
        die("usage: bench_against.py BUILD REF [--rounds N] [CASE...]")
    build, ref, cases = args[0], args[1], args[2:]
    this = bench_in(build)
    if not os.access(this, os.X_OK):
        die(f"{this} is missing: build first")
    other, label = resolve(build, ref)

    # figures[case][build] = list of (value, baseline-relative ratio) per round
    figures = {}
    for r in range(1, rounds + 1):
        order = [("this", this), ("against", other)]
        if r % 2 == 0:
            order.reverse()
        for name, binary in order:
            for case, row in run_once(binary, cases).items():
                row.update({"build": name, "round": r})
                emit(row)
                if case is None or "error" in row or "skipped" in row:
                    continue
                value = row.get("ns_per_pkt", row.get("pps"))
                figures.setdefault(case, {}).setdefault(name, {})[r] = (value, row.get("ratio"),
                                                                         "pps" in row)

    for case, by_build in figures.items():
        mine, theirs = by_build.get("this", {}), by_build.get("against", {})
        both = sorted(set(mine) & set(theirs))
        if not both:
            continue
        live = mine[both[0]][2]
        emit({
            "bench": "datapath", "case": case, "compare": label, "build": "summary",
            ("pps" if live else "ns_per_pkt"): statistics.median(mine[r][0] for r in both),
            ("against_pps" if live else "against_ns_per_pkt"): statistics.median(theirs[r][0] for r in both),
            "ratio": round(statistics.median(mine[r][1] for r in both), 2),
            "against_ratio": round(statistics.median(theirs[r][1] for r in both), 2),
            "change": round(statistics.median(mine[r][0] / theirs[r][0] for r in both) - 1, 3),
            "rounds": len(both),
        })


if __name__ == "__main__":
    main(sys.argv[1:])
