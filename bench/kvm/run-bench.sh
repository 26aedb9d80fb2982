#!/bin/bash
# Benchmarks of the KVM engines (docs/performance.md, "KVM engines"):
#  1. kvm-bench: the KVM layer alone (compute ratio, exit round trips)
#  2. exitloop.asm, one multiboot kernel run whole under `modvm run` and,
#     when it is installed, under qemu-system-x86_64 -accel kvm (a reference
#     only): wall time of COMPUTE iterations, OUTS port writes and MMIOS
#     MMIO stores, each minus the run that does none of them; best of 3.
#
# usage: bench/kvm/run-bench.sh [BUILD_DIR]     (default: build)
set -u

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
modvm=$build/modvm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

case $(grep -m1 vendor_id /proc/cpuinfo) in
*AuthenticAMD*) engine=cpu-svm ;;
*) engine=cpu-vtx ;;
esac

echo "== kvm-bench (KVM layer, $(nproc) host CPUs, load $(cut -d' ' -f1 /proc/loadavg))"
"$build/bench/kvm/kvm-bench" || exit 1

COMPUTE=1000000000
OUTS=20000
MMIOS=20000

image() { # name COMPUTE OUTS MMIOS
	nasm -f bin -DCOMPUTE="$2" -DOUTS="$3" -DMMIOS="$4" \
		-o "$work/$1.bin" "$here/exitloop.asm" || exit 1
}

best() { # command...: best wall time of 3 runs, in ms
	local b=999999999 s e t
	for _ in 1 2 3; do
		s=$(date +%s%N)
		"$@" >/dev/null 2>&1 </dev/null || { echo "failed: $*" >&2; echo -1; return; }
		e=$(date +%s%N)
		t=$(((e - s) / 1000000))
		[ "$t" -lt "$b" ] && b=$t
	done
	echo "$b"
}

run_modvm() {
	cat > "$work/vm.cfg" <<CFG
vm: { memory = "64M"; cpus = 1; cpu = { engine = "$engine"; };
      boot = { kernel = "$work/$1.bin"; format = "multiboot"; }; };
CFG
	timeout 300 "$modvm" run "$work/vm.cfg"
}

run_qemu() {
	timeout 300 qemu-system-x86_64 -accel kvm -machine pc -m 64 -display none \
		-monitor none -serial none -kernel "$work/$1.bin"
}

image base 0 0 0
image compute $COMPUTE 0 0
image outs 0 $OUTS 0
image mmio 0 0 $MMIOS

report() { # vmm runner
	local base c o m
	base=$(best "$2" base)
	c=$(best "$2" compute)
	o=$(best "$2" outs)
	m=$(best "$2" mmio)
	echo "$1: whole run ${base} ms;" \
		"compute $(awk -v t=$((c - base)) -v n=$COMPUTE 'BEGIN{printf "%.2f", t*1e6/n}') ns/iteration;" \
		"PIO OUT $(awk -v t=$((o - base)) -v n=$OUTS 'BEGIN{printf "%.1f", t*1e3/n}') us;" \
		"MMIO store $(awk -v t=$((m - base)) -v n=$MMIOS 'BEGIN{printf "%.1f", t*1e3/n}') us"
}

echo "== exitloop.asm, whole guest ($COMPUTE iterations, $OUTS OUTs, $MMIOS MMIO stores)"
report "modvm $engine" run_modvm
if command -v qemu-system-x86_64 >/dev/null; then
	report "qemu -accel kvm" run_qemu
else
	echo "qemu-system-x86_64 not installed: no reference run"
fi
