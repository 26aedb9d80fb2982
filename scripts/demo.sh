#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for modvm, builds it, and boots the demo
# VM: Debian's own Linux kernel and busybox (fetched with apt-get download,
# never installed) to an interactive shell under cpu-bt, the software engine
# (examples/linux-shell.cfg). Ctrl-A x or `poweroff -f` in the guest ends it.
# DEMO=hello boots a small multiboot test kernel instead (under a second).
set -euo pipefail
cd "$(dirname "$0")/.."
"$(dirname "$0")/deps.sh"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
echo
build/modvm plugins
echo
if [ "${DEMO:-linux}" = hello ]; then
	cfg=examples/hello.cfg
else
	tests/guests/linux/mkinitramfs.sh   # fetches the kernel and busybox once
	cfg=examples/linux-shell.cfg
	echo "cpu-bt translates 64-bit guest code: the shell prompt takes 10-30 s on a 2-core host."
fi
echo "== booting $cfg (Ctrl-A x quits, Ctrl-A h for help) =="
exec build/modvm run "$cfg"
