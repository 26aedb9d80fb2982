#!/usr/bin/env bash
# Installs modvm into a temporary prefix, builds the SDK example against that
# prefix only (pkg-config), runs its device tests through the installed
# harness (make check), checks the installed modvm finds and shows it, and
# runs a guest that writes to the example's port.
set -eu
build=$1
work=$(mktemp -d /tmp/modvm-sdk.XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" >/dev/null
test -x "$prefix/bin/modvm"
test -f "$prefix/include/modvm/modvm.h"
pc=$(find "$prefix" -name modvm-sdk.pc | head -n 1)
test -n "$pc"
cp -r "$prefix/share/modvm/example" "$work/example"
# Only the installed SDK: no include path into the source tree.
PKG_CONFIG_PATH=$(dirname "$pc") make -C "$work/example" >/dev/null
test -f "$work/example/example-debugcon.so"

# The installed binary uses its own plugin folder, not the build tree's.
out=$(MODVM_PLUGIN_PATH=$work/example "$prefix/bin/modvm" plugins)
echo "$out" | grep -q "example-debugcon .*device .*2.0.0 .*$work/example/example-debugcon.so"
if echo "$out" | grep -qF "$build/plugins"; then
	echo "FAIL: installed modvm searched the build tree"
	exit 1
fi
out=$(MODVM_PLUGIN_PATH=$work/example "$prefix/bin/modvm" inspect example-debugcon)
echo "$out" | grep -q "port             integer in 0..65535"
echo "$out" | grep -q "section debugcon, version 1"

# Its tests, through the harness installed with the SDK (modvm-harness.pc).
test -f "$prefix/include/modvm-harness/harness.h"
PKG_CONFIG_PATH=$(dirname "$pc") make -C "$work/example" check >"$work/check.log" 2>&1 ||
	{ cat "$work/check.log"; echo "FAIL: make check"; exit 1; }
grep -q "tests  *3  *3  *3  *0" "$work/check.log" ||
	{ cat "$work/check.log"; echo "FAIL: make check ran other than 3 passing tests"; exit 1; }

# A flat real-mode guest that writes "hi" to port 0xE9 and powers off
# through ACPI (PM1a_CNT at 0x604: SLP_EN with SLP_TYP 0, S5).
printf '\xb0\x68\xe6\xe9\xb0\x69\xe6\xe9\xba\x04\x06\xb8\x00\x20\xef\xf4\xeb\xfd' \
	>"$work/hi.bin"
cat >"$work/hi.cfg" <<CFG
vm: {
  memory = "16M";
  cpu = { engine = "cpu-bt"; };
  boot = { kernel = "$work/hi.bin"; format = "flat"; };
  devices = (
    { plugin = "example-debugcon"; id = "dbg"; backend = "file";
      path = "$work/dbg.log"; append = false; }
  );
};
CFG
MODVM_PLUGIN_PATH=$work/example timeout 60 "$prefix/bin/modvm" run "$work/hi.cfg" </dev/null
test "$(cat "$work/dbg.log")" = "hi" || { echo "FAIL: dbg.log holds \"$(cat "$work/dbg.log")\""; exit 1; }
echo "sdk out of tree: 1 passed, 0 failed"
