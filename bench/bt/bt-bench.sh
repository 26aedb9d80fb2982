#!/bin/bash
# cpu-bt speed on a CPU-bound guest: the `compute` test guest (ring-3
# xorshift64, 11 instructions a round) assembled with a chosen round count,
# run under modvm cpu-bt, QEMU TCG (reference), modvm cpu-vtx (ring 3 runs
# natively under KVM) and natively on the host; prints guest instructions
# per second and the ratios. Each time is (run - empty run) where the empty
# run has 1 round, so start-up and firmware are left out.
#
# usage: bench/bt/bt-bench.sh [BUILD_DIR] [ROUNDS_BT] [ROUNDS_FAST]
#   BUILD_DIR    holds modvm and its plugins (default: build)
#   ROUNDS_BT    rounds under cpu-bt (default 20,000,000 = 220 M instructions)
#   ROUNDS_FAST  rounds under QEMU, cpu-vtx and natively (default 200,000,000)
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
n_bt=${2:-20000000}
n_fast=${3:-200000000}
modvm=$build/modvm
qemu=${QEMU:-qemu-system-x86_64}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
INSNS_PER_ROUND=11

[ -x "$modvm" ] || { echo "no $modvm: build modvm and the plugins first" >&2; exit 2; }

guest() { # ROUNDS -> $tmp/compute-ROUNDS.bin
	nasm -f bin -I "$top/tests/guests/" -DCOMPUTE_ITERS="$1" \
		-o "$tmp/compute-$1.bin" "$top/tests/guests/compute.asm" || exit 2
}

now() { date +%s%N; }

# modvm ENGINE ROUNDS: prints the wall time in ns, or nothing on failure
run_modvm() {
	cat > "$tmp/$1.cfg" <<CFG
vm: {
  name = "bench"; memory = "64M"; cpus = 1;
  cpu = { engine = "$1"; model = "baseline-v1"; };
  boot = { kernel = "$tmp/compute-$2.bin"; format = "multiboot"; };
  devices = ( { plugin = "serial-16550"; id = "com1"; port = 0x3f8; irq = 4;
                backend = "file"; path = "$tmp/$1-$2.out"; } );
};
CFG
	local t0 t1
	t0=$(now)
	timeout 900 "$modvm" run "$tmp/$1.cfg" </dev/null >"$tmp/$1-$2.log" 2>&1 || return
	t1=$(now)
	# the ring-3 loop must have finished: cpu-vtx on KVM without hardware
	# assistance then fails the SYSCALL (docs/engines-kvm.md), after the loop
	grep -q "result=\|exception 0x0D.*cs=0x004B" "$tmp/$1-$2.out" || return
	echo $((t1 - t0))
}

run_qemu() { # ROUNDS
	local t0 t1
	t0=$(now)
	timeout 900 "$qemu" -accel tcg -machine pc -cpu qemu64 -m 64 -display none \
		-monitor none -serial "file:$tmp/qemu-$1.out" -kernel "$tmp/compute-$1.bin" \
		</dev/null >/dev/null 2>&1 || return
	t1=$(now)
	grep -q "result=" "$tmp/qemu-$1.out" || return
	echo $((t1 - t0))
}

# rate NAME ROUNDS EMPTY_NS FULL_NS: instructions per second
rate() {
	awk -v n="$2" -v e="$3" -v f="$4" -v k=$INSNS_PER_ROUND 'BEGIN {
		d = (f - e) / 1e9; if (d <= 0) d = 1e-9
		printf "%.0f", n * k / d }'
}

for n in 1 "$n_bt" "$n_fast"; do guest "$n"; done
echo "host: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')"

declare -A ips secs
measure() { # NAME ROUNDS empty_cmd full_cmd...
	local name=$1 n=$2 e f
	e=$($3 1) f=$($3 "$n")
	if [ -z "$e" ] || [ -z "$f" ]; then
		echo "$name: did not run (see the log)"; return
	fi
	ips[$name]=$(rate "$name" "$n" "$e" "$f")
	secs[$name]=$(awk -v e="$e" -v f="$f" 'BEGIN { printf "%.2f", (f - e) / 1e9 }')
}

run_bt() { run_modvm cpu-bt "$1"; }
run_vtx() { run_modvm cpu-vtx "$1"; }
run_native() {
	[ "$1" = 1 ] && { echo 0; return; }
	"$tmp/native" "$1" | sed -n 's/.*ns=//p'
}

measure cpu-bt "$n_bt" run_bt
if command -v "$qemu" >/dev/null; then measure qemu-tcg "$n_fast" run_qemu; fi
if "$modvm" plugins 2>&1 | grep "^engine cpu-vtx: " | grep -qv "runs on this host: no"; then
	measure cpu-vtx "$n_fast" run_vtx
fi
if cc -O2 -o "$tmp/native" "$here/native_xorshift.c" 2>/dev/null; then
	measure native "$n_fast" run_native
fi

printf '\n| engine | rounds | loop time (s) | guest instructions/s | cpu-bt is slower by |\n'
printf '|---|---|---|---|---|\n'
for name in cpu-bt qemu-tcg cpu-vtx native; do
	[ -n "${ips[$name]:-}" ] || continue
	n=$n_fast
	[ $name = cpu-bt ] && n=$n_bt
	ratio=$(awk -v a="${ips[$name]}" -v b="${ips[cpu-bt]:-0}" \
		'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }')
	printf '| %s | %s | %s | %.1f M | %s |\n' "$name" "$n" "${secs[$name]}" \
		"$(awk -v a="${ips[$name]}" 'BEGIN { print a / 1e6 }')" "$ratio"
done
