#!/usr/bin/env bash
# Command-line tests for modvm: one case per invocation (ctest runs each).
# usage: cli.sh CASE BUILD_DIR SOURCE_DIR
set -u
case_name=$1
build=$2
src=$3
modvm=$build/modvm
tp=$build/tests/plugins
work=$(mktemp -d /tmp/modvm-cli.XXXXXX)
trap 'chattr -i "$work" 2>/dev/null; chmod 0755 "$work"; rm -rf "$work"' EXIT

skip() {
	echo "SKIP: $*"
	exit 77
}
. "$(dirname "$0")/../lib.sh"

# A flat image that the test engine never executes but boot_load accepts.
printf '\xf4' >"$work/hlt.bin"

write_cfg() { # write_cfg FILE ENGINE_EXTRA DEVICES
	cat >"$1" <<CFG
vm: {
  name = "cli";
  machine = "none";
  memory = "16M";
  cpu = { engine = "test-engine"; $2 };
  boot = { kernel = "$work/hlt.bin"; format = "flat"; load_address = 0x7c00; };
  devices = ( $3 );
};
CFG
}

case $case_name in
version)
	expect_code 0 "$modvm" --version
	expect_out "modvm "
	expect_out "(plugin ABI 2."
	;;
help)
	expect_code 0 "$modvm" help
	expect_out "usage: modvm COMMAND"
	expect_code 0 "$modvm" run --help
	expect_out "usage: modvm run CONFIG"
	expect_code 0 "$modvm" help inspect
	expect_out "usage: modvm inspect NAME"
	expect_code 2 "$modvm" frobnicate
	expect_out 'unknown command "frobnicate"'
	expect_code 2 "$modvm"
	expect_code 2 "$modvm" inspect
	expect_code 2 "$modvm" run
	;;
