#!/bin/bash
# cpu-bt's translator against QEMU TCG on a CPU-bound guest, with repeats:
# the `compute` test guest (ring-3 xorshift64, 11 instructions a round,
# tests/guests/compute.asm) assembled with a chosen round count, run under
# modvm cpu-bt mode=translate and under QEMU TCG ALTERNATELY (modvm, QEMU,
# modvm, QEMU, ...) for R rounds, so a change in the host's load hits both
# sides alike. Each time is (run - empty run), the empty run (1 round) being
# taken just before each run, so start-up and firmware are left out. Prints
# each run's guest instructions/s, the median/min/max of each side, the
# median of the per-pair ratios modvm/TCG, one or more cpu-bt mode=interpret
# runs for reference (about 100x slower, so fewer rounds) and the loop run
# natively (bench/bt/native_xorshift.c), with the load average at each run.
#
# -g compute32 runs the 32-bit protected-mode ring-0 variant instead
# (tests/guests/compute32.asm, xorshift32, also 11 instructions a round;
# no native reference), for the translator's 16/32-bit path.
#
# usage: bench/bt/bt-ratio.sh [-b BUILD_DIR] [-g GUEST] [-n ROUNDS] [-r R]
#                             [-i ROUNDS_INTERP] [-I RUNS_INTERP] [--no-native]
#   -b BUILD_DIR      holds modvm and its plugins (default: build)
#   -g GUEST          compute (default; 64-bit ring 3) or compute32
#   -n ROUNDS         guest rounds for translate, TCG, native (default 200,000,000)
#   -r R              alternating pairs (default 5)
#   -i ROUNDS_INTERP  guest rounds for mode=interpret (default 20,000,000; 0: skip)
#   -I RUNS_INTERP    mode=interpret runs (default 1)
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$top/build
n=200000000
r=5
n_int=20000000
r_int=1
do_native=1
gname=compute
while [ $# -gt 0 ]; do
	case "$1" in
	-b) build=$2; shift 2 ;;
	-g) gname=$2; shift 2 ;;
	-n) n=$2; shift 2 ;;
	-r) r=$2; shift 2 ;;
	-i) n_int=$2; shift 2 ;;
	-I) r_int=$2; shift 2 ;;
	--no-native) do_native=0; shift ;;
	-h | --help) sed -n '14,25p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
	*) echo "bt-ratio: unknown argument $1" >&2; exit 2 ;;
	esac
done
build=$(cd "$build" && pwd)
modvm=$build/modvm
qemu=${QEMU:-qemu-system-x86_64}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
INSNS_PER_ROUND=11

[ -x "$modvm" ] || { echo "no $modvm: build modvm and the plugins first" >&2; exit 2; }
command -v "$qemu" >/dev/null || { echo "no $qemu (QEMU is the reference)" >&2; exit 2; }
command -v nasm >/dev/null || { echo "no nasm" >&2; exit 2; }

case $gname in
compute) ;;
compute32) do_native=0 ;;
*) echo "bt-ratio: -g compute or compute32" >&2; exit 2 ;;
esac

guest() { # ROUNDS -> $tmp/compute-ROUNDS.bin
	[ -f "$tmp/compute-$1.bin" ] && return
	nasm -f bin -I "$top/tests/guests/" -DCOMPUTE_ITERS="$1" \
		-o "$tmp/compute-$1.bin" "$top/tests/guests/$gname.asm" || exit 2
}

now() { date +%s%N; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# run_modvm MODE ROUNDS: prints the wall time in ns, or nothing on failure
run_modvm() {
	cat > "$tmp/$1.cfg" <<CFG
vm: {
  name = "bench"; memory = "64M"; cpus = 1;
  cpu = { engine = "cpu-bt"; model = "baseline-v1"; mode = "$1"; };
  boot = { kernel = "$tmp/compute-$2.bin"; format = "multiboot"; };
  devices = ( { plugin = "serial-16550"; id = "com1"; port = 0x3f8; irq = 4;
                backend = "file"; path = "$tmp/$1-$2.out"; } );
};
CFG
	local t0 t1
	rm -f "$tmp/$1-$2.out"
	t0=$(now)
	timeout 900 "$modvm" run "$tmp/$1.cfg" </dev/null >"$tmp/$1-$2.log" 2>&1 || return
	t1=$(now)
	grep -q "result=" "$tmp/$1-$2.out" || return
	echo $((t1 - t0))
}

run_translate() { run_modvm translate "$1"; }
run_interpret() { run_modvm interpret "$1"; }

run_qemu() { # ROUNDS
	local t0 t1
	rm -f "$tmp/qemu-$1.out"
	t0=$(now)
	timeout 900 "$qemu" -accel tcg -machine pc -cpu qemu64 -m 64 -display none \
		-monitor none -serial "file:$tmp/qemu-$1.out" -kernel "$tmp/compute-$1.bin" \
		</dev/null >/dev/null 2>&1 || return
	t1=$(now)
	grep -q "result=" "$tmp/qemu-$1.out" || return
	echo $((t1 - t0))
}

run_native() { # ROUNDS: the program times its own loop
	[ "$1" = 1 ] && { echo 0; return; }
	"$tmp/native" "$1" | sed -n 's/.*ns=//p'
}

# one NAME ROUNDS RUNNER: empty run, full run; prints "IPS LOOP_S" or nothing
one() {
	local e f
	e=$($3 1) f=$($3 "$2")
	[ -n "$e" ] && [ -n "$f" ] || return
	awk -v n="$2" -v e="$e" -v f="$f" -v k=$INSNS_PER_ROUND 'BEGIN {
		d = (f - e) / 1e9; if (d <= 0) d = 1e-9
		printf "%.0f %.3f\n", n * k / d, d }'
}

