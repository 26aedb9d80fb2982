#!/bin/bash
# Live migration of the migcount guest between two modvm processes over
# TCP (docs/migration.md). Usage: migrate.sh CASE MODVM GUEST_DIR
#   basic          migrate while it counts: the destination continues the
#                  count with no gap and no repeat, the guest's RAM check
#                  passes, the source exits 0 ("migrated to ...")
#   precopy        --downtime 0 --max-iterations 4: RAM is sent in several
#                  rounds while the guest runs (the progress says so), until
#                  nothing is dirty or the cap
#   refuse-ram     a destination with other RAM size refuses before the
#                  source stops: the source keeps counting
#   refuse-device  the same for a destination without one of the devices
#   killed         the destination killed mid-stream: the source keeps
#                  counting, and migrates to a new destination afterwards
#   corrupt        a proxy flips one bit of the stream: the destination
#                  refuses it (checksum), the source keeps counting
#   cancel         migrate-cancel during the stream: the source keeps going
#   disk           shared storage: a virtio-blk on one raw image both open
#   smp            a 2-vCPU VM (the second one waiting for SIPI)
#   netns          source and destination in two network namespaces joined
#                  by a veth pair (77 without root or `ip netns`)
#   kvm            the KVM engine of this host's vendor (pre-copy with
#                  KVM's dirty log); 77 without a usable /dev/kvm
case=$1
modvm=$(realpath "$2")
guests=$(realpath "$3")
here=$(dirname "$(realpath "$0")")
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "${NS:-}" ] && { ip netns del "${NS}a" 2>/dev/null; ip netns del "${NS}b" 2>/dev/null; }
	[ -n "${KEEP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT
cd "$tmp" || exit 1

fail() {
	echo "FAIL $case: $*"
	for f in src.err dst.err dst2.err; do [ -f $f ] && { echo "--- $f"; tail -5 $f; }; done
	exit 1
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# config FILE [MEMORY] [CPUS] [ENGINE] [without-pit]; DISK=path adds a
# virtio-blk on that raw image
config() {
	local pit='{ plugin = "pit-8254"; id = "pit"; }'
	[ "${5:-}" = without-pit ] && pit='{ plugin = "rtc-cmos"; id = "pit"; }'
	[ -n "${DISK:-}" ] && pit="$pit,
    { plugin = \"virtio-blk\"; id = \"vda\"; backend = \"raw\"; path = \"$DISK\"; }"
	cat > "$1" <<CFG
vm: {
  name = "migcount"; memory = "${2:-32M}"; cpus = ${3:-1}; machine = "none";
  cpu = { engine = "${4:-cpu-bt}"; model = "baseline-v1"; };
  boot = { kernel = "$guests/migcount.bin"; };
  devices = (
    { plugin = "serial-16550"; id = "com1"; backend = "stdio"; },
    { plugin = "acpi-pm"; id = "pm"; }, { plugin = "pic-8259"; id = "pic"; },
    $pit
  );
};
CFG
}

lines() { local n; n=$(grep -c '^n=' "$1" 2>/dev/null); echo "${n:-0}"; }

# wait_lines FILE N SECONDS
wait_lines() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		[ "$(lines "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# The source keeps counting: more lines within a few seconds.
still_counting() {
	local n
	n=$(lines src.out)
	wait_lines src.out $((n + 2)) 10 || fail "the source stopped counting (at $n lines)"
	kill -0 "$src" 2>/dev/null || fail "the source is gone"
}

start_src() { # CFG
	"$modvm" run "$1" --control "$tmp/src.sock" > src.out 2> src.err &
	src=$!
	pids+=($src)
	wait_lines src.out 3 20 || fail "the source guest does not count"
}

start_dst() { # CFG PORT OUT [NETNS]
	local pre=()
	[ -n "${4:-}" ] && pre=(ip netns exec "$4")
	"${pre[@]}" "$modvm" run "$1" --control "$tmp/$3.sock" --incoming "tcp:${ADDR:-127.0.0.1}:$2" \
		> "$3.out" 2> "$3.err" &
	dst=$!
	pids+=($dst)
	for ((i = 0; i < 100; i++)); do
		grep -q "waiting for the incoming VM" "$3.err" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "the destination does not listen"
}

# status FIELD: a field of migrate-status
status() {
	"$modvm" ctl "$tmp/src.sock" migrate-status 2>/dev/null |
		python3 -c "import json,sys; print(json.load(sys.stdin).get('$1',''))"
}

# wait_status STATE...: until migrate-status is one of them
wait_status() {
	local s i
	for ((i = 0; i < 300; i++)); do
		s=$(status status)
		for want; do [ "$s" = "$want" ] && return 0; done
		sleep 0.1
	done
	fail "migration status is \"$s\", expected $*"
}

# Source and destination output together: consecutive n= lines from 16384
# in steps of 16384, nothing else but the start line (and no FAIL).
check_sequence() { # DST_OUT [MIN_LINES]
	cat src.out "$1" | MIN=${2:-6} python3 -c '
import os
import sys
want, n, bad = 16384, 0, []
text = sys.stdin.read()
# the destination is still printing: its last line may be unfinished
for line in text[:text.rfind("\n") + 1].splitlines():
    if line == "migcount: start":
        continue
    if not line.startswith("n=") or int(line[2:]) != want:
        bad.append(line); break
    want += 16384; n += 1
if bad or n < int(os.environ["MIN"]):
    print("sequence broken after %d lines at %r" % (n, bad[0] if bad else "end")); sys.exit(1)
print("%d consecutive lines" % n)' || fail "the count did not continue exactly"
}

# A good migration to a fresh destination; checks the result.
migrate_ok() { # OUTNAME [ctl options]
	local out=$1 port
	shift
	port=$(free_port)
	config ok.cfg
	start_dst ok.cfg "$port" "$out"
	local before
	before=$(lines src.out)
	"${CTL_PRE[@]}" "$modvm" ctl "$tmp/src.sock" migrate "tcp:${ADDR:-127.0.0.1}:$port" "$@" > /dev/null ||
		fail "migrate did not start"
	for ((i = 0; i < 300; i++)); do
		kill -0 "$src" 2>/dev/null || break
		sleep 0.1
	done
	wait "$src"
	rc=$?
	[ $rc -eq 0 ] || fail "the source exited $rc after the migration"
	grep -q "migrated to tcp:" src.err || fail "no \"migrated to\" message"
	wait_lines "$out.out" 4 20 || fail "the destination does not count"
	grep -q FAIL "$out.out" src.out && fail "the guest's RAM check failed"
	check_sequence "$out.out"
	"$modvm" ctl "$tmp/$out.sock" quit > /dev/null
}

refused() { # DST_CFG WHAT
	local port
	port=$(free_port)
	start_src src.cfg
	start_dst "$1" "$port" dst
	"$modvm" ctl "$tmp/src.sock" migrate "tcp:127.0.0.1:$port" > /dev/null || fail "migrate did not start"
	wait_status failed
	status error | grep -q "refused.*$2" || fail "refused, but not for $2: $(status error)"
	wait "$dst"
	[ $? -eq 1 ] || fail "the refusing destination did not exit 1"
	grep -q "refused the incoming VM" dst.err || fail "the destination does not say it refused"
	still_counting
	migrate_ok dst2
}

config src.cfg
case $case in
basic)
	start_src src.cfg
	migrate_ok dst
	;;
precopy)
	start_src src.cfg
	# --bandwidth: round 1 lasts long enough for the guest to write pages
	migrate_ok dst --downtime 0 --max-iterations 4 --bandwidth 2
	# round 1 sends all RAM, round 2 what the guest wrote meanwhile (the
	# guest writes all the time, so something is dirty), then the stop
	grep -q "iteration 2 done" src.err || fail "only one pre-copy round"
	grep -Eq "[0-9]+ pages, [0-9]+ zero pages, ([3-9]|[1-9][0-9]) iterations" dst.err ||
		fail "the destination did not see 3 rounds or more: $(grep received dst.err)"
	;;
refuse-ram)
	config big.cfg 64M
	refused big.cfg "RAM"
	;;
refuse-device)
	config nopit.cfg 32M 1 cpu-bt without-pit
	refused nopit.cfg "device"
	;;
