#!/bin/bash
# Guests that misbehave on purpose (tests/guests/system/bad) under cpu-bt,
# and under cpu-vtx where this host's KVM can run it: modvm must survive
# each one (no crash: exit 134/139, no sanitizer report) and end it the way
# docs/cli.md promises. Checks, per engine:
#   triple   a triple fault: --no-reboot ends with exit 4 and says so;
#            without it the machine resets and boots the guest again
#   garbage  random code from fixed seeds (resets between boots): any
#            guest-level end (power-off, reset, a hang the watchdog ends)
#   wild     reads above RAM and in the MMIO hole give all ones, writes
#            there and to 0xF0000 are harmless, jumps there raise exceptions
#   halt     CLI; HLT: modvm reports the halted guest and sleeps (its CPU
#            time over 2 s of wall time stays under 0.5 s): a correctness
#            property (no busy wait), not a speed test
#   storm    PIT at ~600 kHz into IRQ 0: 20000 interrupts, then power-off
#   ipi      4 vCPUs: IPI storms, NMIs, IPIs to no one and with reserved
#            modes, INIT/SIPI to running APs, self-IPIs: survives, PASS
# Usage: bad_guests.sh MODVM GUEST_DIR
# BT_MODE=translate|interpret in the environment sets cpu-bt's `mode`.
set -u
modvm=$1
dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
hz=$(getconf CLK_TCK)

# bt_mode ENGINE: the config's ` mode = "...";` for cpu-bt when BT_MODE
# (translate|interpret) is set; nothing otherwise (the default: translate)
bt_mode() {
	[ "$1" = cpu-bt ] && [ -n "${BT_MODE:-}" ] && printf ' mode = "%s";' "$BT_MODE"
}
case ${BT_MODE:-} in
""|translate|interpret) ;;
*) echo "FAIL: BT_MODE=$BT_MODE (translate or interpret)"; exit 1 ;;
esac

# config ENGINE GUEST: writes $tmp/ENGINE-GUEST.cfg, serial to .out
config() {
	cat > "$tmp/$1-$2.cfg" <<CFG
vm: {
  name = "$2"; memory = "64M"; cpus = ${cpus:-1};
  cpu = { engine = "$1"; model = "baseline-v1";$(bt_mode "$1") };
  boot = { kernel = "$dir/bad-$2.bin"; format = "multiboot"; };
  devices = (
    { plugin = "serial-16550"; id = "com1"; port = 0x3f8; irq = 4;
      backend = "file"; path = "$tmp/$1-$2.out"; }
  );
};
CFG
}

# run ENGINE GUEST SECONDS [ARGS...]: sets rc; output in .out/.log
run() {
	local e=$1 g=$2 t=$3
	shift 3
	config "$e" "$g"
	timeout --kill-after=5 "$t" "$modvm" run "$@" "$tmp/$e-$g.cfg" \
		</dev/null >"$tmp/$e-$g.log" 2>&1
	rc=$?
}

bad() { # ENGINE GUEST reason
	echo "FAIL $2 under $1: $3"
	tail -n 5 "$tmp/$1-$2.out" "$tmp/$1-$2.log" 2>/dev/null | sed 's/^/    /'
	fail=1
}

# pvm_limit ENGINE GUEST: cpu-vtx on KVM without hardware assistance
# stopped because KVM could not emulate a kernel-mode instruction (IRETD,
# INT3 through a broken IDT, random bytes: docs/engines-kvm.md); printed as
# a skip with the reason
pvm_limit() {
	[ "$1" = cpu-vtx ] && [ -z "${probe##*without hardware assistance*}" ] &&
		grep -q "could not emulate" "$tmp/$1-$2.log" || return 1
	echo "SKIP $2 under $1: KVM without hardware assistance could not emulate" \
		"the guest's kernel-mode code (docs/engines-kvm.md): exit $rc," \
		"$(grep -o 'at CS:RIP [0-9a-f:]*' "$tmp/$1-$2.log" | head -n 1)"
}

# survived ENGINE GUEST: no crash of modvm itself
survived() {
	case $rc in
	134|139|136|135) bad "$1" "$2" "modvm crashed (exit $rc)"; return 1 ;;
	esac
	if grep -qE "AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:" \
		"$tmp/$1-$2.log"; then
		bad "$1" "$2" "sanitizer report"
		return 1
	fi
	return 0
}

