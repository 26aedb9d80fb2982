#!/usr/bin/env bash
# Disk throughput of a Linux guest under modvm against the host and QEMU TCG:
# sequential 1 MiB and random 4 KiB writes and reads (bench/disk/diskio.c,
# O_DIRECT, queue depth 1) on a raw image, measured inside the guest on its
# virtio-blk disk and on the host on the image file itself. Prints a table
# and the ratios modvm/host and modvm/QEMU.
#
#   bench/disk/disk-bench.sh [-e ENGINE] [-s SIZE_MIB] [-n RANDOM_OPS] [-t SECONDS]
#                            [-b BUILDDIR] [-g GUESTDIR] [-d IMAGEDIR] [-k LOGDIR]
#                            [--no-qemu] [--no-modvm]
#
# Every run gets a fresh sparse image, and diskio writes it before reading
# it. The guest sees the image through the VMM's buffered host I/O (modvm's
# block-raw; QEMU's default cache=writeback); the host run opens the file
# with O_DIRECT, so it is the storage underneath. Writes include a final
# fdatasync. The guest's times come from its own clock (the TSC follows host
# time under both VMMs).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

engine=cpu-bt
size=64
ops=2000
limit=1500
build=$repo/build
guest=
imgdir=
logdir=
do_qemu=1
do_modvm=1

usage() {
	sed -n '8,10p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	-e) engine=$2; shift 2 ;;
	-s) size=$2; shift 2 ;;
	-n) ops=$2; shift 2 ;;
	-t) limit=$2; shift 2 ;;
	-b) build=$(cd "$2" && pwd); shift 2 ;;
	-g) guest=$(cd "$2" && pwd); shift 2 ;;
	-d) imgdir=$(cd "$2" && pwd); shift 2 ;;
	-k) mkdir -p "$2"; logdir=$(cd "$2" && pwd); shift 2 ;;
	--no-qemu) do_qemu=0; shift ;;
	--no-modvm) do_modvm=0; shift ;;
	-h | --help) usage ;;
	*) echo "disk-bench: unknown argument $1" >&2; usage ;;
	esac
done
guest=${guest:-$build/guests/linux}
modvm=$build/modvm
kernel=$guest/vmlinuz

die() { echo "disk-bench: error: $*" >&2; exit 2; }
[[ "$size" =~ ^[0-9]+$ ]] && [ "$size" -gt 0 ] || die "-s takes a size in MiB"
[[ "$ops" =~ ^[0-9]+$ ]] && [ "$ops" -gt 0 ] || die "-n takes a number of operations"
{ [ -f "$kernel" ] && [ -f "$guest/initrd.gz" ] && [ -x "$guest/busybox" ]; } ||
	die "no kernel, initrd or busybox in $guest: run tests/guests/linux/mkinitramfs.sh $guest"
[ "$do_modvm" = 0 ] || [ -x "$modvm" ] || die "no $modvm: build modvm first (or -b BUILDDIR)"
[ "$do_qemu" = 0 ] || command -v qemu-system-x86_64 >/dev/null ||
	die "qemu-system-x86_64 not found (apt-get install qemu-system-x86), or pass --no-qemu"
command -v gcc >/dev/null || die "gcc is needed to build diskio"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
logdir=${logdir:-$tmp}
# The image must be on a real file system (tmpfs has no O_DIRECT).
imgdir=${imgdir:-$tmp}
img=$imgdir/disk-bench.$$.img
trap 'rm -rf "$tmp" "$img"' EXIT

# diskio, static, plus the guest script from this tree, as a second cpio
# archive after the normal initramfs (the kernel unpacks them in turn).
gcc -std=c17 -static -O2 -Wall -Wextra -Werror -o "$tmp/diskio" "$here/diskio.c" ||
	die "building diskio failed (static glibc: apt-get install libc6-dev)"
mkdir -p "$tmp/extra/bin" "$tmp/extra/scripts"
cp "$tmp/diskio" "$tmp/extra/bin/diskio"
cp "$repo/tests/guests/linux/rootfs/scripts/diskbench" "$tmp/extra/scripts/"
chmod 755 "$tmp/extra/bin/diskio" "$tmp/extra/scripts/diskbench"
(cd "$tmp/extra" && find bin scripts | LC_ALL=C sort | "$guest/busybox" cpio -o -H newc 2>/dev/null) |
	gzip -n >"$tmp/extra.cpio.gz"
cat "$guest/initrd.gz" "$tmp/extra.cpio.gz" >"$tmp/initrd.gz"
initrd=$tmp/initrd.gz
cmdline="console=ttyS0 nokaslr no_timer_check panic=-1 modvm.script=diskbench modvm.diskbench=$size,$ops"

