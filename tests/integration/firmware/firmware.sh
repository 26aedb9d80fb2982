#!/usr/bin/env bash
# Firmware boot tests (docs/boot.md, "Firmware boot"): Debian's SeaBIOS at
# the reset vector boots a boot sector that this script assembles (nasm,
# bootsect.asm) onto a fresh disk image, under cpu-bt; bad ROM images and
# configs are refused with a message naming the file.
# usage: firmware.sh CASE BUILD_DIR SOURCE_DIR
#   CASE: virtio | bootorder | reboot | ide-disk | ide-cdrom | linuxboot | linux |
#         bad-rom | bad-guest | kvm
# Exit 77 (skipped) when the seabios package or nasm (or, for ide-cdrom,
# xorriso) is missing.
set -u
case=$1
build=$2
src=$3
modvm=$build/modvm
here=$src/tests/integration/firmware
bios=${MODVM_TEST_BIOS:-/usr/share/seabios/bios-256k.bin}
work=$(mktemp -d /tmp/modvm-firmware.XXXXXX)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
. "$src/tests/integration/lib.sh"

[ -r "$bios" ] || { echo "SKIP: $bios not found (Debian package seabios)"; exit 77; }
command -v nasm >/dev/null || { echo "SKIP: nasm not installed"; exit 77; }

# disk NAME: a 1 MiB image whose boot sector says NAME.
disk() {
	nasm -f bin -DNAME="\"$1\"" -o "$work/$1.img" "$here/bootsect.asm" || exit 1
	truncate -s 1M "$work/$1.img"
}

# vmcfg ENGINE DEVICES...: a firmware-boot config; the serial console goes
# to $work/serial.log, SeaBIOS's log (port 0x402) to $work/debug.log.
vmcfg() {
	local engine=$1
	shift
	cat >"$work/vm.cfg" <<CFG
vm = {
  memory = "64M";
  cpus = ${cpus:-1};
  cpu = { engine = "$engine"; };
  boot = { format = "firmware"; };
  devices = (
    { plugin = "pci-host"; id = "pci"; assign-bars = false; },
    { plugin = "bios"; id = "bios"; rom = "$bios"; },
    { plugin = "debugcon"; id = "dbg"; backend = "file"; path = "$work/debug.log"; },
    { plugin = "serial-16550"; id = "com1"; backend = "file"; path = "$work/serial.log"; },
    { plugin = "isa-debug-exit"; id = "exit"; }$(for d in "$@"; do printf ',\n    %s' "$d"; done)
  );
};
CFG
}

# boot WANT_STATUS: run the config (at most 60 s), check the exit status.
boot() {
	local t0 t1
	rm -f "$work/serial.log" "$work/debug.log"
	t0=$(date +%s%N)
	expect_code "$1" timeout 60 "$modvm" run "$work/vm.cfg"
	t1=$(date +%s%N)
	echo "boot took $(( (t1 - t0) / 1000000 )) ms"
	serial=$(cat "$work/serial.log" 2>/dev/null)
	debug=$(cat "$work/debug.log" 2>/dev/null)
}

has() { # has TEXT IN WHAT: fixed string
	checks=$((checks + 1))
	grep -qF -- "$1" <<<"$2" || { fail "expected \"$1\" in $3; it holds:"; sed 's/^/    /' <<<"$2" | tail -40; }
}

# cdrom NAME: an El Torito ISO (xorriso) booting the CD variant of the
# boot sector, no emulation.
cdrom() {
	command -v xorriso >/dev/null || { echo "SKIP: xorriso not installed (scripts/deps.sh)"; exit 77; }
	mkdir -p "$work/iso-$1"
	nasm -f bin -DCDROM -DNAME="\"$1\"" -o "$work/iso-$1/boot.img" "$here/bootsect.asm" || exit 1
	xorriso -as mkisofs -quiet -o "$work/$1.iso" -b boot.img -no-emul-boot \
		-boot-load-size 4 "$work/iso-$1" 2>/dev/null || { fail "xorriso failed"; exit 1; }
}

