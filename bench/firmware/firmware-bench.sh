#!/usr/bin/env bash
# Firmware time to the boot sector: Debian's SeaBIOS boots the same boot
# sector (tests/integration/firmware/bootsect.asm) from a virtio-blk disk
# under modvm's cpu-bt and under QEMU TCG, runs alternating, one at a time.
# The figure is the host time from starting the process to the boot
# sector's first line on the serial console (stamped as it arrives, see
# bench/linux/stamp.sh), and to the process's exit (the boot sector ends
# the VM through isa-debug-exit). Medians of RUNS runs and their ratio.
# usage: firmware-bench.sh BUILD_DIR [RUNS] [BIOS]
#   RUNS: 11; BIOS: /usr/share/seabios/bios-256k.bin
set -eu
build=$(cd "$1" && pwd)
runs=${2:-11}
bios=${3:-/usr/share/seabios/bios-256k.bin}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
limit=60
. "$src/bench/linux/stamp.sh"
qemu=$(command -v qemu-system-x86_64 || true)
[ -n "$qemu" ] || { echo "qemu-system-x86_64 not installed (Debian qemu-system-x86)"; exit 77; }
[ -r "$bios" ] || { echo "$bios not found (Debian seabios)"; exit 77; }
work=$(mktemp -d /tmp/modvm-fwbench.XXXXXX)
trap 'rm -rf "$work"' EXIT

nasm -f bin -DNAME='"bench"' -o "$work/disk.img" "$src/tests/integration/firmware/bootsect.asm"
truncate -s 1M "$work/disk.img"
cat >"$work/vm.cfg" <<CFG
vm = {
  memory = "64M";
  cpus = 1;
  cpu = { engine = "cpu-bt"; };
  boot = { format = "firmware"; };
  devices = (
    { plugin = "pci-host"; id = "pci"; assign-bars = false; },
    { plugin = "bios"; id = "bios"; rom = "$bios"; },
    { plugin = "fw-cfg"; id = "fwcfg"; },
    { plugin = "debugcon"; id = "dbg"; backend = "null"; },
    { plugin = "serial-16550"; id = "com1"; backend = "stdio"; },
    { plugin = "isa-debug-exit"; id = "exit"; },
    { plugin = "virtio-blk"; id = "disk"; backend = "raw"; path = "$work/disk.img"; }
  );
};
CFG

run_modvm() { run_stamped "$1" "$build/modvm" run "$work/vm.cfg"; }
# The same machine in QEMU: i440FX, no VGA, no NIC, the ISA debug console
# at 0x402, a virtio-blk disk (modern, as modvm's), the exit port.
run_qemu() {
	run_stamped "$1" "$qemu" -accel tcg -M pc -m 64 -smp 1 -bios "$bios" \
		-nodefaults -no-user-config -display none -monitor none \
		-serial stdio -device isa-debug-exit,iobase=0xf4,iosize=1 \
		-drive file="$work/disk.img",format=raw,if=none,id=d0 \
		-device virtio-blk-pci,drive=d0,disable-legacy=on \
		-boot menu=off
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

: >"$work/m.sector"; : >"$work/m.exit"; : >"$work/q.sector"; : >"$work/q.exit"
for i in $(seq "$runs"); do
	for who in m q; do
		log=$work/$who.$i.log
		if [ $who = m ]; then run_modvm "$log" || true; else run_qemu "$log" || true; fi
		grep -q ' EXIT 33$' "$log" || { echo "run $i ($who) did not end with status 33:"; cat "$log"; exit 1; }
		stamp "$log" '^BOOT bench' >>"$work/$who.sector"
		stamp "$log" '^EXIT ' >>"$work/$who.exit"
	done
done
ms=$(median <"$work/m.sector"); me=$(median <"$work/m.exit")
qs=$(median <"$work/q.sector"); qe=$(median <"$work/q.exit")
echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "SeaBIOS $(basename "$bios"), $runs alternating runs, medians (seconds from process start):"
printf '  %-22s boot sector %s s   exit %s s\n' "modvm cpu-bt" "$ms" "$me"
printf '  %-22s boot sector %s s   exit %s s\n' "QEMU TCG $("$qemu" --version | head -1 | awk '{print $4}')" "$qs" "$qe"
echo "  modvm / QEMU: boot sector $(ratio "$ms" "$qs"), exit $(ratio "$me" "$qe")"
