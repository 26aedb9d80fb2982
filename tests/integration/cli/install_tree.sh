#!/usr/bin/env bash
# The install tree on its own: installs the build into a temporary prefix,
# then the installed modvm must list its own plugins from PREFIX's plugin
# folder (not the build tree's), boot the hello guest to power-off, and load
# the SDK example built against the installed pkg-config file.
# usage: install_tree.sh BUILD_DIR SOURCE_DIR
set -u
build=$1
work=$(mktemp -d /tmp/modvm-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
modvm=$prefix/bin/modvm
. "$(dirname "$0")/../lib.sh"

if ! cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1; then
	cat "$work/install.log"
	fail "cmake --install into $prefix"
	summarize
	exit 1
fi
check "installed binary" test -x "$modvm"
plugdir=$(dirname "$(find "$prefix" -name cpu-bt.so | head -n 1)")
check "cpu-bt.so installed" test -f "$plugdir/cpu-bt.so"
plugdir=$(cd "$plugdir" && pwd -P)

# Its own plugins, found through the relocatable path PREFIX/bin/../lib/...
expect_code 0 env -u MODVM_PLUGIN_PATH "$modvm" plugins
for p in cpu-bt serial-16550 acpi-pm pic-8259 pit-8254 rtc-cmos pci-host chardev-file; do
	expect_out "$plugdir/$p.so"
done
expect_out "search path: $plugdir"
if grep -qF "$build/plugins" <<<"$out"; then
	fail "installed modvm searched the build tree"
fi

# The hello guest (examples/hello.cfg, console into a file) to power-off.
cat >"$work/hello.cfg" <<CFG
vm: {
  name = "hello";
  machine = "pc";
  memory = "64M";
  cpu = { engine = "cpu-bt"; model = "baseline-v1"; };
  boot = { kernel = "$build/tests/guests/hello.bin"; format = "multiboot"; };
  devices = (
    { plugin = "serial-16550"; id = "com1"; backend = "file";
      path = "$work/hello.out"; append = false; }
  );
};
CFG
expect_code 0 env -u MODVM_PLUGIN_PATH timeout 120 "$modvm" run "$work/hello.cfg"
check "hello guest printed PASS" grep -q "^hello: PASS" "$work/hello.out"

# The SDK example, built against the installed pkg-config file only.
pc=$(find "$prefix" -name modvm-sdk.pc | head -n 1)
check "modvm-sdk.pc installed" test -n "$pc"
cp -r "$prefix/share/modvm/example" "$work/example"
check "example builds against $pc" env PKG_CONFIG_PATH="$(dirname "$pc")" \
	make -s -C "$work/example"
expect_code 0 env MODVM_PLUGIN_PATH="$work/example" "$modvm" plugins
expect_out "$work/example/example-debugcon.so"
expect_out "$plugdir/cpu-bt.so"
summarize
