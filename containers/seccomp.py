#!/usr/bin/env python3
"""Prints the seccomp profile mixlb's sidecar container runs with.

It is the container engine's default profile (containers-common's
/usr/share/containers/seccomp.json, the one podman applies when none is
given) with one change: bpf() and perf_event_open() are allowed to a
container that holds CAP_BPF or CAP_PERFMON respectively, not only to one
that holds CAP_SYS_ADMIN. The default profile (podman 4.3, Debian 12) dates
from before those capabilities split BPF and tracing out of CAP_SYS_ADMIN
(Linux 5.8) and answers bpf() with EPERM without it, so a sidecar with
exactly the capabilities it needs could not load its program. Everything
else the default profile refuses stays refused; the kernel still checks the
capabilities on every call.

    containers/seccomp.py [DEFAULT_PROFILE] > mixlb-seccomp.json
"""
import json
import sys

DEFAULT = "/usr/share/containers/seccomp.json"
# The syscall and the capability that, since Linux 5.8, grants it.
SPLIT = {"bpf": "CAP_BPF", "perf_event_open": "CAP_PERFMON"}


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    try:
        with open(path) as f:
            profile = json.load(f)
    except (OSError, ValueError) as e:
        print(f"seccomp.py: cannot read the default profile {path}: {e}", file=sys.stderr)
        return 1
    rules = []
    touched = 0
    for rule in profile.get("syscalls", []):
        names = rule.get("names", [])
        gated = [n for n in names if n in SPLIT]
        if not gated:
            rules.append(rule)
            continue
        # Drop these syscalls from the default's rules (the CAP_SYS_ADMIN
        # allow and the errno for everyone else); they get their own below.
        rest = [n for n in names if n not in SPLIT]
        touched += 1
        if rest:
            rules.append(dict(rule, names=rest))
    if touched == 0:
        print(f"seccomp.py: {path} has no rule about {', '.join(SPLIT)}; is it the engine's "
              "default profile?", file=sys.stderr)
        return 1
    for name, cap in SPLIT.items():
        # Includes: the container holds every listed capability; excludes:
        # it holds none of them. So: allowed with the split capability, or
        # with CAP_SYS_ADMIN alone (as before); refused with EPERM otherwise.
        rules.append({"names": [name], "action": "SCMP_ACT_ALLOW", "includes": {"caps": [cap]}})
        rules.append({"names": [name], "action": "SCMP_ACT_ALLOW",
                      "includes": {"caps": ["CAP_SYS_ADMIN"]}, "excludes": {"caps": [cap]}})
        rules.append({"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "excludes": {"caps": ["CAP_SYS_ADMIN", cap]}})
    profile["syscalls"] = rules
    json.dump(profile, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