plugins)
	expect_code 0 "$modvm" plugins
	expect_out "NAME"
	# every plugin built into the build tree is listed
	for so in "$build"/plugins/*.so; do
		[ -e "$so" ] || continue
		expect_out "$so"
	done
	MODVM_PLUGIN_PATH="$tp/good:$tp/bad-nodesc:$tp/bad-abimajor" expect_code 0 "$modvm" plugins
	expect_out "test-device"
	expect_out "chardev-testsink"
	expect_out "engine test-engine: runs on this host: yes - test engine"
	expect_out "refused $tp/bad-nodesc/nodesc.so: no modvm_plugin_descriptor symbol"
	expect_out "refused $tp/bad-abimajor/abimajor.so: built for plugin ABI 99.0"
	expect_out "search path:"
	;;
inspect)
	export MODVM_PLUGIN_PATH=$tp/good
	expect_code 0 "$modvm" inspect test-device
	expect_out "Name:        test-device"
	expect_out "Kind:        device"
	expect_out "port             integer in 0..65535"
	expect_out "default: 0x510"
	expect_out "I/O port of the scratch register"
	expect_out "buffer           size in 512..1M (suffixes K, M, G, T)"
	expect_out "mode             one of: fast, slow, off"
	expect_out "backend          chardev backend (a chardev-* plugin)"
	expect_out "section regs, version 2 (loads 1..2)"
	expect_out "pairs                    struct[2]"
	expect_code 0 "$modvm" inspect test-engine
	expect_out "Runs here:   yes"
	expect_code 2 "$modvm" inspect no-such-thing
	expect_out 'no plugin named "no-such-thing"'
	;;
check)
	export MODVM_PLUGIN_PATH=$tp/good
	write_cfg "$work/ok.cfg" "" '{ plugin = "test-device"; id = "t0"; }'
	expect_code 0 "$modvm" check "$work/ok.cfg"
	expect_out "ok (cli, 1 devices, engine test-engine)"
	write_cfg "$work/bad.cfg" "" '{ plugin = "test-device"; id = "t0"; port = 99999; }'
	expect_code 2 "$modvm" check "$work/bad.cfg"
	expect_out "$work/bad.cfg:7: device \"t0\" (test-device): property \"port\": value 99999 is out of range: expected integer in 0..65535"
	# ids name state files and FUSE directories: only [A-Za-z0-9_.-], no leading '.'
	long=$(printf 'x%.0s' $(seq 65))
	for id in "a/b" "." ".." "" ".hidden" 'x\x01y' 'tab\tid' "sp ace" "$long" '../../etc'; do
		write_cfg "$work/id.cfg" "" "{ plugin = \"test-device\"; id = \"$id\"; }"
		expect_code 2 "$modvm" check "$work/id.cfg"
		expect_out "$work/id.cfg:7: device id"
		expect_out "is not allowed: an id names the device's state file and FUSE directory, so it is 1 to 64 of A-Z a-z 0-9 _ . - and does not start with '.'"
	done
	write_cfg "$work/id.cfg" "" '{ plugin = "test-device"; id = "x\x01y"; }'
	expect_code 2 "$modvm" check "$work/id.cfg"
	expect_out 'device id "x\x01y" is not allowed'
	for id in "Disk_0.a-b" "$(printf 'y%.0s' $(seq 64))"; do
		write_cfg "$work/id.cfg" "" "{ plugin = \"test-device\"; id = \"$id\"; }"
		expect_code 0 "$modvm" check "$work/id.cfg"
	done
	;;
run)
	export MODVM_PLUGIN_PATH=$tp/good:$tp/bad-createfail
	write_cfg "$work/off.cfg" 'action = "poweroff";' '{ plugin = "test-device"; id = "t0"; }'
	expect_code 0 "$modvm" run "$work/off.cfg"
	write_cfg "$work/err.cfg" 'action = "error";' ''
	expect_code 1 "$modvm" run "$work/err.cfg"
	expect_out "cpu 0: scripted engine error at rip 0x7c00"
	write_cfg "$work/tf.cfg" 'action = "shutdown";' ''
	expect_code 0 "$modvm" run "$work/tf.cfg"
	expect_out "triple fault: resetting the machine"
	write_cfg "$work/cf.cfg" '' '{ plugin = "createfail"; id = "cf"; }'
	expect_code 2 "$modvm" run "$work/cf.cfg"
	expect_out "$work/cf.cfg:7: device \"cf\" (createfail, $tp/bad-createfail/createfail.so) failed to start: cannot open /dev/imaginary: No such device"
	cat >"$work/noboot.cfg" <<CFG
vm: { memory = "16M"; machine = "none"; cpu = { engine = "test-engine"; }; };
CFG
	expect_code 2 "$modvm" run "$work/noboot.cfg"
	expect_out "has no boot section"
	# errors of the boot group have file:line like every config error
	cat >"$work/boot.cfg" <<CFG
vm: { memory = "16M"; machine = "none"; cpu = { engine = "test-engine"; };
  boot = {
    format = "flat";
    kernel = "$work/no-such-kernel";
  };
};
CFG
	expect_code 2 "$modvm" run "$work/boot.cfg"
	expect_out "$work/boot.cfg:4: boot: cannot open kernel '$work/no-such-kernel'"
	if [ -f "$build/tests/guests/hello.bin" ]; then
		cat >"$work/initrd.cfg" <<CFG
vm: { memory = "16M"; machine = "none"; cpu = { engine = "test-engine"; };
  boot = {
    kernel = "$build/tests/guests/hello.bin";
    format = "multiboot";
    initrd = "$work/no-such-initrd";
  };
};
CFG
		expect_code 2 "$modvm" run "$work/initrd.cfg"
		expect_out "$work/initrd.cfg:5: boot: cannot open initrd '$work/no-such-initrd'"
	fi
	# A signal stops a running VM with exit code 130 and a message.
	write_cfg "$work/wait.cfg" 'action = "wait";' ''
	"$modvm" run "$work/wait.cfg" >"$work/wait.out" 2>&1 &
	pid=$!
	sleep 0.5
	kill -TERM $pid
	wait $pid
	code=$?
	checks=$((checks + 1))
	[ $code = 130 ] || fail "SIGTERM: exit $code, expected 130"
	out=$(cat "$work/wait.out")
	expect_out "stopping on signal"
	;;
control)
	export MODVM_PLUGIN_PATH=$tp/good
	write_cfg "$work/ctl.cfg" 'action = "wait";' '{ plugin = "test-device"; id = "t0"; }'
	sock=$work/vm.sock
	"$modvm" run "$work/ctl.cfg" --control "$sock" >"$work/ctl.out" 2>&1 &
	pid=$!
	wait_running "$sock"
	expect_code 0 "$modvm" ctl "$sock" status
	expect_out '"status": "running"'
	expect_out '"engine": "test-engine"'
	expect_code 0 "$modvm" ctl "$sock" pause
	expect_code 0 "$modvm" ctl "$sock" status
	expect_out '"status": "paused"'
	t1=$(grep -o '"virtual-ns": [0-9]*' <<<"$out")
	sleep 0.3
	expect_code 0 "$modvm" ctl "$sock" status
	expect_out "$t1" # virtual time stands still while paused
	expect_code 0 "$modvm" ctl "$sock" query-cpus
	expect_out '"rip": "0x7c00"'
	expect_out '"mode": "real"'
	expect_out 'rax = 0x0'
	expect_code 0 "$modvm" ctl "$sock" query-devices
	expect_out '"id": "t0"'
	expect_out '"plugin": "test-device"'
	expect_out '"name": "regs"'
	expect_out "reg8 = 0xa" # the engine wrote "hello\n" to the device
	expect_code 0 "$modvm" ctl "$sock" resume
	expect_code 0 "$modvm" ctl "$sock" status
	expect_out '"status": "running"'
	expect_code 2 "$modvm" ctl "$sock" dance
	expect_code 0 "$modvm" ctl "$sock" quit
	wait $pid
	code=$?
	checks=$((checks + 1))
	[ $code = 130 ] || fail "ctl quit: exit $code, expected 130"
	checks=$((checks + 1))
	[ ! -e "$sock" ] || fail "control socket $sock left behind"
	expect_code 2 "$modvm" ctl "$sock" status
	expect_out "cannot connect to $sock"
	# a stale socket file from a crashed run is replaced
	python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$sock"
	write_cfg "$work/off.cfg" '' ''
	expect_code 0 "$modvm" run "$work/off.cfg" --control "$sock"
	;;
control-path)
	# --control never replaces anything but a stale socket of this user's
	export MODVM_PLUGIN_PATH=$tp/good
	write_cfg "$work/off.cfg" '' ''
	printf 'precious' >"$work/disk.img"
	expect_code 2 "$modvm" run "$work/off.cfg" --control "$work/disk.img"
	expect_out "control socket $work/disk.img: the path exists and is a regular file, not a socket: refusing to replace it"
	check "the file named as --control is untouched" test "$(cat "$work/disk.img")" = precious
	mkdir "$work/adir"
	expect_code 2 "$modvm" run "$work/off.cfg" --control "$work/adir"
	expect_out "is a directory, not a socket"
	check "the directory named as --control is still there" test -d "$work/adir"
	ln -s "$work/disk.img" "$work/link"
	expect_code 2 "$modvm" run "$work/off.cfg" --control "$work/link"
	expect_out "is a symbolic link, not a socket"
	check "the symlink named as --control is still there" test -L "$work/link"
	# a stale socket of another user is not ours to remove
	if [ "$(id -u)" = 0 ]; then
		python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$work/other.sock"
		chown 65534 "$work/other.sock"
		expect_code 2 "$modvm" run "$work/off.cfg" --control "$work/other.sock"
		expect_out "the socket there belongs to uid 65534"
		check "another user's socket is left alone" test -S "$work/other.sock"
	fi
	# the socket is 0600 whatever the umask
	write_cfg "$work/wait.cfg" 'action = "wait";' ''
	(umask 000; exec "$modvm" run "$work/wait.cfg" --control "$work/vm.sock" >"$work/run.out" 2>&1) &
	pid=$!
	wait_running "$work/vm.sock"
	check "the control socket is mode 600 under umask 000 (is $(stat -c %a "$work/vm.sock"))" \
		test "$(stat -c %a "$work/vm.sock")" = 600
	expect_code 0 "$modvm" ctl "$work/vm.sock" quit
	wait $pid
	;;
fifo)
	# a FIFO where a file is read is refused, never waited on
	export MODVM_PLUGIN_PATH=$tp/good
	t="timeout 5"
	mkfifo "$work/fifo"
	expect_code 2 $t "$modvm" check "$work/fifo"
	expect_out "$work/fifo: cannot read the config file: not a regular file (a FIFO)"
	cat >"$work/k.cfg" <<CFG
vm: { name = "k"; machine = "none"; memory = "16M"; cpu = { engine = "test-engine"; };
  boot = { kernel = "$work/fifo"; format = "flat"; }; };
CFG
	expect_code 2 $t "$modvm" run "$work/k.cfg"
	expect_out "$work/k.cfg:2: boot: kernel '$work/fifo' is not a regular file (a FIFO)"
	for be in raw qcow2; do
		for ro in false true; do
			write_cfg "$work/d.cfg" '' \
				"{ plugin = \"virtio-blk\"; id = \"vda\"; backend = \"$be\"; path = \"$work/fifo\"; readonly = $ro; }"
			expect_code 2 $t "$modvm" run "$work/d.cfg"
			expect_out "$work/fifo: not a regular file"
		done
	done
	# snapshot files
	write_cfg "$work/snap.cfg" 'action = "wait";' '{ plugin = "test-device"; id = "t0"; }'
	sock=$work/vm.sock
	mkdir "$work/snaps"
	"$modvm" run "$work/snap.cfg" --control "$sock" --snapshot-dir "$work/snaps" >"$work/run.out" 2>&1 &
	pid=$!
	wait_running "$sock"
	expect_code 0 "$modvm" ctl "$sock" snapshot s1
	expect_code 0 "$modvm" ctl "$sock" quit
	wait $pid
	for f in manifest.json config.cfg device-t0.state cpu-0.state memory.img; do
		for verify in "" --no-verify-memory; do
			rm -rf "$work/bad"
			cp -r "$work/snaps/s1" "$work/bad"
			rm "$work/bad/$f"
			mkfifo "$work/bad/$f"
			expect_code 2 $t "$modvm" resume $verify "$work/bad"
			expect_out "$work/bad/$f"
			expect_out "not a regular file (a FIFO)"
		done
	done
	;;
control-flood)
	# a client that never reads its replies is disconnected; the others
	# and quit keep working
	export MODVM_PLUGIN_PATH=$tp/good
	write_cfg "$work/ctl.cfg" 'action = "wait";' '{ plugin = "test-device"; id = "t0"; }'
	sock=$work/vm.sock
	"$modvm" run "$work/ctl.cfg" --control "$sock" >"$work/ctl.out" 2>&1 &
	pid=$!
	wait_running "$sock"
	python3 "$(dirname "$0")/flood.py" "$sock" >"$work/flood.out" 2>&1 &
	flood=$!
	sleep 1
	expect_code 0 timeout 5 "$modvm" ctl "$sock" status
	expect_out '"status": "running"'
	for _ in $(seq 50); do
		grep -q "does not read its replies" "$work/ctl.out" && break
		sleep 0.1
	done
	out=$(cat "$work/ctl.out")
	expect_out "does not read its replies"
	expect_out "disconnected"
	# a second flood while another client asks and then quits
	python3 "$(dirname "$0")/flood.py" "$sock" >"$work/flood2.out" 2>&1 &
	flood2=$!
	sleep 0.5
	expect_code 0 timeout 5 "$modvm" ctl "$sock" query-cpus
	expect_code 0 timeout 5 "$modvm" ctl "$sock" quit
	for _ in $(seq 50); do
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 $pid 2>/dev/null; then
		fail "modvm did not exit within 5 s of quit"
		kill -KILL $pid
	fi
	wait $pid
	code=$?
	checks=$((checks + 1))
	[ $code = 130 ] || fail "quit: exit $code, expected 130"
	kill $flood $flood2 2>/dev/null
	wait $flood $flood2 2>/dev/null
	;;
signals)
	# SIGTERM, SIGHUP and SIGINT stop a VM with disks cleanly (exit 130),
	# whichever thread the kernel picks: the disk workers block them
	export MODVM_PLUGIN_PATH=$tp/good
	sock=$work/vm.sock
	truncate -s 1M "$work/disk.raw"
	qemu-img create -q -f qcow2 "$work/disk.qcow2" 1M || skip "qemu-img cannot create images"
	for be in raw qcow2; do
		write_cfg "$work/sig.cfg" 'action = "wait";' \
			"{ plugin = \"virtio-blk\"; id = \"vda\"; backend = \"$be\"; path = \"$work/disk.$be\"; }"
		for sig in TERM HUP INT; do
			for round in 1 2 3; do
				"$modvm" run "$work/sig.cfg" --control "$sock" >"$work/sig.out" 2>&1 &
				pid=$!
				wait_running "$sock"
				kill -$sig $pid
				wait $pid
				code=$?
				checks=$((checks + 1))
				if [ $code != 130 ]; then
					fail "$be disk, SIG$sig, round $round: exit $code, expected 130"
					cat "$work/sig.out"
				fi
				check "$be disk, SIG$sig: the control socket is removed" test ! -e "$sock"
				out=$(cat "$work/sig.out")
				expect_out "stopping on signal"
				if [ $be = qcow2 ]; then
					expect_code 0 qemu-img check -q "$work/disk.qcow2"
				fi
			done
		done
	done
	;;
snapshot)
	export MODVM_PLUGIN_PATH=$tp/good
	write_cfg "$work/snap.cfg" 'action = "wait";' '{ plugin = "test-device"; id = "t0"; }'
	sock=$work/vm.sock
	mkdir "$work/snaps"
	"$modvm" run "$work/snap.cfg" --control "$sock" --snapshot-dir "$work/snaps" >"$work/run.out" 2>&1 &
	pid=$!
	wait_running "$sock"
	expect_code 0 "$modvm" ctl "$sock" snapshot s1
	expect_out "\"path\": \"$work/snaps/s1\""
	expect_out "progress: 100% (16 of 16 MiB)"
	for f in manifest.json config.cfg cpu-0.state device-t0.state memory.img; do
		checks=$((checks + 1))
		[ -f "$work/snaps/s1/$f" ] || fail "snapshot file $f missing"
	done
	# the memory image is sparse: 16 MiB of RAM, one page of it not zero
	used=$(du -k "$work/snaps/s1/memory.img" | cut -f1)
	checks=$((checks + 1))
	[ "$used" -lt 1024 ] || fail "memory.img uses ${used}K: not sparse"
	expect_code 1 "$modvm" ctl "$sock" snapshot s1
	expect_out "already exists"
	# a snapshot that cannot be written leaves the VM running
	chmod 0555 "$work/snaps"
	if [ "$(id -u)" != 0 ]; then
		expect_code 1 "$modvm" ctl "$sock" snapshot s2
		expect_out "the VM continues"
	fi
	chmod 0755 "$work/snaps"
	expect_code 0 "$modvm" ctl "$sock" status
	expect_out '"status": "running"'
	ls "$work/snaps" | grep -q tmp && fail "temporary snapshot directory left behind"
	expect_code 0 "$modvm" ctl "$sock" quit
	wait $pid

	# copy it elsewhere and resume it in a new process
	cp -r "$work/snaps/s1" "$work/copied"
	"$modvm" resume "$work/copied" --control "$sock" >"$work/resume.out" 2>&1 &
	pid=$!
	wait_running "$sock"
	expect_code 0 "$modvm" ctl "$sock" query-devices
	expect_out "reg8 = 0xa"
	expect_code 0 "$modvm" ctl "$sock" query-cpus
	expect_out '"rip": "0x7c00"'
	expect_code 0 "$modvm" ctl "$sock" quit
	wait $pid

	# damaged snapshots are refused, naming the file and the problem
	damaged() { rm -rf "$work/bad"; cp -r "$work/snaps/s1" "$work/bad"; }
	damaged; truncate -s -1 "$work/bad/device-t0.state"
	expect_code 2 timeout 10 "$modvm" resume "$work/bad"
	expect_out "$work/bad/device-t0.state: "
	expect_out "(truncated or replaced)"
	damaged; printf '\x55' | dd of="$work/bad/cpu-0.state" bs=1 seek=40 conv=notrunc 2>/dev/null
	expect_code 2 timeout 10 "$modvm" resume "$work/bad"
	expect_out "$work/bad/cpu-0.state: checksum"
	damaged; printf 'X' | dd of="$work/bad/memory.img" bs=1 seek=4096 conv=notrunc 2>/dev/null
	expect_code 2 timeout 10 "$modvm" resume "$work/bad"
	expect_out "$work/bad/memory.img: checksum"
	damaged; sed -i 's/"format": 3/"format": 4/' "$work/bad/manifest.json"
	expect_code 2 timeout 10 "$modvm" resume "$work/bad"
	expect_out "snapshot format 4 is newer than this modvm reads (3)"
	# integers of the manifest are bounded: timers add to these
	setman() { python3 -c 'import json,sys; p=sys.argv[1]; m=json.load(open(p)); m[sys.argv[2]]=int(sys.argv[3]); json.dump(m, open(p, "w"))' "$work/bad/manifest.json" "$1" "$2"; }
	damaged; setman virtual-ns 9223372036854775000
	expect_code 2 timeout 10 "$modvm" resume "$work/bad"
	expect_out "\"virtual-ns\" 9223372036854775000 is out of range (0 to 2^62 ns)"
	damaged; setman virtual-ns 4611686018427387905
	expect_code 2 timeout 10 "$modvm" resume "$work/bad"
	expect_out "\"virtual-ns\" 4611686018427387905 is out of range"
	damaged; setman virtual-ns -1
	expect_code 2 timeout 10 "$modvm" resume "$work/bad"
	expect_out "\"virtual-ns\" -1 is out of range"
	damaged; setman boot-wall-ns 9223372036854775000
	expect_code 2 timeout 10 "$modvm" resume "$work/bad"
	expect_out "\"boot-wall-ns\" 9223372036854775000 is out of range"
	damaged; setman memory 9223372036854775000
	expect_code 2 timeout 10 "$modvm" resume "$work/bad"
	expect_out "\"memory\" 9223372036854775000 is out of range"
	damaged; setman cpus 100000
	expect_code 2 timeout 10 "$modvm" resume "$work/bad"
	expect_out "\"cpus\" 100000 is out of range (1 to 64)"
	damaged; rm "$work/bad/manifest.json"
	expect_code 2 timeout 10 "$modvm" resume "$work/bad"
	expect_out "no manifest.json"
	damaged; rm "$work/bad/config.cfg"
	expect_code 2 timeout 10 "$modvm" resume "$work/bad"
	expect_out "$work/bad/config.cfg: missing"

	# format-1 (disks by reference) and format-2 snapshots (checksums of
	# the content alone) still resume
	for f in 1 2; do
		damaged; python3 "$(dirname "$0")/oldformat.py" "$work/bad" $f
		"$modvm" resume "$work/bad" --control "$sock" >"$work/resume1.out" 2>&1 &
		pid=$!
		wait_running "$sock"
		expect_code 0 "$modvm" ctl "$sock" quit
		wait $pid
	done
	;;
snapshot-rss)
	# a snapshot reads only the RAM the guest used: holes stay holes and
	# cost no memory (VmRSS of modvm before and after a snapshot)
	export MODVM_PLUGIN_PATH=$tp/good
	cat >"$work/big.cfg" <<CFG
vm: { name = "big"; machine = "none"; memory = "2G";
  cpu = { engine = "test-engine"; action = "wait"; };
  boot = { kernel = "$work/hlt.bin"; format = "flat"; load_address = 0x7c00; };
  devices = ( { plugin = "test-device"; id = "t0"; } ); };
CFG
	sock=$work/vm.sock
	mkdir "$work/snaps"
	rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
	for run in run resume; do
		if [ $run = run ]; then
			"$modvm" run "$work/big.cfg" --control "$sock" --snapshot-dir "$work/snaps" >"$work/run.out" 2>&1 &
		else # a resumed VM maps its image copy-on-write: the other path
			"$modvm" resume "$work/snaps/s1" --control "$sock" --snapshot-dir "$work/snaps" >"$work/run.out" 2>&1 &
		fi
		pid=$!
		wait_running "$sock"
		before=$(rss $pid)
		expect_code 0 "$modvm" ctl "$sock" snapshot s-$run
		after=$(rss $pid)
		check "$run: a snapshot of a 2 GiB guest that used little grew VmRSS by less than 64 MiB (${before}K -> ${after}K)" \
			test $((after - before)) -lt 65536
		expect_code 0 "$modvm" ctl "$sock" quit
		wait $pid
		[ $run = run ] && mv "$work/snaps/s-run" "$work/snaps/s1"
	done
	# both resume with their memory verified (the checksum of the holes)
	for s in s1 s-resume; do
		"$modvm" resume "$work/snaps/$s" --control "$sock" >"$work/resume.out" 2>&1 &
		pid=$!
		wait_running "$sock"
		expect_code 0 "$modvm" ctl "$sock" query-devices
		expect_out "reg8 = 0xa"
		expect_code 0 "$modvm" ctl "$sock" quit
		wait $pid
	done
	;;
snapshot-files)
	# each state file belongs to its device: swapped ones are refused
	export MODVM_PLUGIN_PATH=$tp/good
	write_cfg "$work/snap.cfg" 'action = "wait";' \
		'{ plugin = "test-device"; id = "t0"; }, { plugin = "test-device"; id = "t1"; port = 0x520; }'
	sock=$work/vm.sock
	mkdir "$work/snaps"
	"$modvm" run "$work/snap.cfg" --control "$sock" --snapshot-dir "$work/snaps" >"$work/run.out" 2>&1 &
	pid=$!
	wait_running "$sock"
	expect_code 0 "$modvm" ctl "$sock" snapshot s1
	expect_code 0 "$modvm" ctl "$sock" quit
	wait $pid
	checks=$((checks + 1))
	cmp -s "$work/snaps/s1/device-t0.state" "$work/snaps/s1/device-t1.state" &&
		fail "the two devices' states are the same"
	out=$(python3 -c 'import json,sys; f=json.load(open(sys.argv[1]))["files"]; print(f["device-t0.state"]["crc32c"], f["device-t1.state"]["crc32c"])' "$work/snaps/s1/manifest.json")
	checks=$((checks + 1))
	set -- $out
	[ "$1" != "$2" ] || fail "the manifest has the same CRC-32 $1 for both state files"
	rm -rf "$work/bad"; cp -r "$work/snaps/s1" "$work/bad"
	mv "$work/bad/device-t0.state" "$work/tmp.state"
	mv "$work/bad/device-t1.state" "$work/bad/device-t0.state"
	mv "$work/tmp.state" "$work/bad/device-t1.state"
	expect_code 2 timeout 10 "$modvm" resume "$work/bad"
	expect_out "$work/bad/device-t"
	expect_out "does not match the manifest's"
	# ... and the manifest must name the device's own file and sections
	rm -rf "$work/bad"; cp -r "$work/snaps/s1" "$work/bad"
	python3 -c 'import json,sys; p=sys.argv[1]; m=json.load(open(p)); m["devices"][0]["file"]="device-t1.state"; json.dump(m, open(p, "w"))' "$work/bad/manifest.json"
	expect_code 2 timeout 10 "$modvm" resume "$work/bad"
	expect_out "device t0's state is in \"device-t1.state\", expected device-t0.state"
	rm -rf "$work/bad"; cp -r "$work/snaps/s1" "$work/bad"
	python3 -c 'import json,sys; p=sys.argv[1]; m=json.load(open(p)); m["devices"][1]["sections"][0]["name"]="uart"; json.dump(m, open(p, "w"))' "$work/bad/manifest.json"
	expect_code 2 timeout 10 "$modvm" resume "$work/bad"
	expect_out "device t1 (test-device): section 0 is \"uart\", the plugin's is \"regs\""
	;;
disks)
	# disks are frozen at a snapshot: the image becomes the snapshot's,
	# the VM continues on a qcow2 overlay (docs/snapshot-format.md)
	export MODVM_PLUGIN_PATH=$tp/good
	"$modvm" inspect block-qcow2 2>/dev/null | grep -q "backing-file" ||
		skip "block-qcow2 cannot create overlays yet (no create/backing-file properties)"
	sock=$work/vm.sock
	mkdir "$work/snaps"
	truncate -s 1M "$work/disk.img"
	printf 'data' | dd of="$work/disk.img" bs=1 seek=70000 conv=notrunc 2>/dev/null
	cp "$work/disk.img" "$work/disk.orig"
	write_cfg "$work/disk.cfg" 'action = "wait";' \
		"{ plugin = \"virtio-blk\"; id = \"vda\"; backend = \"raw\"; path = \"$work/disk.img\"; }"
	"$modvm" run "$work/disk.cfg" --control "$sock" --snapshot-dir "$work/snaps" >"$work/run.out" 2>&1 &
	pid=$!
	wait_running "$sock"
	expect_code 0 "$modvm" ctl "$sock" status
	expect_out "\"path\": \"$work/disk.img\""
	expect_out '"overlay": false'
	# disks = reference: recorded by checksum only, nothing moves
	expect_code 0 "$modvm" ctl "$sock" snapshot r0 disks=reference
	checks=$((checks + 1))
	grep -q '"frozen"' "$work/snaps/r0/manifest.json" && fail "r0 froze its disk"
	expect_code 0 "$modvm" ctl "$sock" status
	expect_out "\"path\": \"$work/disk.img\""
	check "disks=reference made no overlay" test ! -e "$work/disk.img.r0.qcow2"
	expect_code 0 "$modvm" ctl "$sock" snapshot s1
	ov=$work/disk.img.s1.qcow2
	check "the overlay $ov exists" test -f "$ov"
	expect_code 0 "$modvm" ctl "$sock" status
	expect_out "\"path\": \"$ov\""
	expect_out '"overlay": true'
	out=$(cat "$work/run.out")
	expect_out "disk vda: $work/disk.img is frozen in the snapshot; the VM now writes to $ov"
	out=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["disks"][0]; print(d["device"], d["path"], d["format"], d["frozen"], d["overlay"], d["size"])' "$work/snaps/s1/manifest.json")
	expect_out "vda $work/disk.img raw True $ov 1048576"
	check "the frozen image is unchanged" cmp "$work/disk.img" "$work/disk.orig"
	expect_code 0 qemu-img check -q "$ov"
	expect_code 0 qemu-img info "$ov"
	expect_out "backing file: disk.img"
	# a failed freeze changes nothing: the next overlay's name is taken
	touch "$ov.s2.qcow2"
	expect_code 1 "$modvm" ctl "$sock" snapshot s2
	expect_out "overlay $ov.s2.qcow2 exists already"
	expect_out "the VM continues"
	check "no s2 after the failure" test ! -e "$work/snaps/s2"
	check "no temporary directory left" test -z "$(ls "$work/snaps" | grep tmp)"
	check "the file in the way is untouched" test ! -s "$ov.s2.qcow2"
	expect_code 0 "$modvm" ctl "$sock" status
	expect_out '"status": "running"'
	expect_out "\"path\": \"$ov\""
	rm "$ov.s2.qcow2"
	# ... or its folder cannot be written (root ignores modes: make the
	# folder immutable instead, where the file system allows it)
	if [ "$(id -u)" != 0 ]; then
		chmod 0555 "$work" && locked=chmod
	elif chattr +i "$work" 2>/dev/null; then
		locked=chattr
	else
		locked=
		echo "note: cannot make $work unwritable here: that failure is not injected"
	fi
	if [ -n "$locked" ]; then
		expect_code 1 "$modvm" ctl "$sock" snapshot s3
		expect_out "$ov.s3.qcow2"
		expect_out "the VM continues"
		if [ "$locked" = chmod ]; then chmod 0755 "$work"; else chattr -i "$work"; fi
		check "no s3 after the failure" test ! -e "$work/snaps/s3"
		check "no half-made overlay" test ! -e "$ov.s3.qcow2"
		expect_code 0 "$modvm" ctl "$sock" status
		expect_out "\"path\": \"$ov\""
	fi
	# disks = reference cannot name the overlay the config does not know
	expect_code 1 "$modvm" ctl "$sock" snapshot r1 disks=reference
	expect_out "disk of device vda runs on overlay $ov since an earlier snapshot"
	check "disks=reference made no overlay" test ! -e "$ov.r1.qcow2"
	check "no r1 after the refusal" test ! -e "$work/snaps/r1"
	expect_code 1 "$modvm" ctl "$sock" snapshot r2 disks=sideways
	expect_out '"disks" is "freeze" (the default) or "reference"'
	expect_code 0 "$modvm" ctl "$sock" quit
	wait $pid
	out=$(cat "$work/run.out")
	expect_out "disk vda: its current content is in $ov (a qcow2 overlay)"
	# running the config again would boot the frozen image: refused,
	# naming the overlay with the live data
	expect_code 2 "$modvm" run "$work/disk.cfg"
	expect_out "disk of device vda: $work/disk.img is frozen in a snapshot: the VM's later writes are in the overlay $ov over it"
	expect_out "resume the snapshot (modvm resume DIR), or run on the overlay"
	check "the refused run left the frozen image unchanged" cmp "$work/disk.img" "$work/disk.orig"
	check "the frozen image is unchanged after the run" cmp "$work/disk.img" "$work/disk.orig"
	# resume, twice: each on a new overlay over the frozen image
	for n in 1 2; do
		"$modvm" resume "$work/snaps/s1" --control "$sock" >"$work/resume$n.out" 2>&1 &
		pid=$!
		wait_running "$sock"
		expect_code 0 "$modvm" ctl "$sock" status
		expect_out "\"path\": \"$work/disk.img.s1-resume$n.qcow2\""
		expect_code 0 "$modvm" ctl "$sock" quit
		wait $pid
		out=$(cat "$work/resume$n.out")
		expect_out "disk vda: resumed on overlay $work/disk.img.s1-resume$n.qcow2 over the snapshot's frozen $work/disk.img"
		expect_code 0 qemu-img check -q "$work/disk.img.s1-resume$n.qcow2"
		check "resume $n left the frozen image unchanged" cmp "$work/disk.img" "$work/disk.orig"
	done
	# a changed frozen image refuses the resume
	printf 'X' | dd of="$work/disk.img" bs=1 seek=70001 conv=notrunc 2>/dev/null
	expect_code 2 "$modvm" resume "$work/snaps/s1"
	expect_out "disk $work/disk.img of device vda changed since the snapshot"
	;;
disks-leftover)
	# an empty overlay left by a snapshot that never completed (modvm
	# killed during it: its NAME.tmp-PID is there, PID gone) blocks
	# neither the next run nor the next snapshot of that name
	export MODVM_PLUGIN_PATH=$tp/good
	sock=$work/vm.sock
	mkdir "$work/snaps"
	truncate -s 1M "$work/disk.img"
	write_cfg "$work/disk.cfg" 'action = "wait";' \
		"{ plugin = \"virtio-blk\"; id = \"vda\"; backend = \"raw\"; path = \"$work/disk.img\"; }"
	dead=$(sh -c 'echo $$')
	leftover() { # leftover IMAGE_BASENAME TAG: what a kill during snapshot TAG leaves
		(cd "$work" && qemu-img create -q -f qcow2 -b "$1" -F "$3" "$1.$2.qcow2") ||
			skip "qemu-img cannot create overlays"
		mkdir "$work/snaps/$2.tmp-$dead"
		echo cfg >"$work/snaps/$2.tmp-$dead/config.cfg"
	}
	leftover disk.img s1 raw
	"$modvm" run "$work/disk.cfg" --control "$sock" --snapshot-dir "$work/snaps" >"$work/run.out" 2>&1 &
	pid=$!
	wait_running "$sock"
	out=$(cat "$work/run.out")
	expect_out "disk vda: removed $work/disk.img.s1.qcow2, an empty overlay left by snapshot s1, which did not complete"
	check "the incomplete snapshot's directory is removed" test ! -e "$work/snaps/s1.tmp-$dead"
	leftover disk.img s2 raw
	expect_code 0 "$modvm" ctl "$sock" snapshot s2
	check "s2 was written" test -f "$work/snaps/s2/manifest.json"
	out=$(cat "$work/run.out")
	expect_out "disk vda: removed $work/disk.img.s2.qcow2, an empty overlay left by snapshot s2, which did not complete"
	expect_code 0 qemu-img check -q "$work/disk.img.s2.qcow2"
	# without the evidence of an incomplete snapshot, nothing is removed
	(cd "$work" && qemu-img create -q -f qcow2 -b disk.img.s2.qcow2 -F qcow2 disk.img.s2.qcow2.s3.qcow2)
	expect_code 1 "$modvm" ctl "$sock" snapshot s3
	expect_out "exists already"
	check "an overlay without an incomplete snapshot is kept" test -f "$work/disk.img.s2.qcow2.s3.qcow2"
	expect_code 0 "$modvm" ctl "$sock" quit
	wait $pid
	rm "$work/disk.img.s2.qcow2.s3.qcow2"
	# s2 completed: its overlay is the live disk, the run is refused
	expect_code 2 "$modvm" run "$work/disk.cfg" --snapshot-dir "$work/snaps"
	expect_out "is frozen in a snapshot: the VM's later writes are in the overlay $work/disk.img.s2.qcow2"
	;;
testdev)
	# Real-mode guests under cpu-bt end modvm through isa-debug-exit with
	# the value they read back from fw-cfg and pc-testdev: the exit status
	# is (v << 1) | 1 after a clean shutdown.
	tdcfg() { # tdcfg FILE IMAGE CPUS
		cat >"$1" <<CFG
vm: {
  name = "testdev"; machine = "none"; memory = "16M"; cpus = $3;
  cpu = { engine = "cpu-bt"; };
  boot = { kernel = "$2"; format = "flat"; load_address = 0x7c00; };
  devices = ( { plugin = "isa-debug-exit"; }, { plugin = "fw-cfg"; },
              { plugin = "pc-testdev"; } );
};
CFG
	}
	# mov eax, 42; out 0xf4, eax; hlt
	printf '\x66\xb8\x2a\x00\x00\x00\x66\xe7\xf4\xf4' >"$work/exit42.bin"
	tdcfg "$work/exit42.cfg" "$work/exit42.bin" 1
	expect_code 85 "$modvm" run "$work/exit42.cfg"
	# mov dx, 0x510; mov ax, 5 (FW_CFG_NB_CPUS); out dx, ax; inc dx;
	# in al, dx; movzx eax, al; out 0xf4, eax; hlt
	printf '\xba\x10\x05\xb8\x05\x00\xef\x42\xec\x66\x0f\xb6\xc0\x66\xe7\xf4\xf4' \
		>"$work/cpus.bin"
	tdcfg "$work/cpus.cfg" "$work/cpus.bin" 3
	expect_code 7 "$modvm" run "$work/cpus.cfg"
	# mov al, 0x21; out 0xe0, al; xor eax, eax; in al, 0xe0; out 0xf4, eax; hlt
	printf '\xb0\x21\xe6\xe0\x66\x31\xc0\xe4\xe0\x66\xe7\xf4\xf4' >"$work/scratch.bin"
	tdcfg "$work/scratch.cfg" "$work/scratch.bin" 1
	expect_code 67 "$modvm" run "$work/scratch.cfg"
	;;
*)
	echo "unknown case $case_name"
	exit 2
	;;
esac
summarize
