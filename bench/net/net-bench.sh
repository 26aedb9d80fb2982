#!/usr/bin/env bash
# TCP download throughput and request rate of a Linux guest under modvm
# and under QEMU TCG, same kernel and initramfs, same backend kind:
#   -t user (default): modvm's virtio-net + net-user against QEMU's
#      virtio-net-pci + -netdev user. A Python HTTP server on the host's
#      loopback serves the files; the guest fetches them through 10.0.2.2.
#   -t tap (root): a network namespace made here with a tap (10.0.5.1 on
#      the host end, the server there); modvm's net-tap against QEMU's
#      -netdev tap,vnet_hdr=on, both with their offloads.
# The guest (script net-bench) times itself. Runs alternate modvm, QEMU,
# modvm, ... and the medians are compared.
#
#   bench/net/net-bench.sh [-t user|tap] [-r ROUNDS] [-s SIZE_MIB] [-n REQUESTS] [-b BUILDDIR] [-g GUESTDIR]
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
kind=user

while [ $# -gt 0 ]; do
	case "$1" in
	-t) kind=$2; shift 2 ;;
	-r) rounds=$2; shift 2 ;;
	-s) size=$2; shift 2 ;;
	-n) reqs=$2; shift 2 ;;
	-b) build=$2; shift 2 ;;
	-g) guest=$2; shift 2 ;;
	*) sed -n '13p' "$0" | sed 's/^# //'; exit 2 ;;
	esac
done
guest=${guest:-$build/guests/linux}
tmp=$(mktemp -d)
srv=
ns=
in_ns=()
addr=127.0.0.1
trap '[ -z "$srv" ] || kill "$srv"; [ -z "$ns" ] || ip netns del "$ns"; rm -rf "$tmp"' EXIT
case $kind in
user) ;;
tap)
	[ "$(id -u)" = 0 ] || { echo "net-bench: -t tap needs root (a network namespace and a tap)"; exit 2; }
	ns=modvm-net-bench-$$
	ip netns add "$ns"
	in_ns=(ip netns exec "$ns")
	"${in_ns[@]}" ip link set lo up
	"${in_ns[@]}" ip tuntap add dev mtap0 mode tap
	"${in_ns[@]}" ip addr add 10.0.5.1/24 dev mtap0
	"${in_ns[@]}" ip link set mtap0 up
	addr=10.0.5.1
	;;
*) echo "net-bench: -t user or -t tap"; exit 2 ;;
esac

mkdir "$tmp/www"
head -c $((size << 20)) /dev/urandom >"$tmp/www/blob"
echo small >"$tmp/www/small"
"${in_ns[@]}" python3 - "$tmp/www" "$tmp/port" "$addr" <<'PY' >/dev/null 2>&1 &
import functools, http.server, os, sys
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
h.func.log_message = lambda *a: None
s = http.server.ThreadingHTTPServer((sys.argv[3], 0), h)
open(sys.argv[2] + ".tmp", "w").write(str(s.server_address[1]))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
s.serve_forever()
PY
srv=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
port=$(cat "$tmp/port")
cmdline="console=ttyS0 nokaslr no_timer_check panic=-1 modvm.script=net-bench modvm.port=$port modvm.reqs=$reqs"
if [ "$kind" = tap ]; then
	cmdline="$cmdline modvm.ip=10.0.5.2 modvm.peer=10.0.5.1"
	modvm_net='backend = "tap"; ifname = "mtap0";'
	qemu_net=(-netdev tap,id=n0,ifname=mtap0,script=no,downscript=no,vnet_hdr=on)
else
	modvm_net='backend = "user";'
	qemu_net=(-netdev user,id=n0)
fi
cat >"$tmp/vm.cfg" <<EOF
vm: {
  name = "net-bench";
  memory = "512M";
  cpu = { engine = "cpu-bt"; };
  boot = { kernel = "$guest/vmlinuz"; initrd = "$guest/initrd.gz"; format = "linux";
           cmdline = "$cmdline"; };
  devices = (
    { plugin = "serial-16550"; id = "com1"; backend = "stdio"; },
    { plugin = "virtio-net"; id = "net0"; $modvm_net }
  );
};
EOF

# run VMM: one boot; appends "VMM MIB/S SECONDS-PER-REQUEST" to results.
run() {
	local out
	if [ "$1" = qemu ]; then
		out=$("${in_ns[@]}" timeout 600 qemu-system-x86_64 -accel tcg -m 512 -display none -monitor none \
			-serial stdio -no-reboot -kernel "$guest/vmlinuz" -initrd "$guest/initrd.gz" \
			-append "$cmdline" "${qemu_net[@]}" -device virtio-net-pci,netdev=n0 </dev/null 2>&1 | tr -d '\r')
	else
		out=$("${in_ns[@]}" timeout 600 "$build/modvm" run --no-reboot "$tmp/vm.cfg" </dev/null 2>&1 | tr -d '\r')
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
echo "medians of $rounds alternating runs, backend $kind, ${size} MiB download, $reqs requests:"
echo "  download MiB/s: modvm $mt, QEMU TCG $qt, modvm/QEMU $(awk -v a="$mt" -v b="$qt" 'BEGIN { printf "%.2f", a / b }')"
echo "  s per request:  modvm $mr, QEMU TCG $qr, modvm/QEMU $(awk -v a="$mr" -v b="$qr" 'BEGIN { printf "%.2f", a / b }')"
