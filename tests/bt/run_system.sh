#!/bin/bash
# Runs one system test guest (tests/guests/system) under cpu-bt, QEMU TCG
# (the outside reference) and cpu-vtx, and compares the guests' STATE lines.
# cpu-bt must print "<name>: PASS", power off (exit 0) and print the same
# STATE line as QEMU; cpu-vtx must match too, except where this host's KVM
# without hardware assistance (kvm_pvm, docs/engines-kvm.md) fails in a
# known way, which is reported as a skipped comparison with the reason.
# Usage: run_system.sh MODVM GUEST_DIR NAME
# BT_MODE=translate|interpret in the environment sets cpu-bt's `mode`.
# Exit: 0 pass, 1 failure, 77 when qemu-system-x86_64 is missing (after the
# cpu-bt run passed).
set -u
modvm=$1
dir=$2
name=$3
image=$dir/$name.bin
qemu=${QEMU:-qemu-system-x86_64}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# bt_mode ENGINE: the config's ` mode = "...";` for cpu-bt when BT_MODE
# (translate|interpret) is set; nothing otherwise (the default: translate)
bt_mode() {
	[ "$1" = cpu-bt ] && [ -n "${BT_MODE:-}" ] && printf ' mode = "%s";' "$BT_MODE"
}
case ${BT_MODE:-} in
""|translate|interpret) ;;
*) echo "FAIL: BT_MODE=$BT_MODE (translate or interpret)"; exit 1 ;;
esac

[ -f "$image" ] || { echo "FAIL: no guest image $image (build test-guests-system)"; exit 1; }

# run_modvm ENGINE: serial output in $tmp/ENGINE.out, messages in .log
run_modvm() {
	cat > "$tmp/$1.cfg" <<CFG
vm: {
  name = "$name"; memory = "64M"; cpus = 1;
  cpu = { engine = "$1"; model = "baseline-v1";$(bt_mode "$1") };
  boot = { kernel = "$image"; format = "multiboot"; };
  devices = (
    { plugin = "serial-16550"; id = "com1"; port = 0x3f8; irq = 4;
      backend = "file"; path = "$tmp/$1.out"; }
  );
};
CFG
	timeout --kill-after=10 300 "$modvm" run --no-reboot "$tmp/$1.cfg" \
		</dev/null >"$tmp/$1.log" 2>&1
}

state() { grep -m1 '^STATE ' "$1" 2>/dev/null; }

show() { # title file...
	echo "--- $1"
	shift
	tail -n 8 "$@" 2>/dev/null | sed 's/^/    /'
}

run_modvm cpu-bt
rc=$?
if [ $rc -ne 0 ] || [ "$(tail -n 2 "$tmp/cpu-bt.out" | head -n 1)" != "$name: PASS" ]; then
	echo "FAIL $name under cpu-bt (exit $rc)"
	show "cpu-bt serial, log" "$tmp/cpu-bt.out" "$tmp/cpu-bt.log"
	exit 1
fi
bt_state=$(state "$tmp/cpu-bt.out")
if [ -z "$bt_state" ]; then
	echo "FAIL $name under cpu-bt: no STATE line"
	exit 1
fi
# cpu-bt models more than the reference shows: a global page survives a CR3
# reload (SDM 4.10.4.1; QEMU TCG drops it, which the SDM also allows)
if [ "$name" = sys-paging ] &&
   ! grep -q "global page after a CR3 reload reads .*(translation kept)" "$tmp/cpu-bt.out"; then
	echo "FAIL sys-paging under cpu-bt: the global page did not survive a CR3 reload"
	exit 1
fi
echo "PASS $name under cpu-bt${BT_MODE:+ (mode=$BT_MODE)}"
echo "  $bt_state"
fail=0

