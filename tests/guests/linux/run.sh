#!/usr/bin/env bash
# Boots the Linux test guest once with modvm.script=SCRIPT, under modvm or
# (with -q) QEMU TCG as a reference, with a watchdog, and checks the result:
# the ready marker, the script's PASS line and a clean power-off (exit 0).
#
#   tests/guests/linux/run.sh [-q] [-e ENGINE] [-m MODEL] [-c CPUS] [-t SECONDS] [-b BUILDDIR]
#                             [-g GUESTDIR] [-k KERNEL] [-i INITRD]
#                             [-a "CMDLINE..."] [-l LOG] SCRIPT
#
# SCRIPT: selftest, cpu-bench, disk (see rootfs/scripts/). Exit status: 0 on
# success, 124 when the watchdog fired, 1 otherwise. The console goes to
# stdout and, with -l, to LOG.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)

qemu=0
engine=cpu-bt
model=baseline-v1
cpus=1
limit=600
build=$repo/build
guest=
extra=
log=
kernel=
initrd=

usage() {
	sed -n '5,7p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	-q) qemu=1; shift ;;
	-e) engine=$2; shift 2 ;;
	-m) model=$2; shift 2 ;;
	-c) cpus=$2; shift 2 ;;
	-t) limit=$2; shift 2 ;;
	-b) build=$2; shift 2 ;;
	-g) guest=$2; shift 2 ;;
	-a) extra=$2; shift 2 ;;
	-k) kernel=$(realpath "$2"); shift 2 ;;
	-i) initrd=$(realpath "$2"); shift 2 ;;
	-l) log=$2; shift 2 ;;
	-h | --help) usage ;;
	-*) echo "run.sh: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
[ $# -eq 1 ] || usage
script=$1
guest=$(cd "${guest:-$build/guests/linux}" && pwd)
kernel=${kernel:-$guest/vmlinuz}
initrd=${initrd:-$guest/initrd.gz}
# panic=-1: a guest panic becomes an immediate reset request instead of
# "end Kernel panic" forever (QEMU with -no-reboot then exits).
cmdline="console=ttyS0 nokaslr no_timer_check panic=-1 modvm.script=$script${extra:+ $extra}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log=${log:-$tmp/console.log}

if [ "$qemu" = 1 ]; then
	cmd=(qemu-system-x86_64 -accel tcg -m 512 -smp "$cpus" -display none -monitor none
		-serial stdio -no-reboot -kernel "$kernel"
		-initrd "$initrd" -append "$cmdline")
else
	# BT_MODE (translate|interpret) picks cpu-bt's execution mode
	engine_mode=
	[ -n "${BT_MODE:-}" ] && engine_mode=" mode = \"$BT_MODE\";"
	cat >"$tmp/vm.cfg" <<-EOF
	vm: {
	  name = "linux-$script";
	  memory = "512M"; cpus = $cpus;
	  cpu = { engine = "$engine"; model = "$model";$engine_mode };
	  boot = { kernel = "$kernel"; initrd = "$initrd";
	           format = "linux"; cmdline = "$cmdline"; };
	  devices = ( { plugin = "serial-16550"; id = "com1"; backend = "stdio"; } );
	};
	EOF
	# --no-reboot: with panic=-1 a guest panic ends modvm (exit 4)
	cmd=("$build/modvm" run --no-reboot "$tmp/vm.cfg")
fi

rc=0
timeout -k 5 "$limit" "${cmd[@]}" </dev/null 2>&1 | tr -d '\r' | tee "$log" || rc=${PIPESTATUS[0]}

# fail STATUS MESSAGE
fail() {
	echo "run.sh: FAIL: $2" >&2
	exit "$1"
}
if grep -q 'Kernel panic' "$log"; then
	fail 1 "guest panic: $(grep -m 1 'Kernel panic' "$log" | sed 's/^\[[^]]*\] //') (exit $rc)"
fi
[ "$rc" != 124 ] || fail 124 "no power-off within ${limit}s (watchdog)"
grep -q '^MODVM-LINUX-READY' "$log" || fail 1 "the guest never printed MODVM-LINUX-READY (exit $rc)"
grep -q "^MODVM-SCRIPT-END $script rc=0" "$log" || fail 1 "script $script failed (see above)"
[ "$rc" = 0 ] || fail 1 "the VM exited with $rc after the script"
echo "run.sh: PASS: $script"
