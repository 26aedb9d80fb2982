#!/usr/bin/env bash
# linux/migrate: a Linux guest counting onto its disk and its console is
# live-migrated to a second modvm process over loopback TCP, on the same
# disk image (shared storage), while it counts (docs/migration.md).
# usage: migrate.sh BUILD_DIR SOURCE_DIR
#
# The guest runs rootfs/scripts/snaploop (as linux/snapshot): "snaploop: N"
# on the console and N appended to /counter on ext2, a sync every 64. After
# the migration the test types "stop" on the destination's serial line: the
# guest checks its file, unmounts and powers off. Checked: both consoles
# together count 1..M with no gap and no repeat, the guest's own check
# passes, the image is a clean ext2 whose /counter holds exactly 1..M.
set -u
build=$1
src=$2
modvm=$build/modvm
guest=$build/guests/linux
work=$(mktemp -d /tmp/modvm-linuxmig.XXXXXX)
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

BEFORE=200
AFTER=200
BOOT_LIMIT=600
RUN_LIMIT=600

for tool in e2fsck debugfs; do
	if ! command -v $tool >/dev/null; then
		echo "SKIP: $tool (e2fsprogs) is needed to check the guest's disk"
		exit 77
	fi
done
if ! zcat "$guest/initrd.gz" | grep -aq 'scripts/snaploop'; then
	echo "FAIL: $guest/initrd.gz has no /scripts/snaploop: rebuild it (ctest -R linux/setup)"
	exit 1
fi

console() { tr -d '\r' <"$1"; }

wait_line() { # LOG REGEX SECONDS PID
	local i
	for ((i = 0; i < $3 * 2; i++)); do
		console "$1" | grep -Eq "$2" && return 0
		kill -0 "$4" 2>/dev/null || break
		sleep 0.5
	done
	console "$1" | grep -Eq "$2" && return 0
	fail "no console line matching '$2' within $3 s; last lines:"
	console "$1" | tail -n 8 | sed 's/^/    /'
	return 1
}

finish() { # PID LIMIT WANT
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

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
truncate -s 64M "$work/disk.img"
cat >"$work/vm.cfg" <<CFG
vm: {
  name = "linux-migrate";
  memory = "512M"; cpus = 1;
  cpu = { engine = "cpu-bt"; model = "baseline-v1"; };
  boot = { kernel = "$guest/vmlinuz"; initrd = "$guest/initrd.gz"; format = "linux";
           cmdline = "console=ttyS0 nokaslr no_timer_check panic=-1 modvm.script=snaploop"; };
  devices = (
    { plugin = "serial-16550"; id = "com1"; backend = "stdio"; },
    { plugin = "virtio-blk"; id = "vda"; backend = "raw"; path = "$work/disk.img"; }
  );
};
CFG
mkfifo "$work/in1" "$work/in2"
: >"$work/console1"
: >"$work/console2"
exec 3<>"$work/in1" 4<>"$work/in2"
t0=$SECONDS

"$modvm" run --no-reboot "$work/vm.cfg" --control "$work/src.sock" \
	<"$work/in1" >"$work/console1" 2>"$work/stderr1" &
spid=$!
pids+=("$spid")
checks=$((checks + 1))
if ! wait_line "$work/console1" "^snaploop: $BEFORE\$" $BOOT_LIMIT "$spid"; then
	sed 's/^/    stderr: /' "$work/stderr1"
	summarize
	exit 1
fi
t_boot=$((SECONDS - t0))
"$modvm" run --no-reboot "$work/vm.cfg" --control "$work/dst.sock" --incoming "tcp:127.0.0.1:$port" \
	<"$work/in2" >"$work/console2" 2>"$work/stderr2" &
dpid=$!
pids+=("$dpid")
for ((i = 0; i < 100; i++)); do
	grep -q "waiting for the incoming VM" "$work/stderr2" && break
	sleep 0.1
done
expect_code 0 "$modvm" ctl "$work/src.sock" migrate "tcp:127.0.0.1:$port"
finish "$spid" 120 0 || sed 's/^/    stderr: /' "$work/stderr1"
checks=$((checks + 1))
grep -q "migrated to tcp:127.0.0.1:$port" "$work/stderr1" || fail "the source does not say it migrated"
grep "migrated to" "$work/stderr1"
grep "VM received" "$work/stderr2"

checks=$((checks + 1))
if wait_line "$work/console2" "^snaploop: [0-9]+\$" $RUN_LIMIT "$dpid"; then
	V=$(console "$work/console2" | grep -E '^snaploop: [0-9]+$' | head -n 1 | cut -d ' ' -f 2)
	wait_line "$work/console2" "^snaploop: $((V + AFTER))\$" $RUN_LIMIT "$dpid" &&
	expect_code 0 "$modvm" ctl "$work/dst.sock" status
	echo stop >&4
	checks=$((checks + 1))
	wait_line "$work/console2" '^MODVM-SCRIPT-END ' $RUN_LIMIT "$dpid"
fi
finish "$dpid" 60 0 || sed 's/^/    stderr: /' "$work/stderr2"

# Both consoles joined: 1, 2, ... M, no gap, no repeat, no damaged line
# (the source's last line may be finished by the destination).
out=$(console "$work/console1"; console "$work/console2")
M=$(sed -n 's/^snaploop: stopped at \([0-9]*\)$/\1/p' <<<"$out")
checks=$((checks + 1))
seqerr=$(awk '
	/^snaploop: [0-9]+$/ { if ($2 != last + 1) { print "value " $2 " after " last; exit } last = $2; next }
	/^snaploop: (start|stopped at [0-9]+|PASS [0-9]+|FAIL .*)$/ { next }
	/snaploop:/ { print "damaged line: " $0; exit }
	END { print "last " last }' <<<"$out")
case "$seqerr" in
"last $M") [ -n "$M" ] && [ "$M" -ge $((BEFORE + AFTER)) ] || fail "the guest stopped at '$M'" ;;
*) fail "console sequence: $seqerr (guest stopped at '$M')" ;;
esac
expect_out "snaploop: PASS $M"
expect_out "MODVM-SCRIPT-END snaploop rc=0"

# The shared image after the destination's guest unmounted it: clean ext2,
# /counter is exactly 1..M (what the source wrote, then the destination).
expect_code 0 e2fsck -fn "$work/disk.img"
checks=$((checks + 1))
debugfs -R "cat /counter" "$work/disk.img" 2>/dev/null >"$work/counter"
if [ -z "$M" ] || ! seq 1 "$M" | cmp -s - "$work/counter"; then
	fail "the counter file on disk is not 1..$M: $(wc -l <"$work/counter") lines, last '$(tail -n 1 "$work/counter")'"
fi
echo "counted 1..$M across the migration (boot and $BEFORE values: ${t_boot}s); test took $((SECONDS - t0)) s"
summarize
