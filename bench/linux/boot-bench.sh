#!/usr/bin/env bash
# Boots Debian's kernel with the test initramfs (tests/guests/linux) under
# modvm and under QEMU TCG, times boot to the MODVM-LINUX-READY marker and the
# in-guest cpu-bench workload, runs the same workload natively, and prints
# the ratios. A run that misses the marker or the workload says so.
#
#   bench/linux/boot-bench.sh [-e ENGINE] [-M MODEL] [-t SECONDS] [-n RUNS] [-m MEM]
#                             [-b BUILDDIR] [-g GUESTDIR] [-a "CMDLINE..."]
#                             [-k LOGDIR] [--no-qemu] [--no-modvm]
#
# Times are host wall-clock: each console line is stamped as it arrives, so
# they do not depend on the guest's clock being right. Run from anywhere;
# defaults are relative to the repository root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

engine=cpu-bt
model=baseline-v1
limit=600
runs=1
mem=512M
build=$repo/build
guest=
extra=
logdir=
do_qemu=1
do_modvm=1

usage() {
	sed -n '7,10p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	-e) engine=$2; shift 2 ;;
	-M) model=$2; shift 2 ;;
	-t) limit=$2; shift 2 ;;
	-n) runs=$2; shift 2 ;;
	-m) mem=$2; shift 2 ;;
	-b) build=$(cd "$2" && pwd); shift 2 ;;
	-g) guest=$(cd "$2" && pwd); shift 2 ;;
	-a) extra=$2; shift 2 ;;
	-k) mkdir -p "$2"; logdir=$(cd "$2" && pwd); shift 2 ;;
	--no-qemu) do_qemu=0; shift ;;
	--no-modvm) do_modvm=0; shift ;;
	-h | --help) usage ;;
	*) echo "boot-bench: unknown argument $1" >&2; usage ;;
	esac
done
guest=${guest:-$build/guests/linux}
modvm=$build/modvm
kernel=$guest/vmlinuz
initrd=$guest/initrd.gz
cmdline="console=ttyS0 nokaslr no_timer_check modvm.script=cpu-bench${extra:+ $extra}"

die() { echo "boot-bench: error: $*" >&2; exit 2; }
{ [ -f "$kernel" ] && [ -f "$initrd" ]; } ||
	die "no $kernel or $initrd: run tests/guests/linux/mkinitramfs.sh ${guest}"
[ "$do_modvm" = 0 ] || [ -x "$modvm" ] || die "no $modvm: build modvm first (or -b BUILDDIR)"
[ "$do_qemu" = 0 ] || command -v qemu-system-x86_64 >/dev/null ||
	die "qemu-system-x86_64 not found (apt-get install qemu-system-x86), or pass --no-qemu"
[[ "$mem" =~ ^[0-9]+M$ ]] || die "-m takes megabytes, such as 512M"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
logdir=${logdir:-$tmp}

# run_stamped, elapsed, stamp, ratio
. "$here/stamp.sh"