ide() { # ide ID CHANNEL MEDIA IMAGE
	printf '{ plugin = "ide"; id = "%s"; channel = "%s"; media = "%s"; backend = "raw"; path = "%s"; }' "$1" "$2" "$3" "$4"
}

fwcfg() { printf '{ plugin = "fw-cfg"; id = "fwcfg";%s }' "${1:+ bootorder = \"$1\";}"; }
vblk() { printf '{ plugin = "virtio-blk"; id = "%s"; slot = %s; backend = "raw"; path = "%s"; }' "$1" "$2" "$work/$1.img"; }

case_virtio() {
	disk disk-a
	vmcfg cpu-bt "$(fwcfg)" "$(vblk disk-a 2)"
	boot 33
	has "SeaBIOS (version" "$debug" "the 0x402 log"
	has "Found QEMU fw_cfg" "$debug" "the 0x402 log"
	has "qemu/e820: addr 0x0000000000100000 len 0x0000000003f00000 [RAM]" "$debug" "the 0x402 log"
	has "Booting from Hard Disk" "$debug" "the 0x402 log"
	has "BOOT disk-a" "$serial" "the serial console"
	has "SECTOR1 disk-a" "$serial" "the serial console"
	# four vCPUs: SeaBIOS wakes the APs (INIT-SIPI) and counts them
	cpus=4 vmcfg cpu-bt "$(fwcfg)" "$(vblk disk-a 2)"
	boot 33
	has "Found 4 cpu(s) max supported 4 cpu(s)" "$debug" "the 0x402 log (4 vCPUs)"
	has "BOOT disk-a" "$serial" "the serial console (4 vCPUs)"
}

# Two disks: without bootorder the first found boots, with it the one named.
case_bootorder() {
	disk disk-a
	disk disk-b
	vmcfg cpu-bt "$(fwcfg)" "$(vblk disk-a 2)" "$(vblk disk-b 3)"
	boot 33
	has "BOOT disk-a" "$serial" "the serial console (no bootorder)"
	vmcfg cpu-bt "$(fwcfg '/pci@i0cf8/*@3;HALT')" "$(vblk disk-a 2)" "$(vblk disk-b 3)"
	boot 33
	has "BOOT disk-b" "$serial" "the serial console (bootorder slot 3)"
	has "SECTOR1 disk-b" "$serial" "the serial console (bootorder slot 3)"
}

# The boot sector resets the platform (0xCF9) once: the shadow is
# refilled, the CPU starts at the reset vector again, SeaBIOS boots anew.
case_reboot() {
	nasm -f bin -DREBOOT -DNAME='"reboot"' -o "$work/reboot.img" "$here/bootsect.asm" || exit 1
	truncate -s 1M "$work/reboot.img"
	vmcfg cpu-bt "$(fwcfg)" "$(printf '{ plugin = "virtio-blk"; id = "d"; slot = 2; backend = "raw"; path = "%s"; }' "$work/reboot.img")"
	boot 33
	has "FIRST BOOT, RESETTING" "$serial" "the serial console"
	has "SECOND BOOT" "$serial" "the serial console"
	has "SECTOR1 reboot" "$serial" "the serial console"
	checks=$((checks + 1))
	[ "$(grep -c 'Booting from Hard Disk' <<<"$debug")" = 2 ] || fail "expected two boots in the 0x402 log"
}

case_ide_disk() {
	disk disk-a
	vmcfg cpu-bt "$(fwcfg)" "$(ide hd0 primary disk "$work/disk-a.img")"
	boot 33
	has "ata0-0: MODVM HARDDISK ATA-6 Hard-Disk" "$debug" "the 0x402 log"
	has "BOOT disk-a" "$serial" "the serial console"
	has "SECTOR1 disk-a" "$serial" "the serial console"
}

