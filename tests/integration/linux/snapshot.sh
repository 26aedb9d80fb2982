#!/usr/bin/env bash
# linux/snapshot: a Linux guest snapshotted while it counts onto its disk,
# copied, and resumed in a new modvm process (docs/snapshot-format.md).
# usage: snapshot.sh BUILD_DIR SOURCE_DIR [CPUS]
#
# With CPUS > 1 (linux/snapshot-smp2) the VM has that many vCPUs (model
# system-v2) and every CPU but the first runs a pinned hashing worker
# (modvm.busy=1): the snapshot catches all of them mid-work, query-cpus
# must list CPUS stopped vCPUs, and each worker's hash must stay right
# across the resume.
#
# The guest runs rootfs/scripts/snaploop under cpu-bt with a virtio-blk raw
# disk: "snaploop: N" on the console and N appended to a file on ext2, with
# a sync every 64 values. The host pauses the VM mid-loop, snapshots it,
# quits, copies the snapshot with cp -r, deletes the original and resumes the
# copy. The console's stdin is a FIFO the test holds open, so after the
# resume the test types "stop" on the guest's serial line: the guest then
# checks the file, unmounts and powers off. That path also proves that the
# UART's receive side and the tty blocked in read() survived the snapshot.
# The snapshot freezes the disk image (the VM that took it goes on in a
# qcow2 overlay; the resumed one in a fresh overlay of its own): the image
# must not change from the snapshot on, and the resumed guest's disk is
# checked through its overlay. The pause before the snapshot only marks
# where the first console ends.
set -u
build=$1
src=$2
cpus=${3:-1}
model=baseline-v1
busy=
if [ "$cpus" -gt 1 ]; then
	model=system-v2
	busy=" modvm.busy=1"
