#!/usr/bin/env bash
# Installs modvm into a temporary prefix, builds the SDK example against that
# prefix only (pkg-config), and checks the installed modvm finds and shows it.
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
echo "sdk out of tree: 1 passed, 0 failed"
