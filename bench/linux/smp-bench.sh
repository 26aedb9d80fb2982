#!/usr/bin/env bash
# SMP scaling: the same parallel workload (two sha256 workers, the guest's
# smp-par script) in a Linux guest with 1 and with 2 vCPUs, under modvm
# (cpu-bt, a host thread per vCPU) and under QEMU TCG (MTTCG, a host thread
# per vCPU), runs alternating between the two, medians quoted. Prints each
# VMM's scaling (time with 1 vCPU / time with 2) and modvm/QEMU per vCPU
# count. The host should have at least 2 idle cores.
#
#   bench/linux/smp-bench.sh [-n RUNS] [-w WORKERS] [-s MIB] [-M MODEL] [-t SECONDS]
#                            [-b BUILDDIR] [-g GUESTDIR] [-k LOGDIR]
#
# The workload's time is host wall time from the guest's "smp-par: start"
# line to its "smp-par: end" line (both stamped as they arrive).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

runs=3
workers=2
mib=32
model=system-v2
limit=900
build=$repo/build
guest=
logdir=

usage() {
	sed -n '9,10p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
}
while [ $# -gt 0 ]; do
	case "$1" in
	-n) runs=$2; shift 2 ;;
	-w) workers=$2; shift 2 ;;
	-s) mib=$2; shift 2 ;;
	-M) model=$2; shift 2 ;;
	-t) limit=$2; shift 2 ;;
	-b) build=$(cd "$2" && pwd); shift 2 ;;
	-g) guest=$(cd "$2" && pwd); shift 2 ;;
	-k) mkdir -p "$2"; logdir=$(cd "$2" && pwd); shift 2 ;;
	-h | --help) usage ;;
	*) echo "smp-bench: unknown argument $1" >&2; usage ;;
	esac
done
guest=${guest:-$build/guests/linux}
modvm=$build/modvm
kernel=$guest/vmlinuz
initrd=$guest/initrd.gz
cmdline="console=ttyS0 nokaslr no_timer_check panic=-1 modvm.script=smp-par modvm.workers=$workers modvm.mib=$mib"

die() { echo "smp-bench: error: $*" >&2; exit 2; }
{ [ -f "$kernel" ] && [ -f "$initrd" ]; } ||
	die "no $kernel or $initrd: run tests/guests/linux/mkinitramfs.sh ${guest}"
zcat "$initrd" | grep -aq 'scripts/smp-par' ||
	die "$initrd has no /scripts/smp-par: rebuild it (tests/guests/linux/mkinitramfs.sh $guest)"
[ -x "$modvm" ] || die "no $modvm: build modvm first (or -b BUILDDIR)"
command -v qemu-system-x86_64 >/dev/null ||
	die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
logdir=${logdir:-$tmp}
# run_stamped, elapsed, stamp, ratio
. "$here/stamp.sh"

want=$(head -c "${mib}M" /dev/zero | sha256sum | cut -d ' ' -f 1)

# one_run NAME LOG CMD...: prints the workload's seconds, or nothing (and
# says why on stderr) when the run failed.
one_run() {
	local name=$1 log=$2 rc=0 a b good
	shift 2
	run_stamped "$log" "$@" || rc=$?
	a=$(stamp "$log" '^smp-par: start')
	b=$(stamp "$log" '^smp-par: end')
	good=$(grep -c "smp-par: worker [0-9]* cpu [0-9]* sha256 $want" "$log" || true)
	if [ "$rc" != 0 ] || [ -z "$a" ] || [ -z "$b" ] || [ "$good" != "$workers" ]; then
		echo "  $name: failed (exit $rc, $good of $workers right hashes); last lines:" >&2
		grep -v ' EXIT ' "$log" | tail -n 4 | sed 's/^/    /' >&2
		return 0
	fi
	awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f\n", b - a }'
}

median() { # values...
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2];
		else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "host:    $(grep -m 1 'model name' /proc/cpuinfo | cut -d : -f 2- | sed 's/^ //'), $(nproc) cores, load $(cut -d ' ' -f 1-3 /proc/loadavg)"
echo "kernel:  $kernel"
echo "workload: $workers sha256 workers of ${mib} MiB each at once; runs: $runs per setting, alternating modvm/QEMU, medians"
echo "QEMU:    $(qemu-system-x86_64 --version | head -n 1), -accel tcg,thread=multi"

declare -A times
for cpus in 1 2; do
	cat >"$tmp/vm$cpus.cfg" <<-EOF
	vm: {
	  name = "smp-bench"; memory = "512M"; cpus = $cpus;
	  cpu = { engine = "cpu-bt"; model = "$model"; };
	  boot = { kernel = "$kernel"; initrd = "$initrd"; format = "linux";
	           cmdline = "$cmdline"; };
	  devices = ( { plugin = "serial-16550"; id = "com1"; backend = "stdio"; } );
	};
	EOF
	"$modvm" check "$tmp/vm$cpus.cfg" >/dev/null || die "modvm refused the generated config"
done
for i in $(seq 1 "$runs"); do
	for cpus in 1 2; do
		t=$(one_run "modvm cpus=$cpus run $i" "$logdir/modvm-$cpus-$i.log" \
			"$modvm" run --no-reboot "$tmp/vm$cpus.cfg")
		echo "  modvm cpus=$cpus run $i: ${t:-failed}s"
		times[modvm,$cpus]+="$t "
		t=$(one_run "QEMU cpus=$cpus run $i" "$logdir/qemu-$cpus-$i.log" \
			qemu-system-x86_64 -accel tcg,thread=multi -smp "$cpus" -m 512M \
			-display none -monitor none -serial stdio -no-reboot \
			-kernel "$kernel" -initrd "$initrd" -append "$cmdline")
		echo "  QEMU  cpus=$cpus run $i: ${t:-failed}s"
		times[qemu,$cpus]+="$t "
	done
done

# shellcheck disable=SC2086 # the lists are words on purpose
{
	m1=$(median ${times[modvm,1]}) m2=$(median ${times[modvm,2]})
	q1=$(median ${times[qemu,1]}) q2=$(median ${times[qemu,2]})
}
echo
echo "results (median seconds of host wall time for the workload):"
printf '  %-10s %10s %10s %18s\n' "" "1 vCPU" "2 vCPUs" "scaling (1/2)"
printf '  %-10s %10s %10s %18s\n' "modvm" "${m1:-n/a}" "${m2:-n/a}" "$(ratio "$m1" "$m2")"
printf '  %-10s %10s %10s %18s\n' "QEMU TCG" "${q1:-n/a}" "${q2:-n/a}" "$(ratio "$q1" "$q2")"
echo "ratios modvm/QEMU (time; below 1 is faster): 1 vCPU $(ratio "$m1" "$q1"), 2 vCPUs $(ratio "$m2" "$q2")"
[ "$logdir" = "$tmp" ] || echo "console logs: $logdir"
