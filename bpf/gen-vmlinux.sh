#!/bin/sh
# Regenerates the committed x86_64 vmlinux.h from the running kernel's BTF.
exec bpftool btf dump file /sys/kernel/btf/vmlinux format c > "$(dirname "$0")/vmlinux.h"
