#!/usr/bin/env bash
# TCP download throughput and request rate of a Linux guest through
# user-mode networking (libslirp) under modvm and under QEMU TCG, same
# kernel and initramfs, same backend kind: modvm's virtio-net + net-user
# against QEMU's virtio-net-pci + -netdev user. A Python HTTP server on the
# host's loopback serves the files; the guest (script net-bench) fetches
# them through 10.0.2.2 and times itself. Runs alternate modvm, QEMU,
# modvm, ... and the medians are compared.
#
#   bench/net/net-bench.sh [-r ROUNDS] [-s SIZE_MIB] [-n REQUESTS] [-b BUILDDIR] [-g GUESTDIR]
#
# Prints one line per run, then the medians and the ratios modvm/QEMU
# (throughput: above 1 is faster; request time: below 1 is faster).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
rounds=3
size=16
reqs=50
build=$repo/build
guest=

while [ $# -gt 0 ]; do
	case "$1" in
	-r) rounds=$2; shift 2 ;;
	-s) size=$2; shift 2 ;;
	-n) reqs=$2; shift 2 ;;
	-b) build=$2; shift 2 ;;
	-g) guest=$2; shift 2 ;;
	*) sed -n '10p' "$0" | sed 's/^# //'; exit 2 ;;
	esac
done
guest=${guest:-$build/guests/linux}
tmp=$(mktemp -d)
srv=
trap '[ -z "$srv" ] || kill "$srv"; rm -rf "$tmp"' EXIT

mkdir "$tmp/www"
head -c $((size << 20)) /dev/urandom >"$tmp/www/blob"
echo small >"$tmp/www/small"
python3 - "$tmp/www" "$tmp/port" <<'PY' >/dev/null 2>&1 &
import functools, http.server, os, sys
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
h.func.log_message = lambda *a: None
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
open(sys.argv[2] + ".tmp", "w").write(str(s.server_address[1]))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
s.serve_forever()
PY
srv=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
port=$(cat "$tmp/port")
cmdline="console=ttyS0 nokaslr no_timer_check panic=-1 modvm.script=net-bench modvm.port=$port modvm.reqs=$reqs"
cat >"$tmp/vm.cfg" <<EOF
vm: {
  name = "net-bench";
  memory = "512M";
  cpu = { engine = "cpu-bt"; };
  boot = { kernel = "$guest/vmlinuz"; initrd = "$guest/initrd.gz"; format = "linux";
           cmdline = "$cmdline"; };
  devices = (
    { plugin = "serial-16550"; id = "com1"; backend = "stdio"; },
    { plugin = "virtio-net"; id = "net0"; backend = "user"; }
  );
};
EOF

# run VMM: one boot; appends "VMM MIB/S SECONDS-PER-REQUEST" to results.
run() {
	local out
	if [ "$1" = qemu ]; then
		out=$(timeout 600 qemu-system-x86_64 -accel tcg -m 512 -display none -monitor none \
			-serial stdio -no-reboot -kernel "$guest/vmlinuz" -initrd "$guest/initrd.gz" \
			-append "$cmdline" -netdev user,id=n0 -device virtio-net-pci,netdev=n0 </dev/null 2>&1 | tr -d '\r')
	else
		out=$(timeout 600 "$build/modvm" run --no-reboot "$tmp/vm.cfg" </dev/null 2>&1 | tr -d '\r')
	fi
	grep -q '^net-bench: PASS' <<<"$out" || { echo "$1: no PASS:"; tail -5 <<<"$out"; exit 1; }
	awk -v vmm="$1" '
		/^net-bench: down/ { mibs = $3 / 1048576 / ($4 > 0 ? $4 : 0.01) }
		/^net-bench: reqs/ { spr = $4 / $3 }
		END { printf "%s %.2f %.4f\n", vmm, mibs, spr }' <<<"$out" | tee -a "$tmp/results"
}

for r in $(seq "$rounds"); do
	run modvm
	run qemu
done
median() { # VMM COLUMN
	awk -v v="$1" -v c="$2" '$1 == v { print $c }' "$tmp/results" | sort -g |
		awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
mt=$(median modvm 2); qt=$(median qemu 2); mr=$(median modvm 3); qr=$(median qemu 3)
echo "medians of $rounds alternating runs, ${size} MiB download, $reqs requests:"
echo "  download MiB/s: modvm $mt, QEMU TCG $qt, modvm/QEMU $(awk -v a="$mt" -v b="$qt" 'BEGIN { printf "%.2f", a / b }')"
echo "  s per request:  modvm $mr, QEMU TCG $qr, modvm/QEMU $(awk -v a="$mr" -v b="$qr" 'BEGIN { printf "%.2f", a / b }')"