# What KVM without hardware assistance (kvm_pvm) cannot run, per guest
# (docs/engines-kvm.md): the reason and the failure it leaves in modvm's
# messages or the serial output. Any other cpu-vtx failure is a failure.
gp_after_paging='FAIL exception 0x0D err=0x00000000 eip=0x0010'
case $name in
sys-exceptions) known="32-bit paging, IRETD in 32-bit protected mode"
	pattern="could not emulate|triple fault|$gp_after_paging" ;;
sys-modes) known="PAE paging in 32-bit protected mode"
	pattern="could not emulate|triple fault|$gp_after_paging" ;;
sys-priv|sys-debug|sys-v86) known="IRETD in 32-bit protected mode"
	pattern="could not emulate" ;;
sys-fastcall) known="SYSCALL from ring 3 stays at CPL 3"
	pattern="could not emulate|triple fault at CS:RIP 004b" ;;
*) known= pattern= ;;
esac

# cpu-vtx, where the host's KVM can run it
probe=$("$modvm" plugins 2>&1 | grep "^engine cpu-vtx: ")
case $probe in
"") echo "SKIP cpu-vtx: this modvm has no cpu-vtx engine" ;;
*"runs on this host: no"*) echo "SKIP cpu-vtx: ${probe#engine }" ;;
*)
	run_modvm cpu-vtx
	rc=$?
	vtx_state=$(state "$tmp/cpu-vtx.out")
	if [ $rc -eq 0 ] && [ "$vtx_state" = "$bt_state" ]; then
		echo "PASS $name under cpu-vtx: same STATE"
	elif [ -n "$known" ] && [ -z "${probe##*without hardware assistance*}" ] &&
		cat "$tmp/cpu-vtx.log" "$tmp/cpu-vtx.out" 2>/dev/null | grep -qE "$pattern"; then
		why=$(cat "$tmp/cpu-vtx.log" "$tmp/cpu-vtx.out" | grep -m1 -E "$pattern")
		echo "SKIP cpu-vtx comparison: KVM without hardware assistance cannot" \
			"run this guest ($known; docs/engines-kvm.md): $why"
	else
		echo "FAIL $name under cpu-vtx (exit $rc)"
		echo "  cpu-bt:  $bt_state"
		echo "  cpu-vtx: $vtx_state"
		show "cpu-vtx serial, log" "$tmp/cpu-vtx.out" "$tmp/cpu-vtx.log"
		fail=1
	fi ;;
esac

if ! command -v "$qemu" >/dev/null; then
	echo "SKIP QEMU comparison: $qemu is not installed (scripts/deps.sh)"
	[ $fail -eq 0 ] && exit 77
	exit 1
fi
# -icount: QEMU's virtual time follows the instructions it runs, so its
# timers cannot fall behind the guest when this host is loaded (without it,
# QEMU's own timer interrupts arrive late under load and the reference is
# what fails sys-apic-timer).
timeout 120 "$qemu" -accel tcg,thread=single -icount shift=auto,sleep=on \
	-machine pc -cpu qemu64 -m 64 -display none \
	-monitor none -serial "file:$tmp/qemu.out" -no-reboot -kernel "$image" \
	</dev/null >"$tmp/qemu.log" 2>&1
rc=$?
q_state=$(state "$tmp/qemu.out")
if [ $rc -ne 0 ] || ! grep -qx "$name: PASS" "$tmp/qemu.out"; then
	echo "FAIL $name under QEMU TCG (exit $rc): the guest itself is wrong"
	show "QEMU serial, log" "$tmp/qemu.out" "$tmp/qemu.log"
	exit 1
fi
if [ "$q_state" != "$bt_state" ]; then
	echo "FAIL $name: cpu-bt's STATE differs from QEMU TCG's"
	echo "  cpu-bt: $bt_state"
	echo "  QEMU:   $q_state"
	echo "$bt_state" | tr ' ' '\n' > "$tmp/a"
	echo "$q_state" | tr ' ' '\n' > "$tmp/b"
	diff "$tmp/a" "$tmp/b" | sed 's/^/    /'
	exit 1
fi
echo "PASS $name under QEMU TCG: same STATE"
exit $fail