killed)
	start_src src.cfg
	port=$(free_port)
	start_dst src.cfg "$port" dst
	"$modvm" ctl "$tmp/src.sock" migrate "tcp:127.0.0.1:$port" --bandwidth 0.4 > /dev/null ||
		fail "migrate did not start"
	sleep 1
	[ "$(status status)" = active ] || fail "not migrating after 1 s: $(status status)"
	kill -9 "$dst"
	wait_status failed
	grep -q "keeps running here" src.err || fail "the source does not say it keeps running"
	still_counting
	migrate_ok dst2
	;;
corrupt)
	start_src src.cfg
	port=$(free_port)
	proxy=$(free_port)
	start_dst src.cfg "$port" dst
	python3 "$here/flip.py" "$proxy" "$port" 300000 > proxy.out 2>&1 &
	pids+=($!)
	for ((i = 0; i < 50; i++)); do grep -q ready proxy.out && break; sleep 0.1; done
	"$modvm" ctl "$tmp/src.sock" migrate "tcp:127.0.0.1:$proxy" > /dev/null || fail "migrate did not start"
	wait_status failed
	wait "$dst"
	[ $? -eq 1 ] || fail "the destination did not exit 1 on a corrupt stream"
	grep -q "fails its checksum" dst.err || fail "the destination does not name the checksum"
	still_counting
	migrate_ok dst2
	;;
cancel)
	start_src src.cfg
	port=$(free_port)
	start_dst src.cfg "$port" dst
	"$modvm" ctl "$tmp/src.sock" migrate "tcp:127.0.0.1:$port" --bandwidth 0.4 > /dev/null ||
		fail "migrate did not start"
	sleep 0.5
	"$modvm" ctl "$tmp/src.sock" migrate-cancel > /dev/null || fail "migrate-cancel refused"
	wait_status cancelled
	wait "$dst"
	[ $? -eq 1 ] || fail "the destination did not exit 1 on a cancelled stream"
	still_counting
	migrate_ok dst2
	;;