fi
modvm=$build/modvm
guest=$build/guests/linux
work=$(mktemp -d /tmp/modvm-linuxsnap.XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	if [ -n "${MODVM_TEST_KEEP:-}" ]; then
		echo "kept $work (MODVM_TEST_KEEP)"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
. "$(dirname "$0")/../lib.sh"

# Values counted before the snapshot and after the resume.
BEFORE=200
AFTER=200
BOOT_LIMIT=1200 # seconds to the first $BEFORE values (boot included)
RUN_LIMIT=600   # seconds for the resumed part

for tool in e2fsck debugfs qemu-img; do
	if ! command -v $tool >/dev/null; then
		echo "SKIP: $tool (e2fsprogs, qemu-utils) is needed to check the guest's disk"
		exit 77
	fi
done
if ! zcat "$guest/initrd.gz" | grep -aq 'scripts/snaploop'; then
	echo "FAIL: $guest/initrd.gz has no /scripts/snaploop: rebuild it (ctest -R linux/setup)"
	exit 1
fi

# console LOG: the counter lines and the other guest lines, without \r.
console() { tr -d '\r' <"$1"; }

# wait_line LOG REGEX SECONDS PID: until a console line matches REGEX;
# fails when PID exits first or the time is up.
wait_line() {
	local i
	for ((i = 0; i < $3 * 2; i++)); do
		console "$1" | grep -Eq "$2" && return 0
		kill -0 "$4" 2>/dev/null || break
		sleep 0.5
	done
	console "$1" | grep -Eq "$2" && return 0
	fail "no console line matching '$2' within $3 s (modvm $(kill -0 "$4" 2>/dev/null && echo running || echo exited)); last lines:"
	console "$1" | tail -n 8 | sed 's/^/    /'
	return 1
}

# finish PID LIMIT WANT: modvm exits with WANT within LIMIT seconds (then
# it is killed). Not in a subshell: only this shell can wait for PID.
finish() {
	local i rc
	checks=$((checks + 1))
	for ((i = 0; i < $2 * 2; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.5
	done
	kill "$1" 2>/dev/null
	wait "$1"
	rc=$?
	[ "$rc" = "$3" ] || fail "modvm exited with $rc, expected $3"
	[ "$rc" = "$3" ]
}

truncate -s 64M "$work/disk.img"
cat >"$work/vm.cfg" <<CFG
vm: {
  name = "linux-snapshot";
  memory = "512M"; cpus = $cpus;
  cpu = { engine = "cpu-bt"; model = "$model"; };
  boot = { kernel = "$guest/vmlinuz"; initrd = "$guest/initrd.gz"; format = "linux";
           cmdline = "console=ttyS0 nokaslr no_timer_check panic=-1 modvm.script=snaploop$busy"; };
  devices = (
    { plugin = "serial-16550"; id = "com1"; backend = "stdio"; },
    { plugin = "virtio-blk"; id = "vda"; backend = "raw"; path = "$work/disk.img"; }
  );
};
CFG
mkfifo "$work/in1" "$work/in2"
: >"$work/console1"
: >"$work/console2"
# Opened read-write so that neither side blocks and modvm never sees EOF.
exec 3<>"$work/in1" 4<>"$work/in2"
sock=$work/vm.sock
t0=$SECONDS

# --- first run: boot, count, pause, snapshot, quit ---
mkdir -p "$work/snaps"
"$modvm" run --no-reboot "$work/vm.cfg" --control "$sock" --snapshot-dir "$work/snaps" \
	<"$work/in1" >"$work/console1" 2>"$work/stderr1" &
pid=$!
pids+=("$pid")
checks=$((checks + 1))
if ! wait_line "$work/console1" "^snaploop: $BEFORE\$" $BOOT_LIMIT "$pid"; then
	sed 's/^/    stderr: /' "$work/stderr1"
	summarize
	exit 1
fi
t_boot=$((SECONDS - t0))
expect_code 0 "$modvm" ctl "$sock" pause
n=$("$modvm" ctl "$sock" query-cpus |
	python3 -c 'import json,sys; c=json.load(sys.stdin); print(len(c), sum(1 for x in c if x.get("halted")))')
checks=$((checks + 1))
[ "${n%% *}" = "$cpus" ] || fail "query-cpus lists ${n%% *} vCPUs, the VM has $cpus"
echo "paused: query-cpus lists $cpus vCPUs, ${n#* } of them halted"
t1=${EPOCHREALTIME/./}
expect_code 0 "$modvm" ctl "$sock" snapshot s1
t_snap=$(((${EPOCHREALTIME/./} - t1) / 1000))
expect_out "\"path\": \"$work/snaps/s1\""
expect_code 0 "$modvm" ctl "$sock" quit
finish "$pid" 30 130 || sed 's/^/    stderr: /' "$work/stderr1"
checks=$((checks + 1))
grep -q '"device": "vda"' "$work/snaps/s1/manifest.json" ||
	fail "the manifest does not record disk vda"
# The snapshot froze disk.img (the stopped VM went on in an overlay): it
# must stay byte for byte what the snapshot saw, through the resume too.
checks=$((checks + 1))
grep -q '"frozen": true' "$work/snaps/s1/manifest.json" ||
	fail "the manifest does not show disk vda frozen"
base_sum=$(sha256sum <"$work/disk.img")

# V: the last complete counter line before the snapshot; partial: what the
# UART had sent of the next line when the VM paused (often nothing).
text=$(console "$work/console1"; printf x)
text=${text%x}
partial=${text##*$'\n'}
V=$(printf '%s' "${text%"$partial"}" | grep -E '^snaploop: [0-9]+$' | tail -n 1 | cut -d ' ' -f 2)
echo "snapshot after ${t_boot}s of boot and counting: console at value $V${partial:+ + \"$partial\"}, written in ${t_snap} ms"
echo "snapshot size: $(du -sh --apparent-size "$work/snaps/s1" | cut -f 1) apparent, $(du -sh "$work/snaps/s1" | cut -f 1) on disk"

# --- copy elsewhere, drop the original, resume the copy in a new process ---
cp -r "$work/snaps/s1" "$work/copy"
rm -rf "$work/snaps/s1"
t1=$SECONDS
# From $work: resume has no --snapshot-dir, and a post-mortem snapshot of
# a hung guest (below) goes to the current directory.
(cd "$work" && exec "$modvm" resume "$work/copy" --control "$sock") \
	<"$work/in2" >"$work/console2" 2>"$work/stderr2" &
pid=$!
pids+=("$pid")
checks=$((checks + 1))
if wait_line "$work/console2" "^snaploop: $((V + AFTER))\$" $RUN_LIMIT "$pid"; then
	expect_code 0 "$modvm" ctl "$sock" status
	expect_out '"status": "running"'
	echo stop >&4
	# After its checks the guest syncs and powers off through ACPI S5.
	checks=$((checks + 1))
	wait_line "$work/console2" '^MODVM-SCRIPT-END ' $RUN_LIMIT "$pid"
fi
# A guest still up 60 s later is a failure; one line of console input
# then tells a lost wakeup (it powers off) from a real hang.
for ((i = 0; i < 120; i++)); do
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.5
done
if kill -0 "$pid" 2>/dev/null; then
	fail "the resumed guest did not power off within 60 s of MODVM-SCRIPT-END"
	"$modvm" ctl "$sock" query-cpus | grep -E '"(rip|halted)"' | sed 's/^ */    /'
	# For a post-mortem with MODVM_TEST_KEEP=1: the hung VM as it is.
	"$modvm" ctl "$sock" snapshot hung >/dev/null 2>&1 &&
		echo "    the hung VM is in $work/hung"
	echo >&4
	for ((i = 0; i < 60; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	kill -0 "$pid" 2>/dev/null && echo "    still up 30 s after a line of console input" ||
		echo "    it powered off once a line of console input came: a lost wakeup"
fi
finish "$pid" 30 0 || sed 's/^/    stderr: /' "$work/stderr2"
echo "resumed part: $((SECONDS - t1)) s"

# The console after the resume starts at V+1, or finishes the line the
# snapshot cut: no value lost, none printed twice.
first=$(console "$work/console2" | head -n 1)
checks=$((checks + 1))
[ "$partial$first" = "snaploop: $((V + 1))" ] ||
	fail "the resumed console starts with '$first' after '$partial'; expected the line 'snaploop: $((V + 1))'"

# Both runs' consoles joined: 1, 2, ... M without a gap or a repeat, and
# no damaged counter line; M is where the guest stopped.
out=$(console "$work/console1"; console "$work/console2")
M=$(sed -n 's/^snaploop: stopped at \([0-9]*\)$/\1/p' <<<"$out")
checks=$((checks + 1))
seqerr=$(awk '
	/^snaploop: [0-9]+$/ { if ($2 != last + 1) { print "value " $2 " after " last; exit } last = $2; next }
	/^snaploop: (start|stopped at [0-9]+|PASS [0-9]+|FAIL .*|busy cpu [0-9]+ rounds [0-9]+)$/ { next }
	/snaploop:/ { print "damaged line: " $0; exit }
	END { print "last " last }' <<<"$out")
case "$seqerr" in
"last $M") [ -n "$M" ] && [ "$M" -ge $((V + AFTER)) ] || fail "the guest stopped at '$M', before $((V + AFTER))" ;;
*) fail "console sequence: $seqerr (guest stopped at '$M')" ;;
esac
expect_out "snaploop: PASS $M"
for ((k = 1; k < cpus; k++)); do
	expect_out "snaploop: busy cpu $k rounds "
done
expect_out "MODVM-SCRIPT-END snaploop rc=0"

# The resumed VM wrote into a fresh overlay over the frozen image, named
# after the snapshot directory it resumed (docs/snapshot-format.md); the
# image itself did not change.
overlay=$work/disk.img.copy-resume1.qcow2
checks=$((checks + 1))
[ "$(sha256sum <"$work/disk.img")" = "$base_sum" ] ||
	fail "the frozen disk.img changed after the snapshot"
checks=$((checks + 1))
[ -f "$overlay" ] || fail "no resume overlay $overlay"
expect_code 0 qemu-img check -q "$overlay"
expect_code 0 qemu-img convert -O raw "$overlay" "$work/final.img"

# The disk after the guest unmounted it and powered off: a clean ext2, and
# the counter file holds exactly 1..M.
expect_code 0 e2fsck -fn "$work/final.img"
checks=$((checks + 1))
debugfs -R "cat /counter" "$work/final.img" 2>/dev/null >"$work/counter"
if [ -z "$M" ] || ! seq 1 "$M" | cmp -s - "$work/counter"; then
	fail "the counter file on disk is not 1..$M: $(wc -l <"$work/counter") lines, last '$(tail -n 1 "$work/counter")'"
fi
echo "counted 1..$M across the snapshot at $V; test took $((SECONDS - t0)) s"
summarize