# An IDE disk on the primary channel and an ISO on the secondary: the disk
# boots first, and with bootorder naming the CD-ROM the CD boots, reading
# its volume descriptor through INT 13h.
case_ide_cdrom() {
	disk disk-a
	cdrom cd
	vmcfg cpu-bt "$(fwcfg)" "$(ide hd0 primary disk "$work/disk-a.img")" "$(ide cd0 secondary cdrom "$work/cd.iso")"
	boot 33
	has "DVD/CD [ata1-0: MODVM CD-ROM ATAPI-6 DVD/CD]" "$debug" "the 0x402 log"
	has "BOOT disk-a" "$serial" "the serial console (no bootorder)"
	vmcfg cpu-bt "$(fwcfg '/pci@i0cf8/*@1/drive@1/disk@0')" "$(ide hd0 primary disk "$work/disk-a.img")" "$(ide cd0 secondary cdrom "$work/cd.iso")"
	boot 33
	has "Booting from DVD/CD" "$debug" "the 0x402 log"
	has "BOOT cd" "$serial" "the serial console (bootorder CD-ROM)"
	has "PVD CD001" "$serial" "the serial console (bootorder CD-ROM)"
}

# A kernel through the firmware: fw-cfg's kernel/initrd/cmdline and
# modvm's own linuxboot option ROM (linuxboot.asm), run by SeaBIOS ahead of
# the disk; the stand-in kernel (fakelinux.asm) prints what the loader put
# in its setup header. Where Debian's qemu-system-data is installed, the
# same with QEMU's ROM (linuxboot-rom): the items are the same interface.
# Bad kernels and ROMs are refused, naming them.
case_linuxboot() {
	local qrom=/usr/share/qemu/linuxboot_dma.bin
	disk disk-a
	nasm -f bin -o "$work/fakelinux.bin" "$here/fakelinux.asm" || exit 1
	echo "an initrd" >"$work/initrd.img"
	lb() { printf '{ plugin = "fw-cfg"; id = "fwcfg"; kernel = "%s"; initrd = "%s"; cmdline = "console=ttyS0 modvm=linuxboot"; %s }' "$1" "$work/initrd.img" "${2:-}"; }
	vmcfg cpu-bt "$(lb "$work/fakelinux.bin")" "$(vblk disk-a 2)"
	boot 33
	has "1: /rom@genroms/linuxboot.bin" "$debug" "the 0x402 log (boot order)"
	has "LINUXBOOT loader 0xb0" "$serial" "the serial console"
	has "cmdline: console=ttyS0 modvm=linuxboot" "$serial" "the serial console"
	has "initrd size 0x0000000a" "$serial" "the serial console"
	if [ -r "$qrom" ]; then
		vmcfg cpu-bt "$(lb "$work/fakelinux.bin" "linuxboot-rom = \"$qrom\";")" "$(vblk disk-a 2)"
		boot 33
		has "LINUXBOOT loader 0xb0" "$serial" "the serial console (QEMU's ROM)"
		has "initrd size 0x0000000a" "$serial" "the serial console (QEMU's ROM)"
	else
		echo "note: no $qrom (Debian qemu-system-data): only modvm's own ROM tried"
	fi
	vmcfg cpu-bt "$(lb "$work/disk-a.img")" "$(vblk disk-a 2)"
	expect_fail "kernel: $work/disk-a.img is not a Linux bzImage" timeout 20 "$modvm" run "$work/vm.cfg"
	vmcfg cpu-bt "$(lb "$work/fakelinux.bin" "linuxboot-rom = \"$work/missing.bin\";")" "$(vblk disk-a 2)"
	expect_fail "linuxboot-rom: $work/missing.bin" timeout 20 "$modvm" run "$work/vm.cfg"
	vmcfg cpu-bt "$(lb "$work/fakelinux.bin" "linuxboot-rom = \"$work/initrd.img\";")" "$(vblk disk-a 2)"
	expect_fail "is not an option ROM" timeout 20 "$modvm" run "$work/vm.cfg"
}

