#!/usr/bin/env bash
# linux/disk: one cpu-bt boot of Debian's kernel with three virtio-blk disks
# (a raw image, a qcow2 image, a read-only host partition on a loop device);
# the guest's disk-suite script writes the first two, the host then reads the
# same bytes back from the images and checks that the partition is unchanged.
# usage: disk.sh BUILD_DIR SOURCE_DIR      (docs/linux-guest.md, "linux/disk")
set -u
build=$1
# $2 (SOURCE_DIR) is unused: the guest comes from BUILD_DIR/guests/linux.
modvm=$build/modvm
guest=$build/guests/linux
work=$(mktemp -d /tmp/modvm-linux-disk.XXXXXX)
loopdev=
made_node=
cleanup() {
	[ -z "$loopdev" ] || losetup -d "$loopdev"
	[ -z "$made_node" ] || rm -f "$made_node"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
. "$(dirname "$0")/../lib.sh"

for tool in qemu-img debugfs e2fsck mke2fs sha256sum; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed (e2fsprogs, qemu-utils)"; exit 77; }
done

# The read-only disk: a partition of a loop device (a host block device, the
# BLKGETSIZE64 path of block-raw). Without root or loop devices a read-only
# image file stands in, everything else still runs, and the test ends in 77.
skip_reason=
setup_partition() {
	local name numbers
	if [ "$(id -u)" != 0 ]; then
		skip_reason="not root: no loop device for the host-partition disk"
		return 1
	fi
	truncate -s 40M "$work/part-backing.img"
	printf 'label: dos\nstart=2048, size=32M, type=83\n' | sfdisk -q "$work/part-backing.img" ||
		{ skip_reason="sfdisk failed"; return 1; }
	loopdev=$(losetup -P --show -f "$work/part-backing.img" 2>&1) ||
		{ skip_reason="losetup: $loopdev"; loopdev=; return 1; }
	name=$(basename "$loopdev")
	# Without udev the kernel's partition scan may not be done (or not be
	# asked for); partx asks again, and the node is made from sysfs.
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		[ -e "/sys/block/$name/${name}p1/dev" ] && break
		partx -a "$loopdev" 2>/dev/null
		sleep 0.2
	done
	[ -e "/sys/block/$name/${name}p1/dev" ] ||
		{ skip_reason="no partition ${name}p1 in /sys/block/$name"; return 1; }
	part=/dev/${name}p1
	numbers=$(cat "/sys/block/$name/${name}p1/dev")
	if [ ! -b "$part" ] || [ "$(stat -c %Hr:%Lr "$part")" != "$numbers" ]; then
		rm -f "$part"
		mknod "$part" b "${numbers%:*}" "${numbers#*:}" ||
			{ skip_reason="mknod $part $numbers failed"; return 1; }
		made_node=$part
	fi
}

part=
hello="read-only host partition $(date -u +%s) $RANDOM"
mkdir "$work/ro-content"
printf '%s\n' "$hello" >"$work/ro-content/hello"
# A host block device is read-only unless host-device-write = true (block-raw
# decides; the config must not have to say readonly). The stand-in file
# needs readonly = true.
ro_prop=
if setup_partition; then
	ro_path=$part
	check "ext2 on $part" mke2fs -q -t ext2 -d "$work/ro-content" "$part"
else
	echo "note: $skip_reason; a read-only image file stands in"
	ro_path=$work/ro.img
	ro_prop="readonly = true; "
	truncate -s 32M "$ro_path"
	check "ext2 on ro.img" mke2fs -q -t ext2 -F -d "$work/ro-content" "$ro_path"
fi
ro_before=$(sha256sum <"$ro_path" | cut -d ' ' -f 1)

truncate -s 64M "$work/disk.raw"
check "qemu-img create qcow2" qemu-img create -q -f qcow2 "$work/disk.qcow2" 64M

cmdline="console=ttyS0 nokaslr no_timer_check panic=-1 modvm.script=disk-suite"
cat >"$work/vm.cfg" <<EOF
vm: {
  name = "linux-disk";
  memory = "512M";
  cpu = { engine = "cpu-bt"; };
  boot = { kernel = "$guest/vmlinuz"; initrd = "$guest/initrd.gz";
           format = "linux"; cmdline = "$cmdline"; };
  devices = (
    { plugin = "serial-16550"; id = "com1"; backend = "stdio"; },
    { plugin = "virtio-blk"; id = "raw"; backend = "raw"; path = "$work/disk.raw"; serial = "raw"; },
    { plugin = "virtio-blk"; id = "qcow2"; backend = "qcow2"; path = "$work/disk.qcow2"; serial = "qcow2"; },
    { plugin = "virtio-blk"; id = "part"; backend = "raw"; path = "$ro_path"; ${ro_prop}serial = "hostpart"; }
  );
};
EOF
check "modvm check accepts the config" "$modvm" check "$work/vm.cfg"

vm=("$modvm" run --no-reboot "$work/vm.cfg")
# DISK_TEST_VMM=qemu: the same disks under QEMU TCG, to tell a guest-script
# or host-check bug from a modvm one in seconds instead of minutes.
if [ "${DISK_TEST_VMM:-modvm}" = qemu ]; then
	# shellcheck disable=SC2054 # the commas belong to QEMU's options
	vm=(qemu-system-x86_64 -accel tcg -m 512 -display none -monitor none
		-serial stdio -no-reboot -kernel "$guest/vmlinuz" -initrd "$guest/initrd.gz"
		-append "$cmdline"
		-drive "file=$work/disk.raw,if=none,id=d0,format=raw"
		-device virtio-blk-pci,drive=d0,serial=raw
		-drive "file=$work/disk.qcow2,if=none,id=d1,format=qcow2"
		-device virtio-blk-pci,drive=d1,serial=qcow2
		-drive "file=$ro_path,if=none,id=d2,format=raw,readonly=on"
		-device virtio-blk-pci,drive=d2,serial=hostpart)
fi
echo "booting under ${vm[0]} (cpu-bt takes minutes)..."
t0=$SECONDS
timeout -k 5 1400 "${vm[@]}" </dev/null 2>&1 | tr -d '\r' >"$work/console.log"
rc=${PIPESTATUS[0]}
echo "${vm[0]} exited $rc after $((SECONDS - t0)) s; guest lines:"
grep '^disk-suite\|^MODVM\|Kernel panic\|virtio_blk' "$work/console.log" | sed 's/^/  /'
checks=$((checks + 1))
[ "$rc" = 0 ] || { fail "${vm[0]} exited $rc (124: watchdog); last lines:"; tail -n 20 "$work/console.log"; }
# expect_line TEXT: the console has TEXT (lib.sh's expect_out would print
# the whole console for each miss; the guest's lines are printed above).
expect_line() {
	checks=$((checks + 1))
	grep -qF -- "$1" "$work/console.log" || fail "the console has no '$1'"
}
for l in MODVM-LINUX-READY "disk-suite: raw-readback: ok" "disk-suite: qcow2-readback: ok" \
	"disk-suite: hostpart-ro: ok" "disk-suite: hostpart-dd: ok" "disk-suite: hostpart-setrw: ok" \
	"disk-suite: hostpart-mount: ok" "disk-suite: hostpart-touch: ok" "disk-suite: PASS" \
	"MODVM-SCRIPT-END disk-suite rc=0"; do
	expect_line "$l"
done

# guest_hash SERIAL FILE: the hash the guest printed.
guest_hash() {
	sed -n "s/^disk-suite: hash $1 $2 \([0-9a-f]\{64\}\)\$/\1/p" "$work/console.log" | head -n 1
}

# check_image SERIAL RAWIMAGE: e2fsck finds nothing, and the files have the
# guest's hashes (seq's also the host's own).
check_image() {
	local s=$1 img=$2 f h want
	checks=$((checks + 1))
	e2fsck -fn "$img" >"$work/$s.fsck" 2>&1 ||
		{ fail "$s: e2fsck -fn $img found problems:"; cat "$work/$s.fsck"; }
	for f in rand seq; do
		h=$(debugfs -R "dump /$f $work/$s.$f" "$img" 2>/dev/null && sha256sum <"$work/$s.$f" | cut -d ' ' -f 1)
		want=$(guest_hash "$s" "$f")
		checks=$((checks + 1))
		[ -n "$want" ] && [ "$h" = "$want" ] || fail "$s:/$f on the host: '$h', the guest wrote '$want'"
	done
	checks=$((checks + 1))
	[ "$(stat -c %s "$work/$s.rand" 2>/dev/null)" = 4194304 ] || fail "$s:/rand is not 4 MiB"
	checks=$((checks + 1))
	[ "$(guest_hash "$s" seq)" = "$(seq 1 200000 | sha256sum | cut -d ' ' -f 1)" ] ||
		fail "$s:/seq is not seq 1 200000"
	# In the order of the guest's `cat /mnt/small/*` (the glob sorts by bytes).
	h=$(for f in $(seq 0 63 | sed 's/^/f/' | LC_ALL=C sort); do
		debugfs -R "cat /small/$f" "$img" 2>/dev/null
	done | sha256sum | cut -d ' ' -f 1)
	checks=$((checks + 1))
	[ "$h" = "$(guest_hash "$s" small)" ] || fail "$s:/small/* differ from what the guest wrote"
}

if grep -q 'disk-suite: hash' "$work/console.log"; then
	check_image raw "$work/disk.raw"
	check "qemu-img check on the qcow2 image" qemu-img check -q "$work/disk.qcow2"
	check "qemu-img convert qcow2 -> raw" qemu-img convert -O raw "$work/disk.qcow2" "$work/qcow2.raw"
	check_image qcow2 "$work/qcow2.raw"
	checks=$((checks + 1))
	[ "$(guest_hash hostpart hello)" = "$(sha256sum <"$work/ro-content/hello" | cut -d ' ' -f 1)" ] ||
		fail "the guest read another /hello from the read-only disk"
fi
checks=$((checks + 1))
[ "$(sha256sum <"$ro_path" | cut -d ' ' -f 1)" = "$ro_before" ] ||
	fail "the read-only disk $ro_path changed"

summarize || exit 1
if [ -n "$skip_reason" ]; then
	echo "SKIP: the host-partition part did not run ($skip_reason)"
	exit 77
fi
exit 0
