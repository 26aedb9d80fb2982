#!/bin/bash
# Run one test guest (tests/guests) under a KVM engine through `modvm run`:
# a generated config with the PC machine and COM1 into a file, a watchdog,
# then the checks of tests/guests/README.md: exactly one "<name>: start",
# the last two lines "<name>: PASS" and "POWEROFF", and exit status 0 (the
# ACPI power-off).
#
# usage: run-guest.sh [-t SECONDS] [-e ENGINE] [-m MODVM] [-g GUEST_DIR]
#                     [-o OUT_DIR] [-M MODEL] [-i IRQCHIP]
#                     [-k REASON -p PATTERN] [-c ECX] GUEST
#   -e  cpu-svm (default) or cpu-vtx
#   -m  the modvm binary (default: build/modvm of this checkout)
#   -g  folder with <guest>.bin (default: build/tests/guests)
#   -o  keep the config, serial log and modvm's messages in
#       OUT_DIR/ENGINE-GUEST (default: a temporary folder, removed
#       afterwards unless the run fails)
#   -M  CPU model (default baseline-v1); -i irqchip property (split, none)
#   -n  vCPUs (default 1); a guest that prints "<name>: cpus=N" must see N
#   -k  the guest needs something KVM without hardware assistance (kvm_pvm)
#       cannot do (REASON, see docs/engines-kvm.md): on such a host a
#       failure whose modvm messages or serial output match the extended
#       regular expression PATTERN (-p) is reported as skipped, with the
#       reason; any other failure fails, and a pass is a pass
#   -s  the guest cannot finish within the time limit on KVM without
#       hardware assistance (REASON): on such a host it is skipped at once,
#       with the reason, instead of running until the watchdog
#   -c  the guest's ECX on PASS (tests/guests/README.md, "Final registers");
#       the other final registers are checked always, from the engine's
#       "final state" line at debug level (EAX 0x2000, EBX 0x600D600D,
#       EDX 0x604, ESI = EDI = EBP = 0)
#
# Exit status: 0 pass; 77 skipped (the engine cannot run on this host:
# other vendor, no /dev/kvm; or a known limitation, see -k); 124 watchdog;
# 1 failure (with the reason and the tail of the serial log).
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
timeout_s=120
engine=cpu-svm
modvm=$top/build/modvm
guest_dir=$top/build/tests/guests
out_dir=
model=baseline-v1
irqchip=split
known=
pattern=
slow=
ecx=
cpus=1

usage() {
	sed -n '/^# usage/,/^#$/p' "$0" >&2
	exit 2
}

while getopts t:e:m:g:o:M:i:k:p:s:c:n: opt; do
	case $opt in
	t) timeout_s=$OPTARG ;;
	e) engine=$OPTARG ;;
	m) modvm=$OPTARG ;;
	g) guest_dir=$OPTARG ;;
	o) out_dir=$OPTARG ;;
	M) model=$OPTARG ;;
	i) irqchip=$OPTARG ;;
	k) known=$OPTARG ;;
	p) pattern=$OPTARG ;;
	s) slow=$OPTARG ;;
	c) ecx=$OPTARG ;;
	n) cpus=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
name=$1
image=$guest_dir/$name.bin

if [ ! -x "$modvm" ]; then
	echo "$0: no modvm binary at $modvm (build it first)" >&2
	exit 2
fi
if [ ! -f "$image" ]; then
	echo "$0: no guest image $image (build the test-guests target first)" >&2
	exit 2
fi

# Skip, not fail, when this host cannot run the engine at all: `modvm
# plugins` prints the engine's own probe ("runs on this host: no - why").
probe=$("$modvm" plugins 2>&1 | grep "^engine $engine: ")
if [ -z "$probe" ]; then
	echo "$0: modvm does not know engine $engine" >&2
	exit 1
fi
case $probe in
*"runs on this host: no"*)
	echo "SKIP: ${probe#engine }"
	exit 77 ;;
*"without hardware assistance"*)
	if [ -n "$slow" ]; then
		echo "SKIP: $name under $engine: KVM here has no hardware assistance: $slow"
		exit 77
	fi ;;
esac

if [ -n "$out_dir" ]; then
	work=$out_dir/$engine-$name-$cpus
	rm -rf "$work"
	mkdir -p "$work" || exit 2
else
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
fi
cfg=$work/vm.cfg
serial=$work/com1.log
log=$work/modvm.log

cat > "$cfg" <<EOF
vm: {
  name = "kvm-$name";
  memory = "64M";
  cpus = $cpus;
  cpu = { engine = "$engine"; model = "$model"; irqchip = "$irqchip"; };
  boot = { kernel = "$image"; format = "multiboot"; };
  devices = (
    { plugin = "serial-16550"; id = "com1"; port = 0x3f8; irq = 4;
      backend = "file"; path = "$serial"; }
  );
};
EOF

start=$(date +%s%N)
timeout --signal=TERM --kill-after=10 "$timeout_s" "$modvm" run -v -v "$cfg" \
	</dev/null >"$log" 2>&1
status=$?
end=$(date +%s%N)
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')

fail() {
	if [ -n "$known" ] && [ -z "${probe##*without hardware assistance*}" ] &&
		cat "$log" "$serial" 2>/dev/null | grep -qE "$pattern"; then
		echo "SKIP: $name under $engine: $1; known limitation of KVM without" \
			"hardware assistance: $known"
		exit 77
	fi
	echo "$0: $name under $engine: $1 (${secs}s); config, log and serial in $work" >&2
	echo "--- modvm:" >&2
	tail -n 20 "$log" >&2
	echo "--- serial (last lines):" >&2
	tail -n 10 "$serial" 2>/dev/null >&2
	trap - EXIT
	exit "${2:-1}"
}

[ "$status" -eq 124 ] && fail "watchdog: no power-off within ${timeout_s}s" 124
[ "$status" -eq 0 ] || fail "modvm exited with status $status"
[ -f "$serial" ] || fail "no serial output"
starts=$(grep -c -x "$name: start" "$serial")
last=$(tail -n 2 "$serial" | tr '\n' '|')
[ "$starts" -eq 1 ] || fail "\"$name: start\" printed $starts times (a reset?)"
[ "$last" = "$name: PASS|POWEROFF|" ] || fail "did not end with PASS and POWEROFF"
if grep -q "^$name: cpus=" "$serial" && ! grep -q "^$name: cpus=$cpus " "$serial"; then
	fail "$(grep -m 1 "^$name: cpus=" "$serial") with cpus = $cpus in the config"
fi

# Final registers, from the engine's debug line (lower-case hex, no zeros).
final=$(grep -o "cpu 0: final state: .*" "$log" | tail -n 1)
[ -n "$final" ] || fail "no final state in the log (engine too old?)"
reg() {
	local v=${final#* $1=}
	echo "${v%% *}"
}
want() {
	local got
	got=$(reg "$1")
	[[ $got =~ ^0x[0-9a-f]+$ ]] || fail "final state has no $1: $final"
	[ $((got)) -eq $(($2)) ] || fail "final $1 is $got, expected $2"
}
want rax 0x2000
want rbx 0x600D600D
want rdx 0x604
want rsi 0
want rdi 0
want rbp 0
[ -z "$ecx" ] || want rcx "$ecx"
echo "$name: PASS under $engine in ${secs}s"
exit 0
