#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for modvm, builds it, and boots the demo
# VM (examples/hello.cfg: a test kernel under the cpu-bt software engine).
# When the Linux guest kit is built (tests/guests/linux/, docs/linux-guest.md)
# `DEMO=linux scripts/demo.sh` boots examples/linux-shell.cfg instead.
set -euo pipefail
cd "$(dirname "$0")/.."
"$(dirname "$0")/deps.sh"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
echo
build/modvm plugins
echo
cfg=examples/hello.cfg
if [ "${DEMO:-}" = linux ]; then
	tests/guests/linux/fetch.sh
	tests/guests/linux/mkinitramfs.sh
	cfg=examples/linux-shell.cfg
fi
echo "== booting $cfg (Ctrl-A x quits, Ctrl-A h for help) =="
exec build/modvm run "$cfg"