test_triple() {
	run "$1" triple 30 --no-reboot
	survived "$1" triple || return
	pvm_limit "$1" triple && return
	if [ $rc -ne 4 ]; then
		bad "$1" triple "--no-reboot: exit $rc, expected 4"; return
	fi
	if ! grep -qi "triple fault" "$tmp/$1-triple.log" ||
	   ! grep -q "reset" "$tmp/$1-triple.log"; then
		bad "$1" triple "no clear report of the triple fault and reset"; return
	fi
	run "$1" triple 3
	survived "$1" triple || return
	local boots
	boots=$(grep -c "^bad-triple: start" "$tmp/$1-triple.out")
	if [ "$boots" -lt 2 ]; then
		bad "$1" triple "without --no-reboot the guest booted $boots time(s): no reset"
		return
	fi
	echo "PASS triple under $1 (exit 4 with --no-reboot; $boots boots in 3 s without)"
}

test_garbage() {
	run "$1" garbage 30
	survived "$1" garbage || return
	pvm_limit "$1" garbage && return
	case $rc in
	0|4|124) ;;
	*) bad "$1" garbage "exit $rc (an engine error is not a guest-level end)"; return ;;
	esac
	local trials boots
	trials=$(grep -c "^bad-garbage: trial" "$tmp/$1-garbage.out")
	boots=$(grep -c "^bad-garbage: boot" "$tmp/$1-garbage.out")
	if [ "$trials" -lt 2 ]; then
		bad "$1" garbage "only $trials trial(s) ran"; return
	fi
	echo "PASS garbage under $1 (exit $rc; $boots boot(s), $trials trials of random code)"
}

test_wild() {
	run "$1" wild 60 --no-reboot
	survived "$1" wild || return
	if ! grep -q "above RAM reads 0xFFFFFFFF, MMIO hole reads 0xFFFFFFFF" \
		"$tmp/$1-wild.out"; then
		bad "$1" wild "unbacked reads are not all ones"; return
	fi
	if [ $rc -ne 0 ] || ! grep -q "^bad-wild: PASS" "$tmp/$1-wild.out"; then
		pvm_limit "$1" wild && return
		bad "$1" wild "exit $rc, no PASS"; return
	fi
	echo "PASS wild under $1 ($(grep -c 'jump.*vector' "$tmp/$1-wild.out") wild jumps caught)"
}

test_halt() {
	local pid t0 t1 used
	config "$1" halt
	"$modvm" run "$tmp/$1-halt.cfg" </dev/null >"$tmp/$1-halt.log" 2>&1 &
	pid=$!
	sleep 2
	t0=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null)
	sleep 2
	t1=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null)
	kill -TERM "$pid" 2>/dev/null
	wait "$pid"
	rc=$?
	survived "$1" halt || return
	if [ -z "$t0" ] || [ -z "$t1" ]; then
		bad "$1" halt "modvm ended by itself (exit $rc)"; return
	fi
	used=$(( (t1 - t0) * 1000 / hz ))
	if [ "$used" -ge 500 ]; then
		bad "$1" halt "busy: ${used} ms of CPU time in 2 s while the guest is halted with IF=0"
		return
	fi
	if ! grep -q "halted with interrupts disabled" "$tmp/$1-halt.log"; then
		if [ "$1" = cpu-bt ]; then
			bad "$1" halt "no report of the halt with interrupts disabled"; return
		fi
		echo "NOTE halt under $1: no report of the halt with IF=0 (the engine does not log it)"
	fi
	echo "PASS halt under $1 (${used} ms CPU in 2 s)"
}

test_storm() {
	run "$1" storm 300
	survived "$1" storm || return
	if [ $rc -ne 0 ] || ! grep -q "^bad-storm: PASS" "$tmp/$1-storm.out"; then
		pvm_limit "$1" storm && return
		bad "$1" storm "exit $rc, no PASS"; return
	fi
	echo "PASS storm under $1"
}

test_ipi() {
	cpus=4 run "$1" ipi 120 --no-reboot # a triple fault of an AP ends it
	survived "$1" ipi || return
	if [ $rc -ne 0 ] || ! grep -q "^bad-ipi: PASS" "$tmp/$1-ipi.out"; then
		pvm_limit "$1" ipi && return
		bad "$1" ipi "exit $rc, no PASS"; return
	fi
	echo "PASS ipi under $1 ($(grep -o 'boot CPU took.*' "$tmp/$1-ipi.out"))"
}

for g in triple garbage wild halt storm ipi; do
	[ -f "$dir/bad-$g.bin" ] || { echo "FAIL: no $dir/bad-$g.bin (build test-guests-system)"; exit 1; }
done
engines=cpu-bt
probe=$("$modvm" plugins 2>&1 | grep "^engine cpu-vtx: ")
case $probe in
"") echo "SKIP cpu-vtx: not built" ;;
*"runs on this host: no"*) echo "SKIP cpu-vtx: ${probe#engine }" ;;
*) engines="cpu-bt cpu-vtx" ;;
esac
for e in $engines; do
	for g in triple garbage wild halt storm ipi; do
		"test_$g" "$e"
	done
done
exit $fail
