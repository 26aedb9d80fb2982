#!/usr/bin/env bash
# linux/net-*: Debian's kernel under cpu-bt with a virtio-net adapter.
#   net.sh user BUILD_DIR SOURCE_DIR
#     behind net-user: the guest takes a DHCP lease, fetches a random file
#     from an HTTP server on the host's loopback through the router
#     (10.0.2.2) and serves it back through a hostfwd forward; the host
#     checks both hashes, the lease and the pcap file of the adapter.
# (docs/linux-guest.md, "linux/net-user")
set -u
case_=$1
build=$2
modvm=$build/modvm
guest=$build/guests/linux
work=$(mktemp -d /tmp/modvm-linux-net.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
. "$(dirname "$0")/../lib.sh"

# A free TCP port on the loopback (the kernel picks; a race with another
# program taking it before us is possible but harmless: the test fails).
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http_server DIR PORTFILE: serve DIR on 127.0.0.1, a port of the kernel's
# choosing written to PORTFILE.
http_server() {
	python3 - "$1" "$2" <<-'PY' >"$work/http.log" 2>&1 &
	import functools, http.server, sys
	h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
	s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
	with open(sys.argv[2] + ".tmp", "w") as f:
	    f.write(str(s.server_address[1]))
	import os; os.rename(sys.argv[2] + ".tmp", sys.argv[2])
	s.serve_forever()
	PY
	pids+=($!)
	for _ in $(seq 100); do [ -s "$2" ] && return 0; sleep 0.05; done
	return 1
}

# wait_console FILE TEXT SECONDS PID: FILE gets a line with TEXT while
# process PID runs.
wait_console() {
	for _ in $(seq $(($3 * 10))); do
		grep -qF -- "$2" "$1" 2>/dev/null && return 0
		kill -0 "$4" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# pcap_summary FILE: "records=N dhcp_ack_to=ADDR" from the classic pcap
# format (an independent reader: the file is the test's oracle).
pcap_summary() {
	python3 - "$1" <<-'PY'
	import struct, sys
	d = open(sys.argv[1], "rb").read()
	magic, vmaj, vmin, _, _, snap, link = struct.unpack("<IHHiIII", d[:24])
	assert magic == 0xa1b2c3d4 and (vmaj, vmin) == (2, 4) and link == 1, "bad pcap header"
	off, n, ack = 24, 0, "none"
	while off + 16 <= len(d):
	    _, _, incl, orig = struct.unpack("<IIII", d[off:off + 16])
	    f = d[off + 16:off + 16 + incl]
	    off += 16 + incl
	    n += 1
	    # IPv4/UDP from port 67, BOOTP reply with option 53 = 5 (ACK)
	    if len(f) > 282 and f[12:14] == b"\x08\x00" and f[23] == 17:
	        ihl = (f[14] & 15) * 4
	        u = 14 + ihl
	        if struct.unpack(">H", f[u:u + 2])[0] == 67:
	            b = f[u + 8:]
	            opts = b[240:]
	            i = 0
	            while i + 1 < len(opts) and opts[i] != 255:
	                if opts[i] == 53 and opts[i + 2] == 5:
	                    ack = ".".join(str(x) for x in b[16:20])
	                i += 2 + opts[i + 1] if opts[i] else 1
	assert off == len(d), "truncated record"
	print("records=%d dhcp_ack_to=%s" % (n, ack))
	PY
}

run_user() {
	local port fwd mac=02:00:00:6d:76:01 sha rc
	mkdir "$work/www"
	head -c 300000 /dev/urandom >"$work/www/blob"
	sha=$(sha256sum <"$work/www/blob" | cut -d ' ' -f 1)
	check "HTTP server on the loopback" http_server "$work/www" "$work/port" || return
	port=$(cat "$work/port")
	fwd=$(free_port)
	cat >"$work/vm.cfg" <<-EOF
	vm: {
	  name = "linux-net-user";
	  memory = "512M";
	  cpu = { engine = "cpu-bt"; };
	  boot = { kernel = "$guest/vmlinuz"; initrd = "$guest/initrd.gz"; format = "linux";
	           cmdline = "console=ttyS0 nokaslr no_timer_check panic=-1 modvm.script=net-user modvm.mac=$mac modvm.port=$port modvm.sha=$sha"; };
	  devices = (
	    { plugin = "serial-16550"; id = "com1"; backend = "stdio"; },
	    { plugin = "virtio-net"; id = "net0"; mac = "$mac"; pcap = "$work/net0.pcap";
	      backend = "user"; hostfwd = "tcp:127.0.0.1:$fwd-:80"; }
	  );
	};
	EOF
	check "modvm check accepts the config" "$modvm" check "$work/vm.cfg" || return
	mkfifo "$work/in"
	timeout -k 5 120 "$modvm" run --no-reboot "$work/vm.cfg" <"$work/in" >"$work/console.raw" 2>&1 &
	local vm=$!
	exec 3>"$work/in"
	if wait_console "$work/console.raw" "net: SERVING" 90 "$vm"; then
		local got
		got=$(curl -s --max-time 20 "http://127.0.0.1:$fwd/blob" | sha256sum | cut -d ' ' -f 1)
		checks=$((checks + 1))
		[ "$got" = "$sha" ] || fail "through hostfwd 127.0.0.1:$fwd the host fetched sha256 $got, want $sha"
		[ "$got" = "$sha" ] && echo fetched >&3 || echo "not-fetched" >&3
	else
		fail "the guest never served its file"
	fi
	wait "$vm"
	rc=$?
	exec 3>&-
	tr -d '\r' <"$work/console.raw" >"$work/console.log"
	echo "modvm exited $rc; guest lines:"
	grep '^net:\|^udhcpc:\|^MODVM\|Kernel panic\|virtio_net' "$work/console.log" | sed 's/^/  /'
	checks=$((checks + 1))
	[ "$rc" = 0 ] || { fail "modvm exited $rc (124: watchdog); last lines:"; tail -n 20 "$work/console.log"; }
	for l in "net: eth0 mac $mac" "udhcpc: lease 10.0.2.15" "net: address 10.0.2.15" \
		"net: fetched 300000 bytes sha256 $sha" "net: PASS" "MODVM-SCRIPT-END net-user rc=0"; do
		checks=$((checks + 1))
		grep -qF -- "$l" "$work/console.log" || fail "the console has no '$l'"
	done
	local sum
	sum=$(pcap_summary "$work/net0.pcap" 2>&1)
	echo "pcap: $sum"
	checks=$((checks + 1))
	grep -q "dhcp_ack_to=10.0.2.15" <<<"$sum" || fail "the pcap file has no DHCP ACK for 10.0.2.15: $sum"
	if command -v tshark >/dev/null; then
		check "tshark reads the pcap file" tshark -r "$work/net0.pcap" -c 1
	fi
}

case "$case_" in
user) run_user ;;
*) echo "net.sh: unknown case $case_" >&2; exit 2 ;;
esac
summarize || exit 1
exit 0