# stats VALUES...: "median min max" (median of an even count: mean of the middle two)
stats() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "- - -"; exit }
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%s %s %s\n", m, v[1], v[NR] }'
}

mips() { awk -v a="$1" 'BEGIN { if (a == "-") print "-"; else printf "%.1f M", a / 1e6 }'; }

guest 1
guest "$n"
[ "$n_int" != 0 ] && guest "$n_int"
echo "host: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "start: load $(load), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "modvm: $modvm (cpu-bt mode=translate); QEMU: $($qemu --version | head -n 1)"
echo "guest: $gname; rounds: $n (x $INSNS_PER_ROUND instructions), $r alternating pairs"
echo

native_ok=0
if [ "$do_native" = 1 ] && cc -O2 -o "$tmp/native" "$here/native_xorshift.c" 2>/dev/null; then
	native_ok=1
fi

m_ips=() q_ips=() ratios=() nat_ips=()
printf '| pair | modvm translate (instr/s) | loop s | QEMU TCG (instr/s) | loop s | modvm/TCG | load after |\n'
printf '|---|---|---|---|---|---|---|\n'
for i in $(seq 1 "$r"); do
	m=$(one translate "$n" run_translate)
	q=$(one qemu "$n" run_qemu)
	mi=${m%% *} qi=${q%% *}
	ratio=-
	[ -n "$m" ] && m_ips+=("$mi")
	[ -n "$q" ] && q_ips+=("$qi")
	if [ -n "$m" ] && [ -n "$q" ]; then
		ratio=$(awk -v a="$mi" -v b="$qi" 'BEGIN { printf "%.3f", a / b }')
		ratios+=("$ratio")
	fi
	printf '| %d | %s | %s | %s | %s | %s | %s |\n' "$i" \
		"$([ -n "$m" ] && mips "$mi" || echo failed)" "${m#* }" \
		"$([ -n "$q" ] && mips "$qi" || echo failed)" "${q#* }" "$ratio" "$(load)"
	if [ "$native_ok" = 1 ]; then
		x=$(one native "$n" run_native)
		[ -n "$x" ] && nat_ips+=("${x%% *}")
	fi
done

int_ips=()
if [ "$n_int" != 0 ]; then
	for i in $(seq 1 "$r_int"); do
		x=$(one interpret "$n_int" run_interpret)
		if [ -n "$x" ]; then
			int_ips+=("${x%% *}")
			echo "interpret run $i: $n_int rounds, loop ${x#* } s, $(mips "${x%% *}")/s, load $(load)"
		else
			echo "interpret run $i: failed (see $tmp/interpret-$n_int.log)"
		fi
	done
fi

echo
printf '| engine | runs | median instr/s | min | max |\n|---|---|---|---|---|\n'
row() { # NAME VALUES...
	local name=$1 s
	shift
	[ $# -gt 0 ] || return
	read -r med lo hi < <(stats "$@")
	printf '| %s | %d | %s | %s | %s |\n' "$name" $# "$(mips "$med")" "$(mips "$lo")" "$(mips "$hi")"
}
row "modvm cpu-bt translate" "${m_ips[@]}"
row "QEMU TCG" "${q_ips[@]}"
[ "${#int_ips[@]}" -gt 0 ] && row "modvm cpu-bt interpret ($n_int rounds)" "${int_ips[@]}"
[ "${#nat_ips[@]}" -gt 0 ] && row "native" "${nat_ips[@]}"
echo
if [ "${#ratios[@]}" -gt 0 ]; then
	read -r med lo hi < <(stats "${ratios[@]}")
	echo "modvm translate / QEMU TCG, per pair: median ${med}x (min ${lo}x, max ${hi}x, ${#ratios[@]} pairs)"
fi
if [ "${#m_ips[@]}" -gt 0 ] && [ "${#q_ips[@]}" -gt 0 ]; then
	mm=$(stats "${m_ips[@]}") qm=$(stats "${q_ips[@]}")
	awk -v a="${mm%% *}" -v b="${qm%% *}" \
		'BEGIN { printf "ratio of the medians modvm/TCG: %.3fx\n", a / b }'
	if [ "${#int_ips[@]}" -gt 0 ]; then
		im=$(stats "${int_ips[@]}")
		awk -v a="${mm%% *}" -v b="${im%% *}" \
			'BEGIN { printf "translate / interpret: %.1fx\n", a / b }'
	fi
	if [ "${#nat_ips[@]}" -gt 0 ]; then
		nm=$(stats "${nat_ips[@]}")
		awk -v a="${mm%% *}" -v b="${qm%% *}" -v c="${nm%% *}" \
			'BEGIN { printf "of native: modvm %.1f%%, TCG %.1f%%\n", 100 * a / c, 100 * b / c }'
	fi
fi
echo "end: load $(load), $(date -u '+%Y-%m-%d %H:%M UTC')"
[ "${#m_ips[@]}" = "$r" ] && [ "${#q_ips[@]}" = "$r" ]
