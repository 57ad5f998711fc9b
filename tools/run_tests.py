#!/usr/bin/env python3
"""Runs mixlb's test suites through `meson test` and counts test *cases*.

meson counts executables; a doctest executable holds dozens of cases and the
integration script holds several scenarios (TAP). This runner reads meson's
test log and counts what each executable reports: doctest's summary line,
TAP's ok / not ok lines. An executable that failed without a summary (a
crash) counts as one failed case. The last line is the one CI reads:

    tests: N passed, M failed, S skipped
"""
import json
import os
import re
import subprocess
import sys

SUITES = ("unit", "datapath", "gossip", "integration")
DOCTEST = re.compile(
    r"\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed\s*\|\s*(\d+) skipped")
TAP_LINE = re.compile(r"^(not ok|ok)\b(.*)$")
TAP_SKIP_ALL = re.compile(r"^1\.\.0\s*#\s*SKIP\b(.*)$", re.IGNORECASE)


def count_cases(entry):
    """Returns (passed, failed, skipped, note) for one meson test entry."""
    out = (entry.get("stdout") or "") + "\n" + (entry.get("stderr") or "")
    result = entry.get("result", "")
    ok_exit = result in ("OK", "EXPECTEDFAIL", "SKIP")
    docs = DOCTEST.findall(out)
    if docs:
        passed = sum(int(d[1]) for d in docs)
        failed = sum(int(d[2]) for d in docs)
        skipped = sum(int(d[3]) for d in docs)
        if not ok_exit and failed == 0:
            failed = 1
        return passed, failed, skipped, ""
    passed = failed = skipped = 0
    note = ""
    for line in out.splitlines():
        line = line.strip()
        m = TAP_SKIP_ALL.match(line)
        if m:
            note = "skipped:" + m.group(1)
            continue
        m = TAP_LINE.match(line)
        if not m:
            continue
        directive = m.group(2)
        if re.search(r"#\s*SKIP", directive, re.IGNORECASE):
            skipped += 1
        elif m.group(1) == "ok":
            passed += 1
        else:
            failed += 1
    if passed + failed + skipped == 0 and not note:
        if result == "SKIP":
            return 0, 0, 1, "skipped"
        return (1, 0, 0, "") if ok_exit else (0, 1, 0, "")
    if not ok_exit and failed == 0:
        failed = 1
    return passed, failed, skipped, note


def main():
    if len(sys.argv) < 2:
        print("usage: run_tests.py BUILD_DIR [suite...]", file=sys.stderr)
        return 2
    build = sys.argv[1]
    suites = sys.argv[2:] or list(SUITES)
    for s in suites:
        if s not in SUITES:
            print(f"unknown suite '{s}' (known: {', '.join(SUITES)})", file=sys.stderr)
            return 2
    cmd = ["meson", "test", "-C", build, "--no-rebuild", "--print-errorlogs"]
    for s in suites:
        cmd += ["--suite", s]
    log = os.path.join(build, "meson-logs", "testlog.json")
    if os.path.exists(log):
        os.remove(log)
    proc = subprocess.run(cmd)

    total_p = total_f = total_s = 0
    entries = []
    if os.path.exists(log):
        with open(log) as f:
            entries = [json.loads(line) for line in f if line.strip()]
    print()
    for e in entries:
        p, f, s, note = count_cases(e)
        total_p, total_f, total_s = total_p + p, total_f + f, total_s + s
        extra = f" ({note.strip()})" if note else ""
        name = e.get("name", "?").split(" / ")[-1]
        print(f"  {name:<14} {p:4d} passed {f:4d} failed {s:4d} skipped{extra}")
    if not entries:
        total_f += 1
        print("  no test log was written (meson test failed to start)")
    elif proc.returncode != 0 and total_f == 0:
        total_f += 1
    print(f"tests: {total_p} passed, {total_f} failed, {total_s} skipped")
    return 0 if total_f == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