fresh_image() {
	rm -f "$img"
	truncate -s "${size}M" "$img"
}

# Results: res[VMM:TEST] = "MB/s IOPS".
declare -A res=()
# collect VMM LOG: the diskio lines of a run into res[].
collect() {
	local name t mbs iops
	while read -r t mbs _ iops _; do
		res[$1:$t]="$mbs $iops"
	done < <(sed -n 's/^diskio: \([a-z-]*\) *\([0-9.]*\) MB\/s *\([0-9]*\) IOPS.*/\1 \2 x \3 x/p' "$2")
	name=$1
	[ -n "${res[$name:rand-read]:-}" ] || {
		echo "  $name: no complete result; last lines:"
		tail -n 8 "$2" | sed 's/^/    /'
	}
}

# vm_run VMM LOG CMD...: one boot under the time limit.
vm_run() {
	local name=$1 log=$2 rc=0 t0=$SECONDS
	shift 2
	timeout -k 5 "$limit" "$@" </dev/null 2>&1 | tr -d '\r' >"$log" || rc=${PIPESTATUS[0]}
	echo "  $name: exit $rc after $((SECONDS - t0)) s"
	grep '^diskio:\|^diskbench:' "$log" | sed 's/^/    /'
	collect "$name" "$log"
}

echo "kernel:  $kernel ($(sed -n 's/^kernel //p' "$guest/VERSION" 2>/dev/null))"
echo "image:   $img, $size MiB, $ops random ops; load average: $(cut -d ' ' -f 1-3 /proc/loadavg)"

echo "host: diskio on the image file"
fresh_image
"$tmp/diskio" "$img" "$size" "$ops" | tee "$logdir/host.log" | sed 's/^/    /'
collect host "$logdir/host.log"

if [ "$do_modvm" = 1 ]; then
	fresh_image
	cat >"$tmp/bench.cfg" <<-EOF
	vm: {
	  name = "disk-bench";
	  memory = "512M";
	  cpu = { engine = "$engine"; };
	  boot = { kernel = "$kernel"; initrd = "$initrd"; format = "linux";
	           cmdline = "$cmdline"; };
	  devices = (
	    { plugin = "serial-16550"; id = "com1"; backend = "stdio"; },
	    { plugin = "virtio-blk"; id = "bench"; backend = "raw"; path = "$img"; serial = "bench"; }
	  );
	};
	EOF
	"$modvm" check "$tmp/bench.cfg" >/dev/null || die "modvm refused the generated config (see above)"
	echo "modvm ($engine): $modvm"
	vm_run modvm "$logdir/modvm.log" "$modvm" run --no-reboot "$tmp/bench.cfg"
fi
if [ "$do_qemu" = 1 ]; then
	fresh_image
	echo "QEMU TCG: $(qemu-system-x86_64 --version | head -n 1)"
	vm_run qemu "$logdir/qemu.log" qemu-system-x86_64 -accel tcg -m 512 -display none \
		-monitor none -serial stdio -no-reboot -kernel "$kernel" -initrd "$initrd" \
		-append "$cmdline" -drive "file=$img,if=none,id=bench,format=raw" \
		-device virtio-blk-pci,drive=bench,serial=bench
fi

# field VMM TEST N: MB/s (N=1) or IOPS (N=2), or nothing.
field() {
	local v=${res[$1:$2]:-}
	[ -n "$v" ] || return 0
	printf '%s' "$v" | cut -d ' ' -f "$3"
}
ratio() {
	if [ -n "$1" ] && [ -n "$2" ]; then
		awk -v a="$1" -v b="$2" 'BEGIN { printf (b > 0 ? "%.3fx" : "n/a"), a / b }'
	else
		printf 'n/a'
	fi
}

echo
echo "results ($size MiB image, $ops random 4 KiB ops, O_DIRECT, queue depth 1; higher is better):"
printf '  %-22s %10s %10s %10s %12s %12s\n' "" "modvm" "QEMU TCG" "host" "modvm/host" "modvm/QEMU"
for t in seq-write seq-read rand-write rand-read; do
	case $t in
	seq-*) n=1 unit="MB/s" ;;
	*) n=2 unit="IOPS" ;;
	esac
	m=$(field modvm $t $n) q=$(field qemu $t $n) h=$(field host $t $n)
	printf '  %-22s %10s %10s %10s %12s %12s\n' "$t ($unit)" "${m:-none}" "${q:-none}" \
		"${h:-none}" "$(ratio "$m" "$h")" "$(ratio "$m" "$q")"
done
[ "$logdir" = "$tmp" ] || echo "console logs: $logdir"
