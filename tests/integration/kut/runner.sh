#!/usr/bin/env bash
# bench/kvm-unit-tests/run.sh against a fake kvm-unit-tests tree: a
# unittests.cfg whose entries use small stand-in kernels (fake-test.asm)
# and options the runner must map or refuse. Checks each entry's result on
# the modvm side (and on the QEMU side where QEMU is installed), the
# counts, and the runner's refusals of trees it cannot use.
# usage: runner.sh BUILD_DIR SOURCE_DIR
set -u
build=$1
src=$2
runner=$src/bench/kvm-unit-tests/run.sh
work=$(mktemp -d /tmp/modvm-kut.XXXXXX)
trap 'rm -rf "$work"' EXIT
. "$src/tests/integration/lib.sh"

kut=$work/kut
mkdir -p "$kut/x86"
printf 'ARCH=x86_64\nTEST_DIR=x86\n' >"$kut/config.mak"
asm() { # asm NAME NASM_DEFINE...
	local name=$1
	shift
	nasm -f bin "$@" -o "$kut/x86/$name.flat" "$src/tests/integration/kut/fake-test.asm" ||
		fail "nasm $name"
}
asm pass -DEXIT_CODE=0
asm fail -DEXIT_CODE=1
asm skipall -DEXIT_CODE=38
asm poweroff -DPOWEROFF
asm hang -DHANG
asm cpus2 -DCPUS=2
asm args -DARGS
cat >"$kut/x86/unittests.cfg" <<'CFG'
# fake x86/unittests.cfg
[pass]
file = pass.flat

[fail]
file = fail.flat
arch = x86_64

[skipall]
file = skipall.flat

[poweroff]
file = poweroff.flat

[hang]
file = hang.flat
timeout = 3

[smp2]
file = cpus2.flat
smp = 2
qemu_params = -cpu qemu64 -m 64

[args]
file = args.flat
test_args = 'hello'

[i386-only]
file = pass.flat
arch = i386

[manual]
file = pass.flat
groups = vmexit nodefault

[kvm-only]
file = pass.flat
accel = kvm

[missing]
file = nothere.flat

[intel]
file = pass.flat
qemu_params = -cpu max,vendor=GenuineIntel

[x2apic]
file = pass.flat
qemu_params = -cpu qemu64,+x2apic

[la57]
file = pass.flat
qemu_params = -cpu qemu64,+la57

[xsave]
file = pass.flat
qemu_params = -cpu max,host-phys-bits

[q35]
file = pass.flat
qemu_params = -M q35 -device intel-iommu

[legacy]
file = args.flat
extra_params = -append 'hello'
CFG

qemu_opt=--no-qemu
command -v qemu-system-x86_64 >/dev/null && qemu_opt=
# shellcheck disable=SC2086
expect_code 1 "$runner" -b "$build" -o "$work/out" $qemu_opt "$kut"
echo "$out"
table=$out

# result ENTRY MODVM [QEMU] [REASON]: the entry's line shows these results
# (columns as the runner prints them: name 1-40, modvm 42-45, qemu 55-58)
result() {
	local line m q
	checks=$((checks + 1))
	line=$(grep "^$1 " <<<"$table")
	if [ -z "$line" ]; then
		fail "no line for $1"
		return
	fi
	m=$(cut -c42-45 <<<"$line" | tr -d ' ')
	q=$(cut -c55-58 <<<"$line" | tr -d ' ')
	[ "$m" != "$2" ] && fail "$1: modvm $m, expected $2: $line"
	if [ -z "$qemu_opt" ] && [ -n "${3:-}" ] && [ "$q" != "$3" ]; then
		fail "$1: qemu $q, expected $3: $line"
	fi
	if [ -n "${4:-}" ] && ! grep -qF -- "$4" <<<"$line"; then
		fail "$1: expected the reason \"$4\": $line"
	fi
}
result pass PASS PASS
result fail FAIL FAIL "test failures (status 3)"
result skipall SKIP SKIP "every subtest skipped"
result poweroff FAIL FAIL "exited 0: no debug-exit"
result hang FAIL FAIL "timeout (3s)"
result smp2 PASS PASS
result args PASS PASS
result legacy PASS PASS
result i386-only SKIP SKIP "i386 only"
result manual SKIP SKIP "test marked as manual run only"
result kvm-only SKIP SKIP "kvm only"
result missing SKIP SKIP "Test file 'nothere.flat' not found"
result intel PASS PASS
result x2apic PASS PASS
result la57 SKIP "" "needs CPU feature +la57"
result xsave PASS PASS "host-phys-bits"
result q35 SKIP "" "needs QEMU machine option q35"
out=$table
expect_out "PASS   7  FAIL   3  SKIP   7"
check "the model chosen for -cpu max has the most features" grep -q 'model = "system-v2-intel"' "$work/out/xsave.cfg"
check "vendor=GenuineIntel picks the Intel model" grep -q 'model = "system-v2-intel"' "$work/out/intel.cfg"
check "+x2apic picks a model with x2APIC" grep -q 'model = "system-v1"' "$work/out/x2apic.cfg"
check "the kernel's path starts the command line" grep -q "cmdline = \"$kut/x86/args.flat hello\"" "$work/out/args.cfg"
check "smp = 2 gives two vCPUs" grep -q "cpus = 2;" "$work/out/smp2.cfg"
check "-m 64 gives 64 MiB" grep -q 'memory = "64M"' "$work/out/smp2.cfg"

# -s runs only the entries named; -m forces a model
expect_code 0 "$runner" -b "$build" -o "$work/out2" --no-qemu -s pass,args -m baseline-v1 "$kut"
expect_out "PASS   2  FAIL   0  SKIP   0"
check "-m forces the model" grep -q 'model = "baseline-v1"' "$work/out2/pass.cfg"

# -f runs it without the feature, saying so
expect_code 0 "$runner" -b "$build" -o "$work/out3" --no-qemu -f -s la57 "$kut"
expect_out "without +la57 (no model has it)"
expect_out "PASS   1  FAIL   0  SKIP   0"

# trees the runner cannot use
expect_fail "give the top of a kvm-unit-tests tree" "$runner" -b "$build" --no-qemu "$src/tests"
mkdir -p "$work/bare/x86"
cp "$kut/x86/unittests.cfg" "$work/bare/x86/"
expect_fail "is not configured and built" "$runner" -b "$build" --no-qemu "$work/bare"
printf 'ARCH=x86_64\nCONFIG_EFI=y\n' >"$work/bare/config.mak"
expect_fail "configured for EFI" "$runner" -b "$build" --no-qemu "$work/bare"
printf 'ARCH=x86_64\n' >"$work/bare/config.mak"
expect_fail "no x86/*.flat" "$runner" -b "$build" --no-qemu "$work/bare"
summarize
