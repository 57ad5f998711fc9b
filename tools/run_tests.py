#!/usr/bin/env python3
"""Runs mixlb's test suites through `meson test` and counts test *cases*.

meson counts executables; a doctest executable holds dozens of cases and the
integration script holds several scenarios (TAP). This runner reads meson's
test log and counts what each executable reports: doctest's summary line,
TAP's ok / not ok lines. An executable that failed without a summary (a
crash) counts as one failed case.

Skips are never silent. Whatever a suite skips is counted and its reason is
printed on the suite's line and again in a "skipped:" list before the
summary:
  - doctest cases skipped through doctest::skip(...) are in doctest's summary;
    their reasons are the "[cases] skipped: reason" lines the tests print to
    stderr when they decide to skip;
  - a TAP "skip all" (`1..0 # SKIP reason`) counts the cases the suite would
    have run: those of another plan line `1..N` in its output, or N from a
    diagnostic line `# would run N cases`, or else one;
  - a TAP case `ok N - name # SKIP reason` counts as one skipped case;
  - an executable that exited 77 (meson's SKIP) without reporting cases counts
    as one skipped case, with the last line it printed as the reason.

Under CI (CI=true or CI=1) a skip fails the run: CI runs on a machine where
every suite can run, so a skip there means a missing install or set-up step
that would otherwise hide behind a green result. The last line is the one CI
reads:

    tests: N passed, M failed, S skipped
"""
import dataclasses
import json
import os
import re
import subprocess
import sys

SUITES = ("unit", "datapath", "gossip", "integration", "containers")
DOCTEST = re.compile(
    r"\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed\s*\|\s*(\d+) skipped")
# What a doctest executable prints to stderr for each group of cases it skips.
DOCTEST_SKIP_REASON = re.compile(r"^\[([^\]]+)\] skipped:\s*(.*)$")
TAP_LINE = re.compile(r"^(not ok|ok)\b\s*(\d+)?\s*(?:-\s*)?([^#]*)(#.*)?$")
TAP_DIRECTIVE_SKIP = re.compile(r"^#\s*SKIP\S*\s*(.*)$", re.IGNORECASE)
TAP_PLAN = re.compile(r"^1\.\.(\d+)\s*(#.*)?$")
TAP_WOULD_RUN = re.compile(r"^#\s*would run (\d+) cases?\b", re.IGNORECASE)
# meson's result for an executable that exited 77.
MESON_SKIP = "SKIP"


@dataclasses.dataclass
class Count:
    """The cases one meson test entry reported, and why any were skipped."""
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    reasons: list = dataclasses.field(default_factory=list)


def ci_enabled(environ):
    return environ.get("CI", "").strip().lower() in ("true", "1")


def last_line(text):
    lines = [line.strip().lstrip("#").strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else ""


def count_doctest(out, summaries, ok_exit):
    count = Count(passed=sum(int(d[1]) for d in summaries),
                  failed=sum(int(d[2]) for d in summaries),
                  skipped=sum(int(d[3]) for d in summaries))
    if not ok_exit and count.failed == 0:
        count.failed = 1
    for line in out.splitlines():
        m = DOCTEST_SKIP_REASON.match(line.strip())
        if m:
            count.reasons.append(f"{m.group(1)}: {m.group(2).strip() or 'no reason given'}")
    if count.skipped and not count.reasons:
        count.reasons.append("doctest::skip, no reason printed")
    return count


def count_tap(out):
    """Returns (Count, skip-all reason or None) for TAP output."""
    count = Count()
    skip_all = None
    planned = would_run = 0
    for line in out.splitlines():
        line = line.strip()
        m = TAP_PLAN.match(line)
        if m:
            if int(m.group(1)) == 0:
                directive = TAP_DIRECTIVE_SKIP.match(m.group(2) or "")
                skip_all = (directive.group(1).strip() if directive else "") or "no reason given"
            else:
                planned = max(planned, int(m.group(1)))
            continue
        m = TAP_WOULD_RUN.match(line)
        if m:
            would_run = int(m.group(1))
            continue
        m = TAP_LINE.match(line)
        if not m:
            continue
        directive = TAP_DIRECTIVE_SKIP.match(m.group(4) or "")
        if directive:
            count.skipped += 1
            name = m.group(3).strip() or f"case {m.group(2) or count.skipped}"
            count.reasons.append(f"{name}: {directive.group(1).strip() or 'no reason given'}")
        elif m.group(1) == "ok":
            count.passed += 1
        else:
            count.failed += 1
    if skip_all is not None:
        # The cases it would have run, so the skipped total shows what was lost.
        count.skipped += max(planned, would_run, 1)
        count.reasons.insert(0, skip_all)
    return count, skip_all


def count_cases(entry):
    """Returns the Count for one meson test entry."""
    out = (entry.get("stdout") or "") + "\n" + (entry.get("stderr") or "")
    result = entry.get("result", "")
    ok_exit = result in ("OK", "EXPECTEDFAIL", MESON_SKIP)
    summaries = DOCTEST.findall(out)
    if summaries:
        return count_doctest(out, summaries, ok_exit)
    count, skip_all = count_tap(out)
    if count.passed + count.failed + count.skipped == 0:
        if result == MESON_SKIP:
            reason = last_line(out) or "exit status 77, no reason printed"
            return Count(skipped=1, reasons=[reason])
        return Count(passed=1) if ok_exit else Count(failed=1)
    if not ok_exit and count.failed == 0:
        count.failed = 1
    return count


def report(entries, meson_failed, environ):
    """Prints one line per test, the skip list, the CI verdict and the
    summary (last); returns the exit status."""
    total = Count()
    skipped_lines = []
    for e in entries:
        c = count_cases(e)
        total.passed += c.passed
        total.failed += c.failed
        total.skipped += c.skipped
        name = e.get("name", "?").split(" / ")[-1]
        extra = f" ({'; '.join(c.reasons)})" if c.skipped else ""
        print(f"  {name:<14} {c.passed:4d} passed {c.failed:4d} failed {c.skipped:4d} skipped{extra}")
        if c.skipped:
            skipped_lines.append(f"  {name}: {c.skipped} skipped")
            skipped_lines += [f"    {reason}" for reason in c.reasons]
    if not entries:
        total.failed += 1
        print("  no test log was written (meson test failed to start)")
    elif meson_failed and total.failed == 0:
        total.failed += 1
    if skipped_lines:
        print("skipped:")
        print("\n".join(skipped_lines))
    status = 0 if total.failed == 0 else 1
    if total.skipped and ci_enabled(environ):
        print(f"CI: {total.skipped} test cases skipped; on this machine kind every suite can run,"
              " so a skip means a missing install or set-up step")
        status = 1
    print(f"tests: {total.passed} passed, {total.failed} failed, {total.skipped} skipped")
    return status


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

    entries = []
    if os.path.exists(log):
        with open(log) as f:
            entries = [json.loads(line) for line in f if line.strip()]
    print()
    return report(entries, proc.returncode != 0, os.environ)


if __name__ == "__main__":
    sys.exit(main())
