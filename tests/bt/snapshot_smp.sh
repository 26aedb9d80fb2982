#!/usr/bin/env bash
# A snapshot of a VM with several vCPUs, all of them busy: the smp-snap
# guest (tests/guests/smp-snap.asm) is paused mid-run, its vCPUs are looked
# at through query-cpus and the FUSE view (cpus/0 .. cpus/N-1), it is
# snapshotted and quit, and the snapshot is resumed in a new process in
# the other cpu-bt mode (translate <-> interpret). The guest checks at its
# end that every vCPU's registers and the shared counter came back exactly
# (its PASS line); the run before the snapshot must not have ended.
# Usage: snapshot_smp.sh MODVM GUEST_DIR CPUS
# BT_MODE=translate|interpret: the mode of the first run (default translate).
# FROM_KVM=1: the first run is under the host's KVM engine (cpu-svm or
# cpu-vtx) and the resume under cpu-bt; skipped (77) where neither runs.
modvm=$(realpath "$1")
dir=$(realpath "$2")
cpus=$3
from=${BT_MODE:-translate}
case $from in
translate) to=interpret ;;
interpret) to=translate ;;
*) echo "FAIL: BT_MODE=$from (translate or interpret)"; exit 1 ;;
esac
engine_cfg="engine = \"cpu-bt\"; model = \"baseline-v1\"; mode = \"$from\";"
resume_args=(--engine-prop "mode=$to")
first="cpu-bt mode=$from"
then="cpu-bt mode=$to"
if [ -n "${FROM_KVM:-}" ]; then
	kvm=
	for e in cpu-svm cpu-vtx; do
		"$modvm" plugins 2>/dev/null | grep -q "^engine $e: runs on this host: yes" && kvm=$e
	done
	if [ -z "$kvm" ]; then
		echo "SKIP: neither cpu-svm nor cpu-vtx runs on this host"
		exit 77
	fi
	engine_cfg="engine = \"$kvm\"; model = \"baseline-v1\";"
	resume_args=(--engine cpu-bt)
	first=$kvm
	then=cpu-bt
fi
tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid"
	rm -rf "$tmp"
}
trap cleanup EXIT
cd "$tmp" || exit 1
fail=0
no() { echo "FAIL: $*"; fail=1; }

cat > vm.cfg <<CFG
vm: {
  name = "smp-snap"; memory = "16M"; cpus = $cpus; machine = "none";
  cpu = { $engine_cfg };
  boot = { kernel = "$dir/smp-snap.bin"; };
  devices = (
    { plugin = "serial-16550"; id = "com1"; backend = "stdio"; },
    { plugin = "acpi-pm"; id = "pm"; }, { plugin = "pic-8259"; id = "pic"; },
    { plugin = "pit-8254"; id = "pit"; }
  );
};
CFG
mkdir mnt
"$modvm" run vm.cfg --control "$tmp/vm.sock" --mount "$tmp/mnt" > first.out 2> first.err &
pid=$!
i=0
until grep -q "^smp-snap: go" first.out; do
	i=$((i + 1))
	if [ $i -gt 600 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "FAIL: no 'smp-snap: go' line within 60 s"; cat first.out first.err
		exit 1
	fi
	sleep 0.1
done
sleep 1
"$modvm" ctl "$tmp/vm.sock" pause > /dev/null || no "pause"

# N vCPUs, every one stopped, in both views
n=$("$modvm" ctl "$tmp/vm.sock" query-cpus |
	python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n" = "$cpus" ] || no "query-cpus lists $n vCPUs, the config has $cpus"
want=$(seq 0 $((cpus - 1)) | tr '\n' ' ')
got=$(ls mnt/cpus | sort -n | tr '\n' ' ')
[ "$got" = "$want" ] || no "FUSE cpus/ lists '$got', expected '$want'"
for c in $(seq 0 $((cpus - 1))); do
	grep -q "^rip = 0x" "mnt/cpus/$c/regs" 2>/dev/null || no "mnt/cpus/$c/regs has no rip line"
done
grep -qx "status = paused" mnt/status || no "mnt/status is '$(cat mnt/status)', not paused"

"$modvm" ctl "$tmp/vm.sock" snapshot s1 > /dev/null || no "snapshot"
"$modvm" ctl "$tmp/vm.sock" quit > /dev/null
wait "$pid"
pid=
grep -q "^smp-snap: \(PASS\|FAIL\)" first.out &&
	no "the first run ended before the snapshot (make RUN_TIME longer): $(grep '^smp-snap:' first.out | tail -n 1)"

timeout 600 "$modvm" resume s1 "${resume_args[@]}" > second.out 2> second.err
rc=$?
grep "^smp-snap: cpus=" second.out
if [ $rc -ne 0 ] || ! grep -q "^smp-snap: PASS" second.out; then
	no "resumed under $then (exit $rc):"
	tail -n 3 second.out second.err
fi
grep -q "^smp-snap: cpus=$cpus " second.out || no "the resumed guest did not count $cpus CPUs"
[ $fail = 0 ] && echo "PASS: $cpus vCPUs snapshotted under $first, resumed under $then"
exit $fail
