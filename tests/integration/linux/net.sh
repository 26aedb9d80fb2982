#!/usr/bin/env bash
# linux/net-*: Debian's kernel under cpu-bt with a virtio-net adapter.
#   net.sh user BUILD_DIR SOURCE_DIR
#     behind net-user: the guest takes a DHCP lease, fetches a random file
#     from an HTTP server on the host's loopback through the router
#     (10.0.2.2) and serves it back through a hostfwd forward; the host
#     checks both hashes, the lease and the pcap file of the adapter.
#   net.sh socket BUILD_DIR SOURCE_DIR
#     two VMs cabled by net-socket (a listens on a loopback TCP port, b
#     connects): each pings the other and fetches the other's file over
#     HTTP; hashes on both sides and the pings in a's pcap file.
#   net.sh snapshot BUILD_DIR SOURCE_DIR
#     behind net-user: fetch, snapshot, quit, resume in a new process,
#     fetch again; the derived MAC is the same before and after.
#   net.sh storm BUILD_DIR SOURCE_DIR
#     behind restricted net-user, the guest floods the adapter with raw
#     frames no correct guest sends; modvm survives without growing, the
#     adapter works afterwards, and nothing reaches the host's loopback.
#   net.sh tap BUILD_DIR SOURCE_DIR
#     (root) a network namespace and a tap made by the test; the guest
#     pings the host end, fetches a file from it and posts one to it; the
#     pcap file shows TSO frames both ways. 77 without root.
# (docs/linux-guest.md, "linux/net-user")
set -u
case_=$1
build=$(cd "$2" && pwd)
modvm=$build/modvm
guest=$build/guests/linux
work=$(mktemp -d /tmp/modvm-linux-net.XXXXXX)
pids=()
ns=                 # the tap case's network namespace, removed at exit
in_ns=()            # the command prefix that runs in it
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ -z "$ns" ] || ip netns del "$ns"
	[ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
. "$(dirname "$0")/../lib.sh"

# A free TCP port on the loopback (the kernel picks; a race with another
# program taking it before us is possible but harmless: the test fails).
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# http_server DIR PORTFILE [ADDRESS]: serve DIR on ADDRESS (127.0.0.1), a
# port of the kernel's choosing written to PORTFILE (in $in_ns).
http_server() {
	"${in_ns[@]}" python3 - "$1" "$2" "${3:-127.0.0.1}" <<-'PY' >"$work/http.log" 2>&1 &
	import functools, hashlib, http.server, sys
	class H(http.server.SimpleHTTPRequestHandler):
	    def do_POST(self):  # an upload: answer with its sha256
	        n = int(self.headers.get("Content-Length", 0))
	        d = b""
	        while len(d) < n:
	            c = self.rfile.read(n - len(d))
	            if not c:
	                break
	            d += c
	        r = hashlib.sha256(d).hexdigest().encode()
	        self.send_response(200)
	        self.send_header("Content-Length", str(len(r)))
	        self.end_headers()
	        self.wfile.write(r)
	h = functools.partial(H, directory=sys.argv[1])
	s = http.server.ThreadingHTTPServer((sys.argv[3], 0), h)
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
	off, n, ack, echo = 24, 0, "none", [0, 0]
	big = {}   # frames longer than 1514 bytes (GSO) by IPv4 source
	while off + 16 <= len(d):
	    _, _, incl, orig = struct.unpack("<IIII", d[off:off + 16])
	    f = d[off + 16:off + 16 + incl]
	    off += 16 + incl
	    n += 1
	    if len(f) > 1514 and f[12:14] == b"\x08\x00":
	        src = ".".join(str(x) for x in f[26:30])
	        big[src] = big.get(src, 0) + 1
	    if len(f) > 34 and f[12:14] == b"\x08\x00" and f[23] == 1:
	        t = f[14 + (f[14] & 15) * 4]
	        if t in (0, 8):
	            echo[t == 0] += 1
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
	print("records=%d dhcp_ack_to=%s echo_requests=%d echo_replies=%d big_from=%s" %
	      (n, ack, echo[0], echo[1],
	       ",".join("%s:%d" % kv for kv in sorted(big.items())) or "none"))
	PY
}

# expect_pings PCAP: at least four echo requests and four replies in it
# (the guest's ping until answered, then ping -c 3).
expect_pings() {
	local sum
	sum=$(pcap_summary "$1" 2>&1)
	echo "$(basename "$1"): $sum"
	checks=$((checks + 1))
	grep -Eq "echo_requests=([4-9]|[1-9][0-9]+) echo_replies=([4-9]|[1-9][0-9]+)" <<<"$sum" ||
		fail "$1 lacks the pings both ways: $sum"
}

# vm_config NAME CMDLINE-EXTRA DEVICE-LINE: $work/NAME.cfg, a cpu-bt guest
# with a console on stdio and one more device.
vm_config() {
	cat >"$work/$1.cfg" <<-EOF
	vm: {
	  name = "linux-net-$1";
	  memory = "512M";
	  cpu = { engine = "cpu-bt"; };
	  boot = { kernel = "$guest/vmlinuz"; initrd = "$guest/initrd.gz"; format = "linux";
	           cmdline = "console=ttyS0 nokaslr no_timer_check panic=-1 $2"; };
	  devices = (
	    { plugin = "serial-16550"; id = "com1"; backend = "stdio"; },
	    $3
	  );
	};
	EOF
	check "modvm check accepts $1.cfg" "$modvm" check "$work/$1.cfg"
}

# vm_start NAME: run it with its console in $work/NAME.raw and its input
# from a FIFO on fd 3 (NAME a), 4 (b); the pid in vm_pid[NAME].
declare -A vm_pid vm_fd
next_fd=3
vm_start() {
	mkfifo "$work/$1.in"
	"${in_ns[@]}" timeout -k 5 120 "$modvm" run --no-reboot "$work/$1.cfg" <"$work/$1.in" \
		>"$work/$1.raw" 2>&1 &
	vm_pid[$1]=$!
	vm_fd[$1]=$next_fd
	next_fd=$((next_fd + 1))
	eval "exec ${vm_fd[$1]}>\"\$work/$1.in\""
}

# vm_say NAME TEXT: a line on the guest's console.
vm_say() {
	echo "$2" >&"${vm_fd[$1]}"
}

# vm_end NAME LINES...: it exits 0 and its console has every line.
vm_end() {
	local name=$1 rc l
	shift
	wait "${vm_pid[$name]}"
	rc=$?
	eval "exec ${vm_fd[$name]}>&-"
	tr -d '\r' <"$work/$name.raw" >"$work/$name.log"
	echo "$name: modvm exited $rc; guest lines:"
	grep '^net:\|^udhcpc:\|^MODVM\|Kernel panic\|virtio_net' "$work/$name.log" | sed 's/^/  /'
	checks=$((checks + 1))
	[ "$rc" = 0 ] || { fail "$name: modvm exited $rc (124: watchdog); last lines:"; tail -n 20 "$work/$name.log"; }
	for l in "$@"; do
		checks=$((checks + 1))
		grep -qF -- "$l" "$work/$name.log" || fail "$name: the console has no '$l'"
	done
}

run_user() {
	local port fwd mac=02:00:00:6d:76:01 sha
	mkdir "$work/www"
	head -c 300000 /dev/urandom >"$work/www/blob"
	sha=$(sha256sum <"$work/www/blob" | cut -d ' ' -f 1)
	check "HTTP server on the loopback" http_server "$work/www" "$work/port" || return
	port=$(cat "$work/port")
	fwd=$(free_port)
	vm_config user "modvm.script=net-user modvm.mac=$mac modvm.port=$port modvm.sha=$sha" \
		"{ plugin = \"virtio-net\"; id = \"net0\"; mac = \"$mac\"; pcap = \"$work/net0.pcap\";
		   backend = \"user\"; hostfwd = \"tcp:127.0.0.1:$fwd-:80\"; }" || return
	vm_start user
	if wait_console "$work/user.raw" "net: SERVING" 90 "${vm_pid[user]}"; then
		local got
		got=$(curl -s --max-time 20 "http://127.0.0.1:$fwd/blob" | sha256sum | cut -d ' ' -f 1)
		checks=$((checks + 1))
		[ "$got" = "$sha" ] || fail "through hostfwd 127.0.0.1:$fwd the host fetched sha256 $got, want $sha"
		if [ "$got" = "$sha" ]; then vm_say user fetched; else vm_say user not-fetched; fi
	else
		fail "the guest never served its file"
	fi
	vm_end user "net: eth0 mac $mac" "udhcpc: lease 10.0.2.15" "net: address 10.0.2.15" \
		"net: fetched 300000 bytes sha256 $sha" "net: dns " "net: PASS" "MODVM-SCRIPT-END net-user rc=0"
	local sum
	sum=$(pcap_summary "$work/net0.pcap" 2>&1)
	echo "pcap: $sum"
	checks=$((checks + 1))
	grep -q "dhcp_ack_to=10.0.2.15" <<<"$sum" || fail "the pcap file has no DHCP ACK for 10.0.2.15: $sum"
	if command -v tshark >/dev/null; then
		check "tshark reads the pcap file" tshark -r "$work/net0.pcap" -c 1
	fi
}

# Two VMs on one cable: a listens on a loopback TCP port, b connects.
run_socket() {
	local port a=10.0.3.1 b=10.0.3.2 sa sb
	port=$(free_port)
	sa=$(seq 1 20000 | sed "s/^/$a /" | sha256sum | cut -d ' ' -f 1)
	sb=$(seq 1 20000 | sed "s/^/$b /" | sha256sum | cut -d ' ' -f 1)
	vm_config a "modvm.script=net-pair modvm.ip=$a modvm.peer=$b modvm.peersha=$sb" \
		"{ plugin = \"virtio-net\"; id = \"net0\"; pcap = \"$work/a.pcap\";
		   backend = \"socket\"; listen = \"127.0.0.1:$port\"; }" || return
	vm_config b "modvm.script=net-pair modvm.ip=$b modvm.peer=$a modvm.peersha=$sa" \
		"{ plugin = \"virtio-net\"; id = \"net0\"; backend = \"socket\"; connect = \"127.0.0.1:$port\"; }" || return
	vm_start a
	# a listens from its set-up on; its kernel prints once that is done.
	wait_console "$work/a.raw" "Linux version" 30 "${vm_pid[a]}" || fail "a did not start"
	vm_start b
	wait_console "$work/a.raw" "net: WAITING" 90 "${vm_pid[a]}" || fail "a did not finish"
	wait_console "$work/b.raw" "net: WAITING" 90 "${vm_pid[b]}" || fail "b did not finish"
	vm_say a finish
	vm_say b finish
	vm_end a "net: $a up, carrier 1" "net: ping $b: 3 of 3" "net: fetched from $b sha256 $sb" \
		"net: PASS" "MODVM-SCRIPT-END net-pair rc=0"
	vm_end b "net: $b up, carrier 1" "net: ping $a: 3 of 3" "net: fetched from $a sha256 $sa" \
		"net: PASS" "MODVM-SCRIPT-END net-pair rc=0"
	expect_pings "$work/a.pcap"
}

# The tap case: a network namespace of its own (nothing of the host's
# network is touched) with a tap the test creates, 10.0.4.1/24 on the
# host end and an HTTP server there; modvm runs in the namespace and
# attaches to the tap. Needs root (77 otherwise).
run_tap() {
	local port sha
	if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then
		skip="not root, or no ip(8): cannot make a network namespace and a tap"
		return 0
	fi
	ns=modvm-net-$$
	ip netns add "$ns" || { ns=; skip="ip netns add failed"; return 0; }
	in_ns=(ip netns exec "$ns")
	check "tap in the namespace" "${in_ns[@]}" ip tuntap add dev mtap0 mode tap || return
	"${in_ns[@]}" ip link set lo up
	"${in_ns[@]}" ip addr add 10.0.4.1/24 dev mtap0
	"${in_ns[@]}" ip link set mtap0 up
	mkdir "$work/www"
	head -c 200000 /dev/urandom >"$work/www/blob"
	sha=$(sha256sum <"$work/www/blob" | cut -d ' ' -f 1)
	check "HTTP server on 10.0.4.1" http_server "$work/www" "$work/port" 10.0.4.1 || return
	port=$(cat "$work/port")
	vm_config tap "modvm.script=net-tap modvm.ip=10.0.4.2 modvm.peer=10.0.4.1 modvm.port=$port modvm.sha=$sha" \
		"{ plugin = \"virtio-net\"; id = \"net0\"; backend = \"tap\"; ifname = \"mtap0\"; pcap = \"$work/tap.pcap\"; }" || return
	vm_start tap
	vm_end tap "net: ping 10.0.4.1: 3 of 3" "net: fetched 200000 bytes sha256 $sha" \
		"net: uploaded 228894 bytes, the host got sha256 $(seq 1 40000 | sha256sum | cut -d ' ' -f 1)" \
		"net: PASS" "MODVM-SCRIPT-END net-tap rc=0"
	expect_pings "$work/tap.pcap"
	# the offloads were used: segmentation offload frames (longer than
	# an Ethernet frame) from the host to the guest (GUEST_TSO4) and from
	# the guest to the host (HOST_TSO4), with the hashes above intact
	local sum
	sum=$(pcap_summary "$work/tap.pcap" 2>&1)
	checks=$((checks + 1))
	grep -Eq "big_from=.*10\.0\.4\.1:[1-9]" <<<"$sum" ||
		fail "no frame longer than 1514 bytes reached the guest (receive TSO not in use): $sum"
	checks=$((checks + 1))
	grep -Eq "big_from=.*10\.0\.4\.2:[1-9]" <<<"$sum" ||
		fail "the guest sent no frame longer than 1514 bytes (transmit TSO not in use): $sum"
}

# Snapshot and resume: the guest, behind net-user with a derived MAC,
# fetches a file, is paused, snapshotted and quit; the snapshot is resumed
# in a new modvm process and the guest fetches a second file through the
# new libslirp with its old lease; the MAC is the same on both sides.
run_snapshot() {
	local port sha_a sha_b sock=$work/vm.sock mac_a mac_b pid
	mkdir "$work/www"
	head -c 100000 /dev/urandom >"$work/www/a"
	head -c 100000 /dev/urandom >"$work/www/b"
	sha_a=$(sha256sum <"$work/www/a" | cut -d ' ' -f 1)
	sha_b=$(sha256sum <"$work/www/b" | cut -d ' ' -f 1)
	check "HTTP server on the loopback" http_server "$work/www" "$work/port" || return
	port=$(cat "$work/port")
	vm_config snap "modvm.script=net-snap modvm.port=$port modvm.sha_a=$sha_a modvm.sha_b=$sha_b" \
		"{ plugin = \"virtio-net\"; id = \"net0\"; backend = \"user\"; }" || return
	mkfifo "$work/in1" "$work/in2"
	exec 8<>"$work/in1" 9<>"$work/in2"
	mkdir "$work/snaps"
	timeout -k 5 120 "$modvm" run --no-reboot "$work/snap.cfg" --control "$sock" \
		--snapshot-dir "$work/snaps" <"$work/in1" >"$work/snap1.raw" 2>&1 &
	pid=$!
	wait_console "$work/snap1.raw" "net: READY" 90 "$pid" || { fail "the guest never got ready"; return; }
	expect_code 0 "$modvm" ctl "$sock" pause
	expect_code 0 "$modvm" ctl "$sock" snapshot s1
	expect_code 0 "$modvm" ctl "$sock" quit
	wait "$pid"
	(cd "$work" && exec timeout -k 5 120 "$modvm" resume "$work/snaps/s1" --control "$sock") \
		<"$work/in2" >"$work/snap2.raw" 2>&1 &
	pid=$!
	wait_console "$work/snap2.raw" "" 1 "$pid"
	echo go >&9
	local rc=0
	wait "$pid" || rc=$?
	checks=$((checks + 1))
	[ "$rc" = 0 ] || fail "the resumed modvm exited $rc"
	tr -d '\r' <"$work/snap1.raw" >"$work/snap1.log"
	tr -d '\r' <"$work/snap2.raw" >"$work/snap2.log"
	echo "before the snapshot:"; grep '^net:' "$work/snap1.log" | sed 's/^/  /'
	echo "after the resume:"; grep '^net:\|^MODVM' "$work/snap2.log" | sed 's/^/  /'
	mac_a=$(sed -n 's/^net: before mac //p' "$work/snap1.log")
	mac_b=$(sed -n 's/^net: after mac //p' "$work/snap2.log")
	checks=$((checks + 1))
	[ -n "$mac_a" ] && [ "$mac_a" = "$mac_b" ] || fail "MAC before '$mac_a', after '$mac_b'"
	checks=$((checks + 1))
	case "$mac_a" in 02:*) ;; *) fail "derived MAC $mac_a is not locally administered" ;; esac
	for l in "net: fetched b" "net: PASS" "MODVM-SCRIPT-END net-snap rc=0"; do
		checks=$((checks + 1))
		grep -qF -- "$l" "$work/snap2.log" || fail "after the resume the console has no '$l'"
	done
	checks=$((checks + 1))
	grep -qF "net: fetched a" "$work/snap1.log" || fail "no first fetch before the snapshot"
}

