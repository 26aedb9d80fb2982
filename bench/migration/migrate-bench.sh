#!/usr/bin/env bash
# Live migration of an idle guest over loopback TCP: modvm (cpu-bt) against
# QEMU TCG, same guest (tests/guests/idle.bin: halts with interrupts off),
# same RAM size, alternating runs.
#
#   bench/migration/migrate-bench.sh [-m MEM] [-n RUNS] [-g idle|fill] [-b BUILDDIR] [--no-qemu]
#
# -g fill: the guest first writes 88 MiB of RAM (tests/guests/fill.asm),
# then halts: RAM that must be copied, about what an idle Linux guest uses.
# -g linux: the Linux test guest (build/guests/linux, ctest -R linux/setup)
# idle at its shell after MODVM-LINUX-READY, same kernel and initramfs
# for both VMMs (QEMU boots it with -kernel/-initrd/-append).
# Per run, for each VMM: start the source and a destination waiting on a
# free loopback port, wait for the guest's start line, migrate, and read the
# VMM's own figures: modvm's "migrated to" line (total from the migrate
# request to the destination's acknowledgement; downtime from the pause to
# that acknowledgement; MB sent on the socket), QEMU's query-migrate
# (total-time, downtime, ram transferred) with its default parameters.
# Prints every run, then the medians and the ratios modvm / QEMU.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
mem=512
runs=5
gname=idle
build=$repo/build
qemu=true
while [ $# -gt 0 ]; do
	case $1 in
	-m) mem=${2%M}; shift 2 ;;
	-n) runs=$2; shift 2 ;;
	-g) gname=$2; shift 2 ;;
	-b) build=$(cd "$2" && pwd); shift 2 ;;
	--no-qemu) qemu=false; shift ;;
	*) echo "usage: $0 [-m MiB] [-n RUNS] [-b BUILDDIR] [--no-qemu]" >&2; exit 2 ;;
	esac
done
modvm=$build/modvm
guest=$build/tests/guests/$gname.bin
ready="$gname: start"
[ "$gname" = fill ] && ready="fill: done"
lk=$build/guests/linux/vmlinuz
li=$build/guests/linux/initrd.gz
lcmd="console=ttyS0 nokaslr no_timer_check"
boot="kernel = \"$guest\";"
qboot=(-kernel "$guest")
machine='machine = "none";'
if [ "$gname" = linux ]; then
	guest=$lk
	ready=MODVM-LINUX-READY
	boot="kernel = \"$lk\"; initrd = \"$li\"; format = \"linux\"; cmdline = \"$lcmd\";"
	qboot=(-kernel "$lk" -initrd "$li" -append "$lcmd")
	machine=
fi
[ -x "$modvm" ] && [ -f "$guest" ] || { echo "build first: $modvm, $guest" >&2; exit 2; }
QEMU=${QEMU:-qemu-system-x86_64}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for() { # FILE PATTERN SECONDS
	for ((i = 0; i < $3 * 20; i++)); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "timeout waiting for '$2' in $1" >&2
	return 1
}

