#!/usr/bin/env bash
# Tests of the VM as files (modvm run/resume --mount DIR, docs/fuse.md): one
# case per invocation, each a ctest test. Exits 77 (skipped) with a message
# when FUSE cannot be used here.
# usage: fuse.sh CASE BUILD_DIR SOURCE_DIR
set -u
case_name=$1
build=$2
src=$3
modvm=$build/modvm
tp=$build/tests/plugins
work=$(realpath "$(mktemp -d /tmp/modvm-fuse.XXXXXX)")
pids=()
. "$(dirname "$0")/../lib.sh"

cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	# a test that failed half-way may leave a mount, live or dead
	for d in "$work"/mnt*; do
		if is_mounted "$d" || ! stat "$d" >/dev/null 2>&1; then
			fusermount3 -u -z "$d" 2>/dev/null
		fi
	done
	rm -rf "$work"
}
trap cleanup EXIT

skip() {
	echo "SKIP: $*"
	exit 77
}

# Is DIR (absolute, canonical) a modvm FUSE mount right now?
is_mounted() {
	awk -v d="$1" '$5 == d { split($0, a, " - "); split(a[2], b, " "); t = b[1] }
		END { exit !(t == "fuse.modvm") }' /proc/self/mountinfo
}

not_mounted() {
	! is_mounted "$1"
}

# mounted, and the vCPUs run (status says "starting" until then)
wait_mounted() {
	for _ in $(seq 100); do
		is_mounted "$1" && grep -qx "status = running" "$1/status" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "$1 was not mounted within 10 s"
	return 1
}

wait_unmounted() {
	for _ in $(seq 100); do
		is_mounted "$1" || return 0
		sleep 0.1
	done
	fail "$1 is still mounted 10 s later"
	return 1
}

# start NAME ARGS...: run modvm in the background, output in NAME.out,
# pid in $pid.
start() {
	local name=$1
	shift
	"$modvm" "$@" >"$work/$name.out" 2>&1 &
	pid=$!
	pids+=("$pid")
}

