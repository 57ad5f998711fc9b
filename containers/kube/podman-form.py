#!/usr/bin/env python3
"""Writes the form of containers/kube/mixlb-pod.yaml that podman 4.3 plays.

Kubernetes (>= 1.29) runs mixlb as a native sidecar: an init container with
`restartPolicy: Always`. Debian's podman 4.3 runs init containers to
completion before the others and waits forever for one that never exits, so
`podman kube play` gets the same pod with that container moved, unchanged,
to the front of the ordinary containers. The other changes are the ones a
node's layout asks for, each given on the command line:

  --name NAME            the pod's name
  --node NODE            the app's --name (the node name it answers with)
  --image / --app-image  the images (tags built by containers/build-image.sh)
  --config FILE          the node's mixlb.toml (hostPath of the config)
  --run-dir DIR          the host directory mounted at /run/mixlb
  --keyring-dir DIR      a host directory holding the keyring file, mode 0400
                         (podman 4.3 writes a Secret volume's data without
                         decoding its base64, and with mode 0644: the
                         keyring volume becomes this hostPath instead)

hostNetwork stays: the pod shares the network namespace podman is started
in, which is the node's (the tests start it in the node namespace they
built, with nsenter --net, as podman 4.3 pods cannot take --network
ns:PATH), and a Localhost seccomp profile is also given as the annotation
podman 4.3 reads. Everything else (arguments, capabilities, seccomp profile, volume mounts, probes) is
the manifest's own, so what the tests play is what Kubernetes runs.

    podman-form.py [options] mixlb-pod.yaml > pod.yaml
"""
import argparse
import copy
import sys

import yaml


def convert(pod, args):
    out = copy.deepcopy(pod)
    spec = out["spec"]
    out["metadata"]["name"] = args.name
    sidecars = [c for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"]
    if len(sidecars) != 1 or sidecars[0]["name"] != "mixlb":
        raise ValueError("expected exactly one native sidecar, named mixlb, among the init containers")
    others = [c for c in spec.get("initContainers", []) if c.get("restartPolicy") != "Always"]
    sidecar = dict(sidecars[0])
    del sidecar["restartPolicy"]
    spec["containers"] = [sidecar] + spec["containers"]
    if others:
        spec["initContainers"] = others
    else:
        del spec["initContainers"]

    # podman 4.3 reads a Localhost seccomp profile from the annotation
    # Kubernetes used before the securityContext field (relative to
    # --seccomp-profile-root), not from the field: carry it over.
    annotations = out["metadata"].setdefault("annotations", {})
    for c in spec["containers"]:
        profile = c.get("securityContext", {}).get("seccompProfile", {})
        if profile.get("type") == "Localhost":
            annotations["container.seccomp.security.alpha.kubernetes.io/" + c["name"]] = \
                "localhost/" + profile["localhostProfile"]
    for c in spec["containers"]:
        if c["name"] == "mixlb" and args.image:
            c["image"] = args.image
        if c["name"] == "app":
            if args.app_image:
                c["image"] = args.app_image
            if args.node:
                a = c["args"]
                a[a.index("--name") + 1] = args.node
    volumes = {v["name"]: v for v in spec["volumes"]}
    if args.config:
        volumes["config"]["hostPath"]["path"] = args.config
    if args.run_dir:
        volumes["run"]["hostPath"]["path"] = args.run_dir
    if args.keyring_dir:
        volumes["keyring"].pop("secret")
        volumes["keyring"]["hostPath"] = {"path": args.keyring_dir, "type": "Directory"}
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("manifest")
    for flag in ("name", "node", "image", "app-image", "config", "run-dir", "keyring-dir"):
        p.add_argument("--" + flag)
    args = p.parse_args()
    try:
        with open(args.manifest) as f:
            pod = yaml.safe_load(f)
        args.name = args.name or pod["metadata"]["name"]
        out = convert(pod, args)
    except (OSError, KeyError, ValueError, yaml.YAMLError) as e:
        print(f"podman-form.py: {args.manifest}: {e}", file=sys.stderr)
        return 1
    yaml.safe_dump(out, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