cat > "$tmp/vm.cfg" <<CFG
vm: {
  name = "bench"; memory = "${mem}M"; cpus = 1; $machine
  cpu = { engine = "cpu-bt"; model = "baseline-v1"; };
  boot = { $boot };
  devices = (
    { plugin = "serial-16550"; id = "com1"; backend = "stdio"; }$([ "$gname" = linux ] || echo ',
    { plugin = "acpi-pm"; id = "pm"; }, { plugin = "pic-8259"; id = "pic"; },
    { plugin = "pit-8254"; id = "pit"; }')
  );
};
CFG

# one_modvm: prints "total_ms downtime_ms MB"
one_modvm() {
	local port d=$tmp/m
	rm -rf "$d"; mkdir "$d"
	port=$(free_port)
	"$modvm" run "$tmp/vm.cfg" --control "$d/src.sock" > "$d/src.out" 2> "$d/src.err" &
	local src=$!
	"$modvm" run "$tmp/vm.cfg" --control "$d/dst.sock" --incoming "tcp:127.0.0.1:$port" \
		> "$d/dst.out" 2> "$d/dst.err" &
	local dst=$!
	wait_for "$d/src.out" "$ready" 300
	wait_for "$d/dst.err" "waiting for the incoming" 20
	"$modvm" ctl "$d/src.sock" migrate "tcp:127.0.0.1:$port" > /dev/null
	wait "$src"
	"$modvm" ctl "$d/dst.sock" quit > /dev/null 2>&1 || true
	wait "$dst" || true
	sed -n 's/.*migrated to .*: [0-9]* iterations, \([0-9.]*\) MB sent .*downtime \([0-9.]*\) ms, total \([0-9.]*\) ms/\3 \2 \1/p' "$d/src.err"
}

qmp() { # SOCKET python-statements using q(cmd, args)
	python3 - "$1" "$2" <<'PY'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
def rd():
    while True:
        m = json.loads(f.readline())
        if "event" not in m: return m
def q(cmd, args=None):
    f.write(json.dumps({"execute": cmd, **({"arguments": args} if args else {})}) + "\n"); f.flush()
    return rd()
rd(); q("qmp_capabilities")
exec(sys.argv[2])
PY
}

one_qemu() {
	local port d=$tmp/q
	rm -rf "$d"; mkdir "$d"
	port=$(free_port)
	"$QEMU" -accel tcg -M pc -m "$mem" -display none "${qboot[@]}" \
		-serial "file:$d/src.out" -qmp "unix:$d/src.qmp,server=on,wait=off" &
	local src=$!
	"$QEMU" -accel tcg -M pc -m "$mem" -display none "${qboot[@]}" \
		-serial "file:$d/dst.out" -qmp "unix:$d/dst.qmp,server=on,wait=off" \
		-incoming "tcp:127.0.0.1:$port" &
	local dst=$!
	wait_for "$d/src.out" "$ready" 300
	while [ ! -S "$d/dst.qmp" ] || [ ! -S "$d/src.qmp" ]; do sleep 0.05; done
	qmp "$d/src.qmp" '
q("migrate", {"uri": "tcp:127.0.0.1:'"$port"'"})
while True:
    r = q("query-migrate")["return"]
    if r.get("status") in ("completed", "failed"): break
    time.sleep(0.01)
print(r["total-time"], r.get("downtime", -1), r["ram"]["transferred"] / 1e6)
q("quit")'
	wait "$src" || true
	qmp "$d/dst.qmp" 'q("quit")' > /dev/null || true
	wait "$dst" || true
}

echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "guest: $gname, ${mem} MiB, loopback TCP; $($QEMU --version | head -1)"
printf "%-6s %-6s %10s %12s %10s\n" run vmm total_ms downtime_ms MB_sent
: > "$tmp/m.txt"; : > "$tmp/q.txt"
for ((r = 1; r <= runs; r++)); do
	m=$(one_modvm); echo "$m" >> "$tmp/m.txt"
	printf "%-6s %-6s %10s %12s %10s\n" "$r" modvm $m
	if $qemu; then
		q=$(one_qemu 2>/dev/null); echo "$q" >> "$tmp/q.txt"
		printf "%-6s %-6s %10s %12s %10s\n" "$r" qemu $q
	fi
done
python3 - "$tmp/m.txt" "$tmp/q.txt" <<'PY'
import statistics, sys
def med(path):
    rows = [list(map(float, l.split())) for l in open(path) if l.strip()]
    return [statistics.median(c) for c in zip(*rows)] if rows else None
m, q = med(sys.argv[1]), med(sys.argv[2])
print("median modvm: total %.1f ms, downtime %.1f ms, %.2f MB sent" % tuple(m))
if q:
    print("median qemu:  total %.1f ms, downtime %.1f ms, %.2f MB sent" % tuple(q))
    print("ratio modvm/qemu: total %.3f, downtime %.3f, bytes %.4f" % tuple(a / b if b else float("nan") for a, b in zip(m, q)))
PY
