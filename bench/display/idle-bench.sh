#!/usr/bin/env bash
# CPU used by an idle VM that shows a static screen to a VNC viewer:
# modvm (cpu-bt, vga-std, display-vnc) against QEMU TCG (-vga std,
# -display vnc), the same guest (tests/guests/display.bin, which draws and
# then halts), the same viewer (tests/integration/display/rfbclient.py
# watch: raw encoding, always one incremental update request outstanding).
# For each of text mode and a 640x480x32 framebuffer it prints the CPU
# seconds each process used over the measuring window, as a share of one
# core, and the ratio modvm/QEMU. Only the window counts: boot and the
# first full update are over before it starts. The row "base" is the same
# guest in text mode with no display adapter and no viewer (modvm: no
# vga-std; QEMU: -vga none -display none): what the rest of each machine
# costs when idle.
#
# usage: bench/display/idle-bench.sh [SECONDS]   (default 10)
#   BUILD (default ./build), QEMU (default qemu-system-x86_64)
set -eu
secs=${1:-10}
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$src/build}
modvm=$build/modvm
guest=$build/tests/guests/display.bin
qemu=${QEMU:-qemu-system-x86_64}
client="python3 $src/tests/integration/display/rfbclient.py"
work=$(mktemp -d /tmp/modvm-display-bench.XXXXXX)
hz=$(getconf CLK_TCK)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT

[ -x "$modvm" ] && [ -f "$guest" ] || { echo "build first: cmake --build build" >&2; exit 2; }
[ -f "$build/plugins/display-vnc.so" ] || { echo "display-vnc is not built (libvncserver-dev)" >&2; exit 2; }
command -v "$qemu" >/dev/null || { echo "no $qemu" >&2; exit 2; }

free_port() { # a free port from 5910 up (QEMU takes a display number)
	python3 - <<'PY'
import socket
for p in range(5910, 6000):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        print(p)
        break
    except OSError:
        pass
    finally:
        s.close()
PY
}

ticks() { # utime + stime of a process, in clock ticks
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

wait_ready() { # wait_ready SERIAL-FILE
	for _ in $(seq 600); do
		grep -q "display: ready" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "the guest did not get ready ($1)" >&2
	exit 1
}

# measure PORT: CPU share of $pid over $secs with a viewer on PORT (none
# if PORT is 0).
measure() {
	local c= t0 t1
	if [ "$1" != 0 ]; then
		$client 127.0.0.1 "$1" watch $((secs + 3)) >"$work/client.out" &
		c=$!
	fi
	sleep 2                           # connected, first update sent
	t0=$(ticks "$pid")
	sleep "$secs"
	t1=$(ticks "$pid")
	[ -z "$c" ] || wait "$c"
	awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$secs" 'BEGIN { printf "%.2f", 100 * d / hz / s }'
}

run_modvm() { # run_modvm MODE PORT (0: no vga-std)
	local vga="{ plugin = \"vga-std\"; id = \"vga\"; display = \"vnc\"; vnc-listen = \"127.0.0.1:$2\"; }"
	[ "$2" != 0 ] || vga="{ plugin = \"isa-debug-exit\"; id = \"exit\"; }"
	cat >"$work/vm.cfg" <<CFG
vm: {
  name = "bench";
  memory = "32M";
  cpu = { engine = "cpu-bt"; };
  boot = { kernel = "$guest"; cmdline = "mode=$1"; };
  devices = ( { plugin = "serial-16550"; id = "com1"; backend = "file";
                path = "$work/modvm.serial"; append = false; },
              $vga );
};
CFG
	rm -f "$work/modvm.serial"
	"$modvm" run "$work/vm.cfg" >"$work/modvm.out" 2>&1 &
	pid=$!
	wait_ready "$work/modvm.serial"
	measure "$2"
	kill "$pid"; wait "$pid" 2>/dev/null || true
	pid=
}

run_qemu() { # run_qemu MODE PORT (0: no display)
	local disp=(-vga std -display "vnc=127.0.0.1:$(($2 - 5900))")
	[ "$2" != 0 ] || disp=(-vga none -display none)
	rm -f "$work/qemu.serial"
	"$qemu" -M pc -m 32 -accel tcg -kernel "$guest" -append "mode=$1" \
		-nodefaults "${disp[@]}" -serial "file:$work/qemu.serial" -monitor none \
		>"$work/qemu.out" 2>&1 &
	pid=$!
	wait_ready "$work/qemu.serial"
	measure "$2"
	kill "$pid"; wait "$pid" 2>/dev/null || true
	pid=
}

echo "host: $(uname -srm), $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "window: ${secs} s; CPU as % of one core (utime+stime from /proc/PID/stat)"
printf '%-6s %10s %10s %10s\n' mode modvm qemu ratio
for mode in base text fb; do
	if [ "$mode" = base ]; then
		m=$(run_modvm text 0)
		q=$(run_qemu text 0)
	else
		port=$(free_port)
		m=$(run_modvm "$mode" "$port")
		port=$(free_port)
		q=$(run_qemu "$mode" "$port")
	fi
	r=$(awk -v a="$m" -v b="$q" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a (qemu 0)" }')
	printf '%-6s %9s%% %9s%% %10s\n' "$mode" "$m" "$q" "$r"
done