# Debian's kernel and the test initramfs (linux/setup) through SeaBIOS and
# modvm's linuxboot ROM, to the guest's init running a script: the console must
# show the kernel's E820 map from SeaBIOS and the init's markers. SeaBIOS's
# ACPI tables do not describe modvm's PM block, so the guest's power-off
# halts instead; the run is ended here once the markers are seen.
case_linux() {
	local g=$build/guests/linux pid i
	[ -r "$g/vmlinuz" ] && [ -r "$g/initrd.gz" ] || { echo "SKIP: no $g/vmlinuz: run linux/setup first"; exit 77; }
	vmcfg cpu-bt "$(printf '{ plugin = "fw-cfg"; id = "fwcfg"; kernel = "%s"; initrd = "%s"; cmdline = "console=ttyS0 panic=-1 modvm.script=none"; }' "$g/vmlinuz" "$g/initrd.gz")"
	sed -i 's/memory = "64M"/memory = "512M"/' "$work/vm.cfg"
	"$modvm" run --no-reboot "$work/vm.cfg" >"$work/out.log" 2>&1 &
	pid=$!
	for i in $(seq 240); do
		grep -q "MODVM-SCRIPT-END none" "$work/serial.log" 2>/dev/null && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	echo "waited $((i / 2)) s"
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	serial=$(cat "$work/serial.log" 2>/dev/null)
	debug=$(cat "$work/debug.log" 2>/dev/null)
	has "1: /rom@genroms/linuxboot.bin" "$debug" "the 0x402 log (boot order)"
	has "Command line: console=ttyS0 panic=-1 modvm.script=none" "$serial" "the serial console"
	has "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable" "$serial" "the serial console"
	has "MODVM-LINUX-READY" "$serial" "the serial console"
	has "MODVM-SCRIPT-END none rc=127" "$serial" "the serial console"
}

# A hostile boot sector (hostile.asm) hammers fw_cfg (with DMA) and an IDE
# disk after SeaBIOS booted it; modvm survives, the DMA errors are reported.
case_bad_guest() {
	nasm -f bin -o "$work/hostile.img" "$here/hostile.asm" || exit 1
	truncate -s 1M "$work/hostile.img"
	truncate -s 1M "$work/scratch.img"
	vmcfg cpu-bt '{ plugin = "fw-cfg"; id = "fwcfg"; dma = true; bootorder = "/pci@i0cf8/*@3"; }' \
		"$(printf '{ plugin = "virtio-blk"; id = "boot"; slot = 3; backend = "raw"; path = "%s"; }' "$work/hostile.img")" \
		"$(ide hd0 primary disk "$work/scratch.img")"
	boot 33
	has "QEMU fw_cfg DMA interface supported" "$debug" "the 0x402 log"
	has "HOSTILE START" "$serial" "the serial console"
	has "DMA beyond RAM: 1" "$serial" "the serial console"
	has "DMA write: 1" "$serial" "the serial console"
	has "HOSTILE DONE" "$serial" "the serial console"
}

