#!/bin/sh
# Snapshot and resume under cpu-bt: the `counter` guest is paused mid-run,
# snapshotted, and resumed (by cpu-bt, and from a cpu-vtx snapshot when
# KVM is usable); the resumed run must continue the serial stream and PASS.
# Usage: snapshot_roundtrip.sh MODVM GUEST_DIR
# BT_MODE=translate|interpret in the environment sets cpu-bt's `mode` in
# the config (the resumed run keeps the snapshot's config).
modvm=$(realpath "$1")
dir=$(realpath "$2")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
case ${BT_MODE:-} in
""|translate|interpret) ;;
*) echo "FAIL: BT_MODE=$BT_MODE (translate or interpret)"; exit 1 ;;
esac

# bt_mode ENGINE: ` mode = "...";` for cpu-bt when BT_MODE is set
bt_mode() {
	[ "$1" = cpu-bt ] && [ -n "${BT_MODE:-}" ] && printf ' mode = "%s";' "$BT_MODE"
}

config() { # engine
	cat > "$1.cfg" <<CFG
vm: {
  name = "counter"; memory = "16M"; cpus = 1; machine = "none";
  cpu = { engine = "$1"; model = "baseline-v1";$(bt_mode "$1") };
  boot = { kernel = "$dir/counter.bin"; };
  devices = (
    { plugin = "serial-16550"; id = "com1"; backend = "stdio"; },
    { plugin = "acpi-pm"; id = "pm"; }, { plugin = "pic-8259"; id = "pic"; },
    { plugin = "pit-8254"; id = "pit"; }
  );
};
CFG
}

# roundtrip FROM_ENGINE: run, snapshot after 2 s, resume under cpu-bt
roundtrip() {
	config "$1"
	"$modvm" run "$1.cfg" --control "$tmp/$1.sock" > "$1.first" 2>&1 &
	pid=$!
	sleep 2
	"$modvm" ctl "$tmp/$1.sock" pause > /dev/null &&
	"$modvm" ctl "$tmp/$1.sock" snapshot "snap-$1" > /dev/null || {
		echo "FAIL $1: pause/snapshot"; kill "$pid"; return 1; }
	"$modvm" ctl "$tmp/$1.sock" quit > /dev/null
	wait "$pid"
	timeout 300 "$modvm" resume "snap-$1" --engine cpu-bt > "$1.second" 2>&1
	rc=$?
	if [ $rc -ne 0 ] || ! grep -q "^counter: PASS" "$1.second"; then
		echo "FAIL $1 -> cpu-bt (exit $rc)"; tail -3 "$1.second"; return 1
	fi
	echo "PASS $1 -> cpu-bt"
}

# crossmode FROM TO: snapshot under cpu-bt mode=FROM, resume with mode=TO.
# The snapshot records mode=FROM; `modvm resume --engine-prop mode=TO`
# overrides it.
crossmode() {
	local name=x-$1 cfg
	BT_MODE=$1 config cpu-bt
	mv cpu-bt.cfg "$name.cfg"
	"$modvm" run "$name.cfg" --control "$tmp/$name.sock" > "$name.first" 2>&1 &
	pid=$!
	sleep 2
	"$modvm" ctl "$tmp/$name.sock" pause > /dev/null &&
	"$modvm" ctl "$tmp/$name.sock" snapshot "snap-$name" > /dev/null || {
		echo "FAIL mode $1 -> $2: pause/snapshot"; kill "$pid"; return 1; }
	"$modvm" ctl "$tmp/$name.sock" quit > /dev/null
	wait "$pid"
	cfg=snap-$name/config.cfg
	grep -q "mode = \"$1\";" "$cfg" || { echo "FAIL mode $1 -> $2: no mode in $cfg"; return 1; }
	timeout 300 "$modvm" resume "snap-$name" --engine-prop "mode=$2" > "$name.second" 2>&1
	rc=$?
	if [ $rc -ne 0 ] || ! grep -q "^counter: PASS" "$name.second"; then
		echo "FAIL mode $1 -> $2 (exit $rc)"; tail -3 "$name.second"; return 1
	fi
	# counter checks its final sum, which depends on every step: a
	# resumed run that did not continue exactly cannot PASS
	n=$(grep -ao '^n=[0-9]* ' "$name.first" | tail -n 1 | tr -dc 0-9)
	echo "PASS cpu-bt mode $1 -> mode $2 (paused near n=$n)"
}

fail=0
roundtrip cpu-bt || fail=1
crossmode translate interpret || fail=1
crossmode interpret translate || fail=1
if [ -r /dev/kvm ] && [ -w /dev/kvm ] && "$modvm" plugins 2>/dev/null | grep -q cpu-vtx &&
   grep -q GenuineIntel /proc/cpuinfo; then
	roundtrip cpu-vtx || fail=1
else
	echo "SKIP cpu-vtx -> cpu-bt: no usable /dev/kvm"
fi
exit $fail