disk)
	# shared storage: both sides open the same raw image; the virtio-blk
	# and PCI state moves with the VM, the destination runs on the image
	truncate -s 4M "$tmp/shared.img"
	printf 'modvm-shared' | dd of="$tmp/shared.img" bs=1 seek=4096 conv=notrunc 2>/dev/null
	export DISK=$tmp/shared.img
	config src.cfg
	start_src src.cfg
	"$modvm" ctl "$tmp/src.sock" query-devices | grep -q '"vda"' || fail "no vda on the source"
	migrate_ok dst
	cmp -s -n 12 -i 4096:0 "$tmp/shared.img" <(printf 'modvm-shared') || fail "the shared image changed"
	;;
smp)
	config src.cfg 32M 2
	start_src src.cfg
	port=$(free_port)
	config ok2.cfg 32M 2
	start_dst ok2.cfg "$port" dst
	"$modvm" ctl "$tmp/src.sock" migrate "tcp:127.0.0.1:$port" > /dev/null || fail "migrate did not start"
	wait "$src" || fail "the source exited $?"
	wait_lines dst.out 4 20 || fail "the destination does not count"
	check_sequence dst.out
	;;
netns)
	command -v ip > /dev/null || { echo "SKIP: no ip command"; exit 77; }
	NS=modvm-mig$$
	if ! ip netns add "${NS}a" 2> ns.err || ! ip netns add "${NS}b" 2>> ns.err; then
		echo "SKIP: ip netns add failed (needs root): $(head -1 ns.err)"; exit 77
	fi
	ip link add "v${$}a" netns "${NS}a" type veth peer name "v${$}b" netns "${NS}b" ||
		{ echo "SKIP: cannot make a veth pair"; exit 77; }
	ip -n "${NS}a" addr add 10.231.0.1/24 dev "v${$}a"
	ip -n "${NS}b" addr add 10.231.0.2/24 dev "v${$}b"
	ip -n "${NS}a" link set "v${$}a" up
	ip -n "${NS}b" link set "v${$}b" up
	# the source "host": its VM and the ctl that connects for it
	ip netns exec "${NS}a" "$modvm" run src.cfg --control "$tmp/src.sock" > src.out 2> src.err &
	src=$!
	pids+=($src)
	wait_lines src.out 3 20 || fail "the source guest does not count"
	ADDR=10.231.0.2
	CTL_PRE=(ip netns exec "${NS}a")
	config ok.cfg
	port=$(free_port)
	start_dst ok.cfg "$port" dst "${NS}b"
	"${CTL_PRE[@]}" "$modvm" ctl "$tmp/src.sock" migrate "tcp:$ADDR:$port" > /dev/null ||
		fail "migrate did not start"
	wait "$src" || fail "the source exited $?"
	grep -q "migrated to tcp:10.231.0.2" src.err || fail "no \"migrated to\" message"
	wait_lines dst.out 4 20 || fail "the destination does not count"
	check_sequence dst.out
	;;
kvm)
	[ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: no usable /dev/kvm"; exit 77; }
	if grep -q GenuineIntel /proc/cpuinfo; then engine=cpu-vtx
	elif grep -q AuthenticAMD /proc/cpuinfo; then engine=cpu-svm
	else echo "SKIP: neither an Intel nor an AMD host"; exit 77; fi
	"$modvm" plugins 2>&1 | grep "^$engine" | grep -qi "cannot\|refus\|unusable" &&
		{ echo "SKIP: $engine cannot run here: $("$modvm" plugins 2>&1 | grep "^$engine")"; exit 77; }
	config src.cfg 32M 1 "$engine"
	"$modvm" run src.cfg --control "$tmp/src.sock" > src.out 2> src.err &
	src=$!
	pids+=($src)
	if ! wait_lines src.out 2 20; then
		echo "SKIP: the guest counts too slowly under $engine here ($(lines src.out) lines in 20 s: nested KVM emulates its ring-0 code)"
		exit 77
	fi
	port=$(free_port)
	start_dst src.cfg "$port" dst
	"$modvm" ctl "$tmp/src.sock" migrate "tcp:127.0.0.1:$port" > /dev/null || fail "migrate did not start"
	wait "$src" || fail "the source exited $?"
	# KVM's dirty log, or stop-and-copy if this KVM cannot log (said so)
	grep -Eq "iteration 1 done|stop-and-copy" src.err || fail "neither pre-copy nor a stop-and-copy note"
	grep -E "iteration 1 done|stop-and-copy" src.err | head -1
	wait_lines dst.out 2 25 || fail "the destination does not count"
	check_sequence dst.out 4
	;;
*)
	echo "unknown case $case"; exit 2 ;;
esac
echo "PASS $case"