# A misbehaving guest behind restricted user-mode networking: for some
# seconds it floods the adapter with raw frames no correct guest sends
# (runts, lying IPv4 headers, UDP to the router's port P, SYNs and UDP to
# random addresses, ARP for random addresses, unknown ethertypes). modvm
# must survive it without growing, the adapter must work afterwards (a
# lease again, a fetch through the forward), and nothing of it may reach
# the host: a UDP listener on 127.0.0.1:P (where the router's P leads
# when not restricted) gets only the test's own control datagram.
run_storm() {
	local port fwd sha pid rss max=0 got count
	port=$(free_port)
	fwd=$(free_port)
	python3 - "$port" "$work/udp.count" <<-'PY' >"$work/udp.log" 2>&1 &
	import signal, socket, sys
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	s.bind(("127.0.0.1", int(sys.argv[1])))
	n = 0
	def done(*a):
	    open(sys.argv[2], "w").write("%d\n" % n)
	    sys.exit(0)
	signal.signal(signal.SIGTERM, done)
	while True:
	    s.recv(65536)
	    n += 1
	PY
	local listener=$!
	pids+=($listener)
	sha=$(seq 1 20000 | sha256sum | cut -d ' ' -f 1)
	vm_config storm "modvm.script=net-storm modvm.secs=8 modvm.port=$port" \
		"{ plugin = \"virtio-net\"; id = \"net0\"; backend = \"user\"; restrict = true;
		   hostfwd = \"tcp:127.0.0.1:$fwd-:80\"; }" || return
	vm_start storm
	for _ in $(seq 1200); do
		grep -qF "net: SERVING" "$work/storm.raw" 2>/dev/null && break
		grep -qF "net: SKIP" "$work/storm.raw" 2>/dev/null && break
		kill -0 "${vm_pid[storm]}" 2>/dev/null || break
		pid=$(pgrep -P "${vm_pid[storm]}" -x modvm | head -1)
		rss=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$pid/status" 2>/dev/null)
		[ -n "$rss" ] && [ "$rss" -gt "$max" ] && max=$rss
		sleep 0.1
	done
	if grep -qF "net: SKIP" "$work/storm.raw"; then
		skip=$(sed -n 's/.*net: SKIP //p' "$work/storm.raw" | tr -d '\r' | head -1)
		vm_end storm
		return 0
	fi
	if grep -qF "net: SERVING" "$work/storm.raw"; then
		got=$(curl -s --max-time 20 "http://127.0.0.1:$fwd/blob" | sha256sum | cut -d ' ' -f 1)
		checks=$((checks + 1))
		[ "$got" = "$sha" ] || fail "after the storm the host fetched sha256 $got through the forward, want $sha"
		vm_say storm fetched
	else
		fail "the guest never served after the storm"
	fi
	vm_end storm "net: address 10.0.2.15" "net-storm: sent " "net: lease again after the storm" \
		"net: serving sha256 $sha" "net: PASS" "MODVM-SCRIPT-END net-storm rc=0"
	grep '^net-storm:' "$work/storm.log" | sed 's/^/  /'
	echo "modvm's largest resident size during the storm: $((max / 1024)) MiB (guest RAM 512 MiB)"
	checks=$((checks + 1))
	[ "$max" -gt 0 ] && [ "$max" -lt $((800 * 1024)) ] ||
		fail "modvm's resident size reached $((max / 1024)) MiB (want more than 0 and under 800)"
	# the control datagram: the listener was alive and counting
	python3 -c 'import socket,sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"control", ("127.0.0.1", int(sys.argv[1])))' "$port"
	sleep 0.3
	kill "$listener"
	wait "$listener" 2>/dev/null
	count=$(cat "$work/udp.count" 2>/dev/null)
	echo "datagrams on 127.0.0.1:$port: ${count:-none} (1 is the test's own)"
	checks=$((checks + 1))
	[ "$count" = 1 ] || fail "the host's UDP listener got ${count:-no count} datagrams, want only the test's own: the restricted guest reached the host"
}

# A case that stopped half-way (a shell error) must not pass: each ends by
# setting completed.
completed=
skip=
case "$case_" in
user) run_user && completed=1 ;;
socket) run_socket && completed=1 ;;
tap) run_tap && completed=1 ;;
snapshot) run_snapshot && completed=1 ;;
storm) run_storm && completed=1 ;;
*) echo "net.sh: unknown case $case_" >&2; exit 2 ;;
esac
checks=$((checks + 1))
[ -n "$completed" ] || fail "the $case_ case did not run to its end"
summarize || exit 1
if [ -n "$skip" ]; then
	echo "SKIP: $skip"
	exit 77
fi
exit 0