# bad ROM images and configs: refused before the guest runs, naming the file.
case_bad_rom() {
	disk disk-a
	local good=$bios
	head -c 100000 /dev/zero >"$work/odd.bin"
	truncate -s 17M "$work/huge.bin"
	: >"$work/empty.bin"
	for b in "$work/missing.bin" "$work/odd.bin" "$work/huge.bin" "$work/empty.bin" "$work"; do
		bios=$b
		vmcfg cpu-bt "$(fwcfg)" "$(vblk disk-a 2)"
		expect_fail "rom $b" timeout 20 "$modvm" run "$work/vm.cfg"
	done
	bios=$work/missing.bin
	vmcfg cpu-bt
	expect_fail "install Debian package seabios" timeout 20 "$modvm" run "$work/vm.cfg"
	bios=$work/odd.bin
	vmcfg cpu-bt
	expect_fail "multiple of 64 KiB" timeout 20 "$modvm" run "$work/vm.cfg"
	bios=$work/huge.bin
	vmcfg cpu-bt
	expect_fail "at most 16 MiB" timeout 20 "$modvm" run "$work/vm.cfg"
	bios=$good
	# format = "firmware" without a ROM device, and with a kernel
	cat >"$work/vm.cfg" <<CFG
vm = { memory = "64M"; cpu = { engine = "cpu-bt"; }; boot = { format = "firmware"; }; devices = ( ); };
CFG
	expect_fail 'needs a firmware ROM: add { plugin = "bios"' timeout 20 "$modvm" run "$work/vm.cfg"
	expect_fail 'needs a firmware ROM: add { plugin = "bios"' timeout 20 "$modvm" check "$work/vm.cfg"
	cat >"$work/vm.cfg" <<CFG
vm = { memory = "64M"; cpu = { engine = "cpu-bt"; }; boot = { format = "firmware"; kernel = "x"; }; devices = ( ); };
CFG
	expect_fail 'boots from the disks: drop kernel' timeout 20 "$modvm" run "$work/vm.cfg"
	# a ROM that is not a BIOS: all zeros is "add [bx+si], al" for ever;
	# modvm must not crash, and the run ends at the timeout
	head -c 65536 /dev/zero >"$work/zero.bin"
	bios=$work/zero.bin
	vmcfg cpu-bt
	checks=$((checks + 1))
	timeout 5 "$modvm" run "$work/vm.cfg" >/dev/null 2>&1
	local rc=$?
	[ "$rc" = 124 ] || [ "$rc" = 4 ] || [ "$rc" = 0 ] || fail "a zero ROM ended modvm with $rc (expected the timeout, a reset or a power-off)"
	bios=$good
}

# KVM engines (cpu-svm on AMD, cpu-vtx on Intel): the same boot. SeaBIOS's
# first instruction is fetched from the ROM, which modvm maps as MMIO, and
# KVM executes only from memory slots: until the ROM gets a read-only slot
# the engine refuses the reset vector, and the case skips saying so.
case_kvm() {
	local engine vendor
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm not usable"; exit 77; }
	vendor=$(grep -m1 '^vendor_id' /proc/cpuinfo | awk '{print $3}')
	case "$vendor" in
	AuthenticAMD) engine=cpu-svm ;;
	GenuineIntel) engine=cpu-vtx ;;
	*) echo "SKIP: CPU vendor '$vendor' has no KVM engine"; exit 77 ;;
	esac
	disk disk-a
	vmcfg "$engine" "$(fwcfg)" "$(vblk disk-a 2)"
	rm -f "$work/serial.log" "$work/debug.log"
	out=$(timeout 60 "$modvm" run "$work/vm.cfg" 2>&1)
	local rc=$?
	if [ "$rc" != 33 ] && grep -qF "could not emulate the instruction at CS:RIP f000:000000000000fff0" <<<"$out"; then
		echo "SKIP: $engine cannot run the reset vector: the bios ROM is MMIO and KVM fetches instructions only from memory slots (no read-only ROM slot yet); modvm said:"
		sed 's/^/    /' <<<"$out"
		exit 77
	fi
	checks=$((checks + 1))
	[ "$rc" = 33 ] || { fail "$engine: exit $rc, expected 33"; sed 's/^/    /' <<<"$out"; }
	has "BOOT disk-a" "$(cat "$work/serial.log" 2>/dev/null)" "the serial console"
}

case "$case" in
virtio) case_virtio ;;
bootorder) case_bootorder ;;
reboot) case_reboot ;;
ide-disk) case_ide_disk ;;
ide-cdrom) case_ide_cdrom ;;
linuxboot) case_linuxboot ;;
linux) case_linux ;;
bad-rom) case_bad_rom ;;
bad-guest) case_bad_guest ;;
kvm) case_kvm ;;
*) echo "unknown case $case"; exit 2 ;;
esac
summarize