# One VM run: fills the globals boot, work, guest_ms, total, status.
measure() {
	local name=$1 log=$2 rc=0 t_ready t_start t_end
	shift 2
	run_stamped "$log" "$@" || rc=$?
	t_ready=$(stamp "$log" '^MODVM-LINUX-READY')
	t_start=$(stamp "$log" '^cpu-bench: start')
	t_end=$(stamp "$log" '^cpu-bench: end')
	total=$(awk '$2 == "EXIT" { printf "%.3f", $1 }' "$log")
	boot='' work='' guest_ms=''
	status=ok
	if [ -z "$t_ready" ]; then
		status="did not reach MODVM-LINUX-READY (exit $rc after ${total}s)"
	elif [ -z "$t_start" ] || [ -z "$t_end" ]; then
		boot=$t_ready
		status="reached the marker at ${t_ready}s but cpu-bench did not finish (exit $rc after ${total}s)"
	else
		boot=$t_ready
		work=$(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.3f", b - a }')
		guest_ms=$(sed -n 's/^[^ ]* cpu-bench: elapsed_ms=\([0-9]*\).*/\1/p' "$log")
		grep -q 'cpu-bench: sha256 ok' "$log" || status="cpu-bench printed a wrong sha256"
		[ "$rc" = 0 ] || status="finished the workload but exited with $rc"
	fi
	if [ "$status" != ok ]; then
		echo "  $name: $status"
		echo "  $name: last console lines:"
		grep -v ' EXIT ' "$log" | tail -n 5 | sed 's/^/    /'
	else
		printf '  %s: marker %.3fs, cpu-bench %.3fs (guest clock %sms), total %.3fs\n' \
			"$name" "$boot" "$work" "$guest_ms" "$total"
	fi
}

# best_of VAR VALUE: keeps the smallest value seen.
best_of() {
	local cur=${!1}
	[ -n "$2" ] || return 0
	if [ -z "$cur" ] || awk -v a="$2" -v b="$cur" 'BEGIN { exit !(a < b) }'; then
		printf -v "$1" '%s' "$2"
	fi
}


echo "kernel:  $kernel ($(sed -n 's/^kernel //p' "$guest/VERSION" 2>/dev/null))"
echo "initrd:  $initrd"
echo "cmdline: $cmdline"
echo "memory:  $mem, runs: $runs (best is kept), time limit: ${limit}s per run"

m_boot='' m_work='' q_boot='' q_work='' n_work=''
if [ "$do_modvm" = 1 ]; then
	cfg=$tmp/bench.cfg
	cat >"$cfg" <<-EOF
	vm: {
	  name = "linux-bench";
	  memory = "$mem";
	  cpu = { engine = "$engine"; model = "$model"; };
	  boot = { kernel = "$kernel"; initrd = "$initrd"; format = "linux";
	           cmdline = "$cmdline"; };
	  devices = ( { plugin = "serial-16550"; id = "com1"; backend = "stdio"; } );
	};
	EOF
	"$modvm" check "$cfg" >/dev/null || die "modvm refused the generated config (see above)"
	echo "modvm ($engine, $model): $modvm"
	for i in $(seq 1 "$runs"); do
		measure "run $i" "$logdir/modvm-$engine-$i.log" "$modvm" run "$cfg"
		best_of m_boot "$boot"
		best_of m_work "$work"
	done
fi
if [ "$do_qemu" = 1 ]; then
	echo "QEMU TCG: $(qemu-system-x86_64 --version | head -n 1)"
	for i in $(seq 1 "$runs"); do
		measure "run $i" "$logdir/qemu-tcg-$i.log" qemu-system-x86_64 \
			-accel tcg -m "$mem" -display none -monitor none -serial stdio \
			-no-reboot -kernel "$kernel" -initrd "$initrd" -append "$cmdline"
		best_of q_boot "$boot"
		best_of q_work "$work"
	done
fi

# The same workload natively, with the same busybox binary.
bb=$guest/busybox
echo "native: $bb dd | sha256sum"
for i in $(seq 1 "$runs"); do
	t0=${EPOCHREALTIME/./}
	"$bb" dd if=/dev/zero bs=1M count=64 2>/dev/null | "$bb" sha256sum >/dev/null
	t=$(elapsed "$t0")
	t=$(printf '%.3f' "$t")
	echo "  run $i: ${t}s"
	best_of n_work "$t"
done

echo
echo "results (best of $runs, seconds of host wall time):"
printf '  %-22s %10s %10s %10s\n' "" "modvm" "QEMU TCG" "native"
printf '  %-22s %10s %10s %10s\n' "boot to marker" "${m_boot:-none}" "${q_boot:-none}" "-"
printf '  %-22s %10s %10s %10s\n' "cpu-bench workload" "${m_work:-none}" "${q_work:-none}" "${n_work}"
echo "ratios:"
echo "  boot       modvm/QEMU   $(ratio "$m_boot" "$q_boot")"
echo "  workload   modvm/QEMU   $(ratio "$m_work" "$q_work")"
echo "  workload   modvm/native $(ratio "$m_work" "$n_work")"
echo "  workload   QEMU/native  $(ratio "$q_work" "$n_work")"
[ "$logdir" = "$tmp" ] || echo "console logs: $logdir"