# finish PID WANT: wait for modvm to exit with WANT.
finish() {
	wait "$1"
	local code=$?
	checks=$((checks + 1))
	if [ "$code" != "$2" ]; then
		fail "modvm exited $code, expected $2; its output:"
		tail -n 40 "$work"/*.out | sed 's/^/    /'
	fi
}

# regs as the control socket reports them for cpu 0
ctl_regs() {
	"$modvm" ctl "$1" query-cpus | python3 -c 'import json,sys; sys.stdout.write(json.load(sys.stdin)[0]["regs"])'
}

# bytes N at OFFSET of FILE, as hex
hexat() {
	dd if="$1" bs=1 skip="$2" count="$3" 2>/dev/null | od -An -tx1 | tr -d ' \n'
}

[ -c /dev/fuse ] || skip "/dev/fuse is not available: FUSE tests need it"
if [ "$(id -u)" != 0 ] && ! command -v fusermount3 >/dev/null; then
	skip "not root and no fusermount3: cannot mount FUSE file systems"
fi
if [ "$(id -u)" = 0 ] && [ ! -w /dev/fuse ]; then
	skip "/dev/fuse is not writable here"
fi

# A flat image that the test engine never executes but boot_load accepts.
printf '\xf4' >"$work/hlt.bin"
mkdir "$work/mnt" "$work/mnt2" "$work/snaps"
mnt=$work/mnt
mnt2=$work/mnt2
sock=$work/vm.sock

write_cfg() { # write_cfg FILE ENGINE_EXTRA DEVICES [MEMORY]
	cat >"$1" <<CFG
vm: {
  name = "fuse";
  machine = "none";
  memory = "${4:-16M}";
  cpu = { engine = "test-engine"; $2 };
  boot = { kernel = "$work/hlt.bin"; format = "flat"; load_address = 0x7c00; };
  devices = ( $3 );
};
CFG
}

export MODVM_PLUGIN_PATH=$tp/good
t0='{ plugin = "test-device"; id = "t0"; }'
write_cfg "$work/wait.cfg" 'action = "wait";' "$t0"

case $case_name in
tree)
	start run run "$work/wait.cfg" --mount "$mnt" --control "$sock"
	wait_mounted "$mnt" || exit 1
	out=$(ls "$mnt")
	for f in config console control cpus devices disks memory plugins snapshots status; do
		expect_out "$f"
	done
	check "config is the config file" cmp "$mnt/config" "$work/wait.cfg"
	out=$(cat "$mnt/status")
	expect_out "status = running"
	expect_out "name = fuse"
	expect_out "engine = test-engine"
	expect_out "model = "
	expect_out "cpus = 1"
	expect_out "memory = 16777216"
	expect_out "virtual-ns = "
	out=$(cat "$mnt/plugins")
	expect_out "test-engine"
	expect_out "test-device"
	expect_out "$tp/good/test-device.so"
	check "cpus/ lists cpu 0" test "$(ls "$mnt/cpus")" = 0
	check "cpus/0 has regs and state" test "$(ls "$mnt/cpus/0" | tr '\n' ' ')" = "regs state "
	out=$(cat "$mnt/cpus/0/regs")
	expect_out "rip = 0x7c00"
	expect_out "rsp = "
	expect_out "cr0 = "
	# the same text the control socket gives (the test engine stands still)
	check "cpus/0/regs equals query-cpus" test "$(cat "$mnt/cpus/0/regs")" = "$(ctl_regs "$sock")"
	check "cpus/0/state is a state section" test "$(head -c 4 "$mnt/cpus/0/state")" = MVST
	check "devices/ lists t0" test "$(ls "$mnt/devices")" = t0
	out=$(cat "$mnt/devices/t0/state")
	expect_out "[regs] version 2"
	expect_out "reg8 = 0xa" # the engine wrote "hello\n" to the device
	expect_out "pairs[1].b = 0x0"
	out=$(cat "$mnt/devices/t0/properties")
	expect_out "port = 0x510"
	expect_out "mode = fast"
	expect_out "backend = testsink"
	expect_out "chardev-testsink.sink-limit = 4096"
	check "state.bin is binary sections" test "$(head -c 4 "$mnt/devices/t0/state.bin")" = MVST
	check "console is the serial output so far" test "$(od -An -c "$mnt/console" | tr -s ' ')" = " h e l l o \n"
	check "devices/t0/console too" cmp "$mnt/console" "$mnt/devices/t0/console"
	check "stat size of console" test "$(stat -c %s "$mnt/console")" = 6
	check "disks/ is empty" test -z "$(ls "$mnt/disks")"
	# things that do not exist or cannot be done
	expect_fail "No such file or directory" cat "$mnt/cpus/1/regs"
	expect_fail "No such file or directory" cat "$mnt/cpus/00/regs"
	expect_fail "No such file or directory" cat "$mnt/devices/nodev/state"
	expect_fail "No such file or directory" cat "$mnt/nothing"
	expect_fail "Permission denied" sh -c "echo x > '$mnt/status'"
	expect_fail "Permission denied" cat "$mnt/control"
	expect_fail "Operation not permitted" mkdir "$mnt/newdir"
	expect_fail "Operation not permitted" rmdir "$mnt/cpus"
	expect_fail "Not a directory" ls "$mnt/status/x"
	expect_code 0 "$modvm" ctl "$sock" quit
	finish "$pid" 130
	wait_unmounted "$mnt"
	;;
control)
	start run run "$work/wait.cfg" --mount "$mnt" --control "$sock" --snapshot-dir "$work/snaps"
	wait_mounted "$mnt" || exit 1
	expect_code 0 sh -c "echo pause > '$mnt/control'"
	expect_code 0 "$modvm" ctl "$sock" status
	expect_out '"status": "paused"'
	check "status file says paused" grep -qx "status = paused" "$mnt/status"
	t1=$(grep virtual-ns "$mnt/status")
	sleep 0.3
	check "virtual time stands still while paused" test "$t1" = "$(grep virtual-ns "$mnt/status")"
	expect_code 0 sh -c "printf resume > '$mnt/control'"
	expect_code 0 "$modvm" ctl "$sock" status
	expect_out '"status": "running"'
	expect_fail "Invalid argument" bash -c "echo dance > '$mnt/control'"
	expect_fail "Invalid argument" bash -c "echo 'pause now' > '$mnt/control'"
	expect_fail "Invalid argument" bash -c "echo 'snapshot' > '$mnt/control'"
	expect_fail "Invalid argument" bash -c "echo 'snapshot .x' > '$mnt/control'"
	expect_code 0 sh -c "echo 'snapshot c1' > '$mnt/control'"
	check "snapshot c1 written" test -f "$work/snaps/c1/manifest.json"
	check "the VM runs after the snapshot" grep -qx "status = running" "$mnt/status"
	expect_fail "File exists" bash -c "echo 'snapshot c1' > '$mnt/control'"
	expect_code 0 sh -c "echo quit > '$mnt/control'"
	finish "$pid" 130
	wait_unmounted "$mnt"
	;;
memory)
	start run run "$work/wait.cfg" --mount "$mnt" --snapshot-dir "$work/snaps"
	wait_mounted "$mnt" || exit 1
	check "memory is as large as RAM" test "$(stat -c %s "$mnt/memory")" = 16777216
	# reading a running VM's RAM: the boot image is at 0x7c00
	check "RAM read while running" test "$(hexat "$mnt/memory" $((0x7c00)) 2)" = f400
	expect_fail "Device or resource busy" dd if=/dev/zero of="$mnt/memory" bs=8 count=1 \
		seek=$((0x200000)) oflag=seek_bytes conv=notrunc
	echo pause >"$mnt/control"
	expect_code 0 dd of="$mnt/memory" bs=8 count=1 seek=$((0x200000)) oflag=seek_bytes \
		conv=notrunc if=<(printf 'FUSEMEM!')
	check "write read back" test "$(dd if="$mnt/memory" bs=8 count=1 skip=$((0x200000)) iflag=skip_bytes 2>/dev/null)" = "FUSEMEM!"
	expect_fail "File too large" dd if=/dev/zero of="$mnt/memory" bs=8 count=1 \
		seek=16777216 oflag=seek_bytes conv=notrunc
	expect_fail "File too large" dd of="$mnt/memory" bs=8 count=1 \
		seek=$((16777216 - 4)) oflag=seek_bytes conv=notrunc if=<(printf 'PASTEND!')
	check "a write reaching past the end wrote nothing" test "$(hexat "$mnt/memory" $((16777216 - 4)) 4)" = 00000000
	check "read past the end is empty" test "$(dd if="$mnt/memory" bs=8 count=1 skip=16777216 iflag=skip_bytes 2>/dev/null | wc -c)" = 0
	# the snapshot of the paused VM holds the bytes, and all of RAM
	# reads through the mount exactly as it is saved
	mkdir "$mnt/snapshots/m1"
	check "memory.img has the written bytes" test "$(hexat "$work/snaps/m1/memory.img" $((0x200000)) 8)" = "$(printf 'FUSEMEM!' | od -An -tx1 | tr -d ' \n')"
	check "memory equals the snapshot's memory.img" cmp "$mnt/memory" "$work/snaps/m1/memory.img"
	echo resume >"$mnt/control"
	check "running again" grep -qx "status = running" "$mnt/status"
	expect_fail "Device or resource busy" dd if=/dev/zero of="$mnt/memory" bs=8 count=1 conv=notrunc
	echo quit >"$mnt/control"
	finish "$pid" 130
	;;
hole)
	# 3 GiB + 64 MiB: RAM below the PCI hole, then 64 MiB from 4 GiB
	write_cfg "$work/big.cfg" 'action = "wait";' "$t0" 3136M
	start run run "$work/big.cfg" --mount "$mnt"
	wait_mounted "$mnt" || exit 1
	check "memory ends at 4 GiB + 64 MiB" test "$(stat -c %s "$mnt/memory")" = $((0x100000000 + 64 * 1048576))
	check "the PCI hole reads as zeros" cmp <(dd if="$mnt/memory" bs=64K count=4 skip=$((0xC0000000)) iflag=skip_bytes 2>/dev/null) <(head -c 262144 /dev/zero)
	echo pause >"$mnt/control"
	expect_fail "No such device or address" dd of="$mnt/memory" bs=4 count=1 \
		seek=$((0xD0000000)) oflag=seek_bytes conv=notrunc if=<(printf 'HOLE')
	expect_fail "No such device or address" dd of="$mnt/memory" bs=8 count=1 \
		seek=$((0xBFFFFFFC)) oflag=seek_bytes conv=notrunc if=<(printf 'ACROSS!!')
	expect_code 0 dd of="$mnt/memory" bs=4 count=1 seek=$((0x100000000)) oflag=seek_bytes \
		conv=notrunc if=<(printf 'HIGH')
	expect_code 0 dd of="$mnt/memory" bs=4 count=1 seek=$((0xBFFFFFFC)) oflag=seek_bytes \
		conv=notrunc if=<(printf 'LOW!')
	check "high RAM read back" test "$(hexat "$mnt/memory" $((0x100000000)) 4)" = 48494748
	# one read across the end of low RAM: its last bytes, then zeros
	check "a read across the hole" test "$(hexat "$mnt/memory" $((0xBFFFFFFC)) 8)" = 4c4f572100000000
	echo quit >"$mnt/control"
	finish "$pid" 130
	;;
snapshot)
	start run run "$work/wait.cfg" --mount "$mnt" --snapshot-dir "$work/snaps"
	wait_mounted "$mnt" || exit 1
	check "no snapshots yet" test -z "$(ls "$mnt/snapshots")"
	expect_code 0 mkdir "$mnt/snapshots/s1"
	check "snapshots/ lists s1" test "$(ls "$mnt/snapshots")" = s1
	check "s1 is in the snapshot directory" test -f "$work/snaps/s1/manifest.json"
	check "the VM runs after mkdir" grep -qx "status = running" "$mnt/status"
	out=$(ls "$mnt/snapshots/s1")
	for f in manifest.json config.cfg cpu-0.state device-t0.state memory.img; do
		expect_out "$f"
		check "snapshots/s1/$f reads as on disk" cmp "$mnt/snapshots/s1/$f" "$work/snaps/s1/$f"
	done
	# the live binary views are the snapshot's files
	check "cpus/0/state equals cpu-0.state" cmp "$mnt/cpus/0/state" "$work/snaps/s1/cpu-0.state"
	check "devices/t0/state.bin equals device-t0.state" cmp "$mnt/devices/t0/state.bin" "$work/snaps/s1/device-t0.state"
	expect_fail "File exists" mkdir "$mnt/snapshots/s1"
	expect_fail "" mkdir "$mnt/snapshots/.hidden"
	expect_fail "Read-only file system" sh -c "echo x >> '$mnt/snapshots/s1/config.cfg'"
	expect_fail "Read-only file system" rm "$mnt/snapshots/s1/config.cfg"
	# a temporary or foreign directory is not a snapshot
	mkdir "$work/snaps/notasnapshot" "$work/snaps/x.tmp-1"
	check "only complete snapshots are listed" test "$(ls "$mnt/snapshots")" = s1
	# copy it out through the mount, sparse
	cp -r "$mnt/snapshots/s1" "$work/copy"
	used=$(du -k "$work/copy/memory.img" | cut -f1)
	check "the copied memory.img is sparse (${used}K)" test "$used" -lt 1024
	expect_code 0 mkdir "$mnt/snapshots/s2"
	expect_code 0 rmdir "$mnt/snapshots/s2"
	check "rmdir deleted s2" test ! -e "$work/snaps/s2"
	check "s1 stays" test "$(ls "$mnt/snapshots")" = s1
	expect_fail "No such file or directory" rmdir "$mnt/snapshots/s2"
	# rmdir deletes only what modvm wrote: a folder with someone else's
	# manifest.json is not touched ...
	mkdir "$work/snaps/foreign"
	echo '{"format": 1, "files": {"data.txt": {}}}' >"$work/snaps/foreign/manifest.json"
	echo keep >"$work/snaps/foreign/data.txt"
	expect_fail "Operation not permitted" rmdir "$mnt/snapshots/foreign"
	check "a foreign manifest.json is kept" test -f "$work/snaps/foreign/manifest.json"
	check "a foreign folder's files are kept" test -f "$work/snaps/foreign/data.txt"
	# ... and a snapshot holding anything its manifest does not list is kept whole
	expect_code 0 mkdir "$mnt/snapshots/s3"
	echo mine >"$work/snaps/s3/notes.txt"
	expect_fail "Directory not empty" rmdir "$mnt/snapshots/s3"
	check "the user's file in a snapshot is kept" test -f "$work/snaps/s3/notes.txt"
	check "nothing of s3 was deleted" test -f "$work/snaps/s3/manifest.json" -a -f "$work/snaps/s3/memory.img"
	rm "$work/snaps/s3/notes.txt"
	mkdir "$work/snaps/s3/sub"
	echo mine >"$work/snaps/s3/sub/f"
	expect_fail "Directory not empty" rmdir "$mnt/snapshots/s3"
	check "a folder inside a snapshot is not recursed into" test -f "$work/snaps/s3/sub/f"
	rm -r "$work/snaps/s3/sub"
	expect_code 0 rmdir "$mnt/snapshots/s3"
	check "rmdir deleted s3 once it held only modvm's files" test ! -e "$work/snaps/s3"
	echo quit >"$mnt/control"
	finish "$pid" 130
	wait_unmounted "$mnt"
	# the copy resumes in a new process, mounted again
	start resume resume "$work/copy" --mount "$mnt2" --control "$sock"
	wait_mounted "$mnt2" || { cat "$work/resume.out"; exit 1; }
	out=$(cat "$mnt2/devices/t0/state")
	expect_out "reg8 = 0xa"
	out=$(cat "$mnt2/cpus/0/regs")
	expect_out "rip = 0x7c00"
	check "the resumed config is the original" cmp "$mnt2/config" "$work/wait.cfg"
	check "resumed RAM is the snapshot's" cmp "$mnt2/memory" "$work/copy/memory.img"
	expect_code 0 "$modvm" ctl "$sock" quit
	finish "$pid" 130
	wait_unmounted "$mnt2"
	;;
mount)
	# modvm mount SOCKET DIR: the FUSE view of a VM started without
	# --mount. Mounting after set-up needs what the sandbox forbids
	# (docs/sandbox.md; tests/integration/sandbox checks the refusal).
	start run run "$work/wait.cfg" --control "$sock" --snapshot-dir "$work/snaps" --sandbox=off
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
	expect_code 0 "$modvm" mount "$sock" "$mnt"
	wait_mounted "$mnt" || { cat "$work/run.out"; exit 1; }
	out=$(cat "$mnt/status")
	expect_out "status = running"
	expect_out "name = fuse"
	check "config through modvm mount" cmp "$mnt/config" "$work/wait.cfg"
	check "regs through modvm mount equal query-cpus" test "$(cat "$mnt/cpus/0/regs")" = "$(ctl_regs "$sock")"
	check "console through modvm mount" test "$(od -An -c "$mnt/console" | tr -s ' ')" = " h e l l o \n"
	expect_code 0 mkdir "$mnt/snapshots/m1"
	check "mkdir through modvm mount wrote m1" test -f "$work/snaps/m1/manifest.json"
	# errors: mounted already, not empty, missing, no such mount, no VM
	expect_code 1 "$modvm" mount "$sock" "$mnt"
	expect_out "this VM is mounted there already"
	mkdir "$work/full" && touch "$work/full/f"
	expect_code 1 "$modvm" mount "$sock" "$work/full"
	expect_out "the directory is not empty"
	expect_code 2 "$modvm" mount "$sock" "$work/missing"
	expect_out "No such file or directory"
	expect_code 1 "$modvm" umount "$sock" "$mnt2"
	expect_out "this VM is not mounted there"
	expect_code 2 "$modvm" mount "$work/nosock" "$mnt2"
	expect_out "cannot connect"
	# two mounts at once, then modvm umount ends one; the VM runs on
	expect_code 0 "$modvm" mount "$sock" "$mnt2"
	wait_mounted "$mnt2" || exit 1
	check "the second mount lists m1" test "$(ls "$mnt2/snapshots")" = m1
	expect_code 0 "$modvm" umount "$sock" "$mnt"
	check "modvm umount unmounted $mnt" not_mounted "$mnt"
	check "the other mount serves on" grep -qx "status = running" "$mnt2/status"
	expect_code 0 "$modvm" ctl "$sock" status
	expect_out '"status": "running"'
	# fusermount3 -u from outside, then the same directory again
	expect_code 0 fusermount3 -u "$mnt2"
	wait_unmounted "$mnt2"
	expect_code 0 "$modvm" mount "$sock" "$mnt2"
	wait_mounted "$mnt2" || exit 1
	expect_code 0 "$modvm" mount "$sock" "$mnt"
	wait_mounted "$mnt" || exit 1
	# the VM unmounts both when it exits
	expect_code 0 "$modvm" ctl "$sock" quit
	finish "$pid" 130
	check "quit: $mnt unmounted" not_mounted "$mnt"
	check "quit: $mnt2 unmounted" not_mounted "$mnt2"
	;;
disks)
	# disks/ID says where a disk's content is; mkdir snapshots/NAME
	# freezes the image and moves the VM onto an overlay
	"$modvm" inspect block-qcow2 2>/dev/null | grep -q "backing-file" ||
		skip "block-qcow2 cannot create overlays yet (no create/backing-file properties)"
	truncate -s 1M "$work/disk.img"
	printf 'data' | dd of="$work/disk.img" bs=1 seek=4096 conv=notrunc 2>/dev/null
	cp "$work/disk.img" "$work/disk.orig"
	write_cfg "$work/disk.cfg" 'action = "wait";' \
		"{ plugin = \"virtio-blk\"; id = \"vda\"; backend = \"raw\"; path = \"$work/disk.img\"; }"
	start run run "$work/disk.cfg" --mount "$mnt" --snapshot-dir "$work/snaps"
	wait_mounted "$mnt" || { cat "$work/run.out"; exit 1; }
	check "disks/ lists vda" test "$(ls "$mnt/disks")" = vda
	out=$(cat "$mnt/disks/vda")
	expect_out "path = $work/disk.img"
	expect_out "format = raw"
	expect_out "overlay = false"
	expect_code 0 mkdir "$mnt/snapshots/d1"
	out=$(cat "$mnt/disks/vda")
	expect_out "path = $work/disk.img.d1.qcow2"
	expect_out "format = qcow2"
	expect_out "overlay = true"
	check "the frozen image is unchanged" cmp "$work/disk.img" "$work/disk.orig"
	expect_code 0 qemu-img check -q "$work/disk.img.d1.qcow2"
	expect_fail "No such file or directory" cat "$mnt/disks/vdb"
	echo quit >"$mnt/control"
	finish "$pid" 130
	wait_unmounted "$mnt"
	;;
signal)
	for sig in TERM HUP; do
		start run run "$work/wait.cfg" --mount "$mnt"
		wait_mounted "$mnt" || exit 1
		kill -$sig "$pid"
		finish "$pid" 130
		check "SIG$sig: unmounted when modvm exits" not_mounted "$mnt"
		out=$(cat "$work/run.out")
		expect_out "stopping on signal"
	done
	# the guest powers off: exit 0, unmounted
	write_cfg "$work/off.cfg" 'action = "poweroff";' "$t0"
	expect_code 0 "$modvm" run "$work/off.cfg" --mount "$mnt"
	check "poweroff: unmounted" not_mounted "$mnt"
	# an engine error after the mount: exit 1, unmounted
	write_cfg "$work/err.cfg" 'action = "error";' "$t0"
	expect_code 1 "$modvm" run "$work/err.cfg" --mount "$mnt"
	check "engine error: unmounted" not_mounted "$mnt"
	# bad mount points: nothing runs
	expect_code 2 "$modvm" run "$work/wait.cfg" --mount "$work/missing"
	expect_out "--mount $work/missing: No such file or directory"
	expect_code 2 "$modvm" run "$work/wait.cfg" --mount "$work/hlt.bin"
	expect_out "not a directory"
	# snapshots written inside the mount would deadlock its thread
	expect_code 2 "$modvm" run "$work/wait.cfg" --mount "$mnt" --snapshot-dir "$mnt/snapshots"
	expect_out "--snapshot-dir $mnt/snapshots is inside --mount $mnt"
	check "refused: not mounted" not_mounted "$mnt"
	;;
stale)
	# a modvm killed without auto_unmount leaves a dead mount behind
	MODVM_FUSE_NO_AUTO_UNMOUNT=1 start crashed run "$work/wait.cfg" --mount "$mnt"
	wait_mounted "$mnt" || exit 1
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	expect_fail "Transport endpoint is not connected" stat "$mnt"
	start run run "$work/wait.cfg" --mount "$mnt" --control "$sock"
	wait_mounted "$mnt" || { cat "$work/run.out"; exit 1; }
	out=$(cat "$work/run.out")
	expect_out "$mnt was a stale modvm mount from a run that crashed: unmounted it (fusermount3 -u)"
	check "the new mount serves" grep -qx "status = running" "$mnt/status"
	first=$pid
	# a second modvm may not mount over a live one
	expect_code 2 "$modvm" run "$work/wait.cfg" --mount "$mnt"
	expect_out "another running modvm is mounted there"
	check "the first mount still serves" grep -qx "status = running" "$mnt/status"
	# by default fusermount3 --auto-unmount clears the mount of a
	# modvm that is killed. That is best effort in libfuse: on a loaded
	# host it sometimes leaves the mount (about 1 run in 9 with two busy
	# loops beside it; fusermount3 exits without unmounting). Then the
	# next modvm on that directory must clear it, as above.
	kill -9 "$first"
	wait "$first" 2>/dev/null
	left=0
	for _ in $(seq 100); do
		is_mounted "$mnt" || break
		sleep 0.1
	done
	if is_mounted "$mnt"; then
		left=1
		echo "note: fusermount3 --auto-unmount left $mnt mounted after kill -9 (libfuse's race); the next run must clear it"
		start run run "$work/wait.cfg" --mount "$mnt" --control "$sock"
		wait_mounted "$mnt" || { cat "$work/run.out"; exit 1; }
		check "the next run serves $mnt" grep -qx "status = running" "$mnt/status"
		echo quit >"$mnt/control"
		finish "$pid" 130
	fi
	wait_unmounted "$mnt"
	check "no dead mount after kill -9 (auto_unmount left it: $left)" stat -c %n "$mnt"
	;;
guest|guest-kvm)
	unset MODVM_PLUGIN_PATH
	engine=cpu-bt
	if [ "$case_name" = guest-kvm ]; then
		engine=
		for e in cpu-vtx cpu-svm; do
			"$modvm" plugins | grep -q "^engine $e: runs on this host: yes" && engine=$e
		done
		[ -n "$engine" ] || skip "neither cpu-vtx nor cpu-svm runs on this host"
	fi
	for f in plugins/$engine.so plugins/serial-16550.so plugins/chardev-file.so tests/guests/counter.bin; do
		[ -e "$build/$f" ] || skip "$build/$f is not built: the real-guest case needs it"
	done
	bin=$build/tests/guests/counter.bin
	readers=()
	# counter-ok FILE [MIN]: every "n=N sum=S" line follows the one
	# before (N+1, S = S*31 + N mod 2^32), at least MIN lines ("sum" may
	# be partly upper case where the patch met a line being printed). The
	# console keeps the last 1 MiB, so the first line may be any n.
	cat >"$work/counter-ok" <<'PY'
#!/usr/bin/env python3
import re, sys
text = open(sys.argv[1], errors="replace").read()
lines = [(int(n), int(h, 16)) for n, h in
         re.findall(r"^n=(\d+) [sS][uU][mM]=([0-9A-F]{8})$", text, re.M)]
if len(lines) < (int(sys.argv[2]) if len(sys.argv) > 2 else 1):
    sys.exit(f"{sys.argv[1]}: only {len(lines)} counter lines")
if lines[0][0] == 1 and lines[0][1] != 1:
    sys.exit(f"{sys.argv[1]}: n=1 has sum {lines[0][1]:08X}")
for (n0, s0), (n, s) in zip(lines, lines[1:]):
    if n != n0 + 1 or s != (s0 * 31 + n) & 0xFFFFFFFF:
        sys.exit(f"{sys.argv[1]}: n={n} sum={s:08X} after n={n0} sum={s0:08X}")
PY
	chmod +x "$work/counter-ok"
	cat >"$work/counter.cfg" <<CFG
vm: {
  name = "counter";
  machine = "none";
  memory = "16M";
  cpu = { engine = "$engine"; };
  boot = { kernel = "$bin"; };
  devices = ( { plugin = "serial-16550"; id = "com1"; backend = "file";
                path = "$work/serial.out"; append = false; } );
};
CFG
	start run run "$work/counter.cfg" --mount "$mnt" --control "$sock" --snapshot-dir "$work/snaps"
	wait_mounted "$mnt" || { cat "$work/run.out"; exit 1; }
	for _ in $(seq 100); do grep -q "sum=" "$mnt/console" && break; sleep 0.1; done
	out=$(head -2 "$mnt/console")
	expect_out "counter: start"
	expect_out "n=1 sum=00000001"
	# a running guest: regs read at an instruction boundary, and
	# the guest keeps running
	out=$(cat "$mnt/cpus/0/regs")
	expect_out "rip = 0x10"
	expect_out "cr0 = 0x11"
	check "regs names as query-cpus" test "$(sed 's/ = .*//' "$mnt/cpus/0/regs")" = "$(ctl_regs "$sock" | sed 's/ = .*//')"
	# readers in parallel with the guest: each read of regs pauses it
	# for a copy; the guest runs on, its output unbroken (checked below)
	for r in 1 2 3; do
		(for _ in $(seq 20); do cat "$mnt/cpus/0/regs" "$mnt/devices/com1/state" >/dev/null || exit 1; done) &
		readers+=($!)
	done
	for r in "${readers[@]}"; do check "parallel reader $r" wait "$r"; done
	check "still running" grep -qx "status = running" "$mnt/status"
	# RAM of a running guest: the code page is the image as loaded
	check "code at 1 MiB is the image" cmp -n 4096 "$bin" <(dd if="$mnt/memory" bs=4096 count=1 skip=256 2>/dev/null)
	echo pause >"$mnt/control"
	# KVM's TSC keeps counting while the VM is paused (reported as an
	# engine issue): compare everything else there
	filter() { if [ "$engine" = cpu-bt ]; then cat; else grep -v '^tsc = '; fi; }
	fs_regs=$(filter <"$mnt/cpus/0/regs")
	check "paused: regs read" test "$(wc -l <<<"$fs_regs")" -gt 100
	check "paused: regs equal query-cpus" test "$fs_regs" = "$(ctl_regs "$sock" | filter)"
	mkdir "$mnt/snapshots/g1"
	cp "$mnt/console" "$work/before.txt"
	cp -r "$mnt/snapshots/g1" "$work/g1copy"
	if [ "$engine" = cpu-bt ]; then
		check "paused: cpus/0/state equals the snapshot's" cmp "$mnt/cpus/0/state" "$work/snaps/g1/cpu-0.state"
	else
		check "paused: cpus/0/state as large as the snapshot's" test "$(wc -c <"$mnt/cpus/0/state")" = "$(wc -c <"$work/snaps/g1/cpu-0.state")"
	fi
	check "paused: memory equals the snapshot's" cmp "$mnt/memory" "$work/snaps/g1/memory.img"
	# write memory while paused; the guest sees it: its " sum=" text
	# (inline in its code) becomes " SUM="
	off=$(python3 -c 'import sys; print(open(sys.argv[1],"rb").read().index(b" sum=\0"))' "$bin")
	printf ' SUM=' | dd of="$mnt/memory" bs=1 seek=$((0x100000 + off)) conv=notrunc 2>/dev/null
	echo resume >"$mnt/control"
	for _ in $(seq 100); do grep -q "SUM=" "$mnt/console" && break; sleep 0.1; done
	check "the guest printed the patched text" grep -q "^n=[0-9]* SUM=[0-9A-F]*$" "$mnt/console"
	# and the count ran on without a gap or a repeat
	check "the counter is continuous" "$work/counter-ok" "$mnt/console"
	echo quit >"$mnt/control"
	finish "$pid" 130
	wait_unmounted "$mnt"
	# the snapshot copied out through the mount resumes in a new
	# process exactly where it stopped: the output before the snapshot
	# and after the resume join with no gap, no repeat, sums intact
	start resume resume "$work/g1copy" --mount "$mnt2" --control "$sock"
	wait_mounted "$mnt2" || { cat "$work/resume.out"; exit 1; }
	for _ in $(seq 100); do [ "$(grep -c sum= "$mnt2/console")" -gt 100 ] && break; sleep 0.1; done
	cat "$work/before.txt" "$mnt2/console" >"$work/joined.txt"
	check "resumed output continues the sequence" "$work/counter-ok" "$work/joined.txt" 100
	echo quit >"$mnt2/control"
	finish "$pid" 130
	wait_unmounted "$mnt2"
	;;
*)
	echo "unknown case $case_name"
	exit 2
	;;
esac
summarize
