#!/usr/bin/env bash
# Linux guest tests under cpu-bt, one case per invocation (docs/linux-guest.md).
# usage: linux.sh CASE BUILD_DIR SOURCE_DIR
set -u
case_name=$1
build=$2
src=$3
modvm=$build/modvm
guest=$build/guests/linux
work=$(mktemp -d /tmp/modvm-linux.XXXXXX)
trap 'rm -rf "$work"' EXIT
. "$(dirname "$0")/../lib.sh"
run=$src/tests/guests/linux/run.sh

case $case_name in
setup)
	# Downloads Debian's kernel and busybox-static (apt-get download,
	# cached in ~/.cache/modvm) and builds the initramfs.
	check "fetch and build the initramfs" "$src/tests/guests/linux/mkinitramfs.sh" "$guest"
	check "vmlinuz staged" test -s "$guest/vmlinuz"
	check "initrd.gz built" test -s "$guest/initrd.gz"
	;;
selftest)
	# uname, /proc/cpuinfo shows the model, shell arithmetic, sha256 of a
	# generated file against the host's hash, ACPI/IOAPIC/timers, a dmesg
	# scan for WARNING/BUG/Oops/panic, then poweroff -f -> exit 0.
	check "selftest under cpu-bt" "$run" -e cpu-bt -t 1400 -b "$build" -g "$guest" \
		-l "$work/console.log" selftest
	out=$(cat "$work/console.log")
	expect_out "MODVM-LINUX-READY"
	expect_out "cpu-model: modvm baseline-v1 CPU"
	expect_out "selftest: PASS"
	;;
selftest-interpret)
	# The same boot under the reference interpreter alone (mode =
	# interpret): the translator's default runs are compared with it.
	check "selftest under cpu-bt mode=interpret" env BT_MODE=interpret "$run" -e cpu-bt \
		-t 1400 -b "$build" -g "$guest" -l "$work/console.log" selftest
	out=$(cat "$work/console.log")
	expect_out "MODVM-LINUX-READY"
	expect_out "selftest: PASS"
	;;
selftest-xsave)
	# The same under the baseline-v1-xsave model: the kernel switches
	# tasks' FPU/SSE state with XSAVE/XRSTOR (docs/engines-bt.md).
	check "selftest under cpu-bt, model baseline-v1-xsave" "$run" -e cpu-bt \
		-m baseline-v1-xsave -t 1400 -b "$build" -g "$guest" \
		-l "$work/console.log" selftest
	out=$(cat "$work/console.log")
	expect_out "x86/fpu: Enabled xstate features 0x3"
	expect_out "selftest: PASS"
	;;
selftest-system | selftest-system-intel)
	# The same under the system models: the kernel turns on SMEP, SMAP,
	# UMIP, PCID and PKU, uses x2APIC MSRs only if it wants them and the
	# TSC-deadline timer; the Intel one takes Linux's Intel paths
	# (early_init_intel's microcode-revision MSR, no AMD MSRs).
	model=system-v1
	[ "$case_name" = selftest-system-intel ] && model=system-v1-intel
	check "selftest under cpu-bt, model $model" "$run" -e cpu-bt \
		-m "$model" -t 1400 -b "$build" -g "$guest" \
		-l "$work/console.log" selftest
	out=$(cat "$work/console.log")
	expect_out "cpu-model: modvm $model CPU"
	expect_out "User Mode Instruction Prevention (UMIP) activated"
	expect_out "TSC deadline timer available"
	expect_out " smep "
	expect_out " smap "
	expect_out " pku ospke "
	expect_out "selftest: PASS"
	;;
selftest-smp2 | selftest-smp2-intel)
	# Two vCPUs (two host threads): both come up through INIT/SIPI, the
	# selftest sees both in /proc/cpuinfo, and the TSCs agree. The v2
	# system models say the TSC is invariant (CPUID 0x80000007 EDX[8]):
	# without it Linux distrusts an AMD TSC across CPUs at once.
	model=system-v2
	[ "$case_name" = selftest-smp2-intel ] && model=system-v2-intel
	check "selftest under cpu-bt, 2 vCPUs, model $model" "$run" -e cpu-bt \
		-m "$model" -c 2 -t 1400 -b "$build" -g "$guest" \
		-l "$work/console.log" selftest
	out=$(cat "$work/console.log")
	expect_out "smp: Brought up 1 node, 2 CPUs"
	expect_out "model-name: ok (2)"
	expect_out " constant_tsc "
	expect_out "clock: ok (no clocksource marked unstable)"
	expect_out "selftest: PASS"
	;;
smp-par2 | smp-par4)
	# One sha256 worker pinned to each of N vCPUs at once (rootfs/scripts/
	# smp-par): the guest sees N CPUs, each worker ran on its CPU, and each
	# hash equals the host's.
	n=${case_name#smp-par}
	check "smp-par under cpu-bt, $n vCPUs" "$run" -e cpu-bt -m system-v2 -c "$n" \
		-t 1400 -b "$build" -g "$guest" -a "modvm.mib=16" -l "$work/console.log" smp-par
	out=$(cat "$work/console.log")
	expect_out "smp: Brought up 1 node, $n CPUs"
	expect_out "smp-par: nproc=$n mib=16 workers=$n"
	want=$(head -c 16M /dev/zero | sha256sum | cut -d ' ' -f 1)
	for ((k = 0; k < n; k++)); do
		expect_out "smp-par: worker $k cpu $k sha256 $want"
	done
	expect_out "smp-par: done"
	# every CPU was busy for the run: ticks > 0 on each
	ticks=$(sed -n 's/^smp-par: busy-ticks //p' "$work/console.log")
	check "busy ticks on $n CPUs ($ticks)" test "$(echo "$ticks" | awk '{ for (i = 1; i <= NF; i++) if ($i > 0) k++; print k + 0 }')" = "$n"
	grep "^smp-par: elapsed" "$work/console.log"
	;;
truncated-kernel)
	head -c 1000000 "$guest/vmlinuz" >"$work/vmlinuz"
	cat >"$work/vm.cfg" <<CFG
vm: { memory = "512M"; cpu = { engine = "cpu-bt"; };
  boot = { kernel = "$work/vmlinuz"; initrd = "$guest/initrd.gz"; format = "linux"; };
  devices = ( { plugin = "serial-16550"; id = "com1"; backend = "null"; } ); };
CFG
	expect_code 2 timeout 60 "$modvm" run "$work/vm.cfg"
	expect_out "$work/vmlinuz"
	expect_out "truncated"
	;;
corrupt-initrd)
	# A damaged initramfs: the kernel cannot start /init and panics;
	# panic=-1 and --no-reboot turn that into a non-zero exit, never a hang.
	cp "$guest/initrd.gz" "$work/initrd.gz"
	head -c 65536 /dev/urandom | dd of="$work/initrd.gz" bs=1 seek=2048 conv=notrunc 2>/dev/null
	"$run" -e cpu-bt -t 1400 -b "$build" -g "$guest" -i "$work/initrd.gz" \
		-l "$work/console.log" selftest >/dev/null 2>&1
	code=$?
	checks=$((checks + 1))
	[ "$code" != 0 ] && [ "$code" != 124 ] ||
		fail "a corrupted initrd ended with $code (0 = passed, 124 = watchdog)"
	out=$(cat "$work/console.log")
	expect_out "Kernel panic"
	expect_out "the guest reset itself; --no-reboot ends the run"
	;;
*)
	echo "unknown case $case_name"
	exit 2
	;;
esac
summarize
