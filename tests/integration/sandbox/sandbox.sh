#!/usr/bin/env bash
# The sandbox (docs/sandbox.md) from the outside: a device plugin that makes
# a forbidden system call after set-up ends modvm with exit 159 and a
# message naming the call; the VM runs normally inside it; --sandbox, the
# config key and MODVM_SANDBOX decide; /proc shows the filters, no new
# privileges and the dropped uid.
# usage: sandbox.sh CASE BUILD_DIR SOURCE_DIR
set -u
case_name=$1
build=$2
modvm=$build/modvm
tp=$build/tests/plugins
work=$(mktemp -d /tmp/modvm-sandbox.XXXXXX)
pid=
socks=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work" ${socks:+"$socks"}' EXIT
. "$(dirname "$0")/../lib.sh"
export MODVM_PLUGIN_PATH=$tp/sandbox:$tp/good
unset MODVM_SANDBOX

skip() {
	echo "SKIP: $*"
	exit 77
}

# The probe guest (real mode at 0x7c00): ask the sandbox-probe device for
# its call, wait until it says it made it, then end through isa-debug-exit
# with 1 (modvm exits 3) or, if it never answered, 2 (exit 5).
cat >"$work/probe.asm" <<'ASM'
bits 16
org 0x7c00
	mov dx, 0x520
	mov al, 1
	out dx, al
	mov ecx, 0x4000000
.wait:	in al, dx
	cmp al, 1
	je .done
	dec ecx
	jnz .wait
	mov eax, 2
	out 0xf4, eax
	hlt
.done:	mov eax, 1
	out 0xf4, eax
	hlt
ASM
nasm -f bin -o "$work/probe.bin" "$work/probe.asm" || exit 1

probe_cfg() { # probe_cfg FILE ACTION THREAD [EXTRA VM KEYS]
	cat >"$1" <<CFG
vm: {
  name = "probe"; machine = "none"; memory = "16M";
  cpu = { engine = "cpu-bt"; };
  boot = { kernel = "$work/probe.bin"; format = "flat"; load_address = 0x7c00; };
  devices = ( { plugin = "isa-debug-exit"; },
              { plugin = "sandbox-probe"; id = "probe"; action = "$2"; thread = "$3";
                path = "/etc/hostname"; } );
  ${4:-}
};
CFG
}

# A VM that runs until told to stop (the test engine waits).
printf '\xf4' >"$work/hlt.bin"
wait_cfg() { # wait_cfg FILE [EXTRA VM KEYS]
	cat >"$1" <<CFG
vm: {
  name = "wait"; machine = "none"; memory = "16M";
  cpu = { engine = "test-engine"; action = "wait"; };
  boot = { kernel = "$work/hlt.bin"; format = "flat"; load_address = 0x7c00; };
  devices = ( { plugin = "test-device"; id = "t0"; },
              { plugin = "sandbox-probe"; id = "probe"; thread = "worker"; } );
  ${2:-}
};
CFG
}

# status_of PID TID FIELD: a field of /proc/PID/task/TID/status
status_of() {
	sed -n "s/^$3:[[:space:]]*//p" "/proc/$1/task/$2/status" 2>/dev/null | awk '{print $1}'
}

# tid_named PID NAME: the thread of PID whose comm is NAME
tid_named() {
	local t
	for t in /proc/"$1"/task/*; do
		[ "$(cat "$t/comm" 2>/dev/null)" = "$2" ] && { basename "$t"; return; }
	done
}

start_wait() { # start_wait CFG [ARGS]: runs it in the background, $pid, $sock
	local cfg=$1
	shift
	sock=$work/vm.sock
	rm -f "$sock"
	"$modvm" run "$cfg" --control "$sock" "$@" >"$work/run.out" 2>&1 &
	pid=$!
	wait_running "$sock"
}

stop_wait() {
	expect_code 0 "$modvm" ctl "$sock" quit
	wait "$pid"
	pid=
}

case $case_name in
default)
	# on unless told otherwise, and the VM runs inside it
	probe_cfg "$work/none.cfg" none vcpu
	expect_code 3 "$modvm" run -v "$work/none.cfg"
	expect_out "sandbox: on (the default)"
	;;
forbidden)
	# what an exploited device would try, from the vCPU thread, from the
	# event loop and from a plugin's own thread (host->thread_start, as
	# block workers; started during set-up and narrowed when the sandbox
	# came): modvm stops at once and names the call
	for t in vcpu:modvm-cpu0 loop:modvm-loop worker:probe-worker; do
		thread=${t%%:*} comm=${t#*:}
		for a in socket-inet:socket open-file:openat fork:clone execve:execve \
			 mmap-exec:mmap; do
			action=${a%%:*} call=${a#*:}
			probe_cfg "$work/$action.cfg" "$action" "$thread"
			expect_code 159 "$modvm" run "$work/$action.cfg"
			expect_out "modvm: sandbox: thread $comm made forbidden system call $call ("
			expect_out "modvm stops now (exit 159)"
			checks=$((checks + 1))
			grep -q "allowed" <<<"$out" && fail "$action on $thread was allowed"
		done
	done
	;;
off)
	# the same calls work without the sandbox, however it is turned off
	probe_cfg "$work/open.cfg" open-file vcpu
	expect_code 3 "$modvm" run "$work/open.cfg" --sandbox=off
	expect_out "open-file on thread modvm-cpu0: allowed"
	MODVM_SANDBOX=off expect_code 3 "$modvm" run "$work/open.cfg"
	expect_out "open-file on thread modvm-cpu0: allowed"
	probe_cfg "$work/open-w.cfg" open-file worker
	expect_code 3 "$modvm" run "$work/open-w.cfg" --sandbox=off
	expect_out "open-file on thread probe-worker: allowed"
	probe_cfg "$work/sock.cfg" socket-inet loop "sandbox = false;"
	expect_code 3 "$modvm" run -v "$work/sock.cfg"
	expect_out "socket-inet on thread modvm-loop: allowed"
	expect_out "sandbox: off (the config)"
	# the command line wins over the config, the config over the environment
	expect_code 159 "$modvm" run "$work/sock.cfg" --sandbox=on
	expect_out "made forbidden system call socket ("
	probe_cfg "$work/sock-on.cfg" socket-inet loop "sandbox = true;"
	MODVM_SANDBOX=off expect_code 159 "$modvm" run "$work/sock-on.cfg"
	;;
options)
	probe_cfg "$work/none.cfg" none vcpu
	expect_code 2 "$modvm" run "$work/none.cfg" --sandbox=maybe
	expect_out "--sandbox=maybe: use --sandbox=on or --sandbox=off"
	MODVM_SANDBOX=maybe expect_code 2 "$modvm" run "$work/none.cfg"
	expect_out "MODVM_SANDBOX=maybe: use on or off"
	probe_cfg "$work/str.cfg" none vcpu 'sandbox = "yes";'
	expect_code 2 "$modvm" check "$work/str.cfg"
	expect_out "$work/str.cfg:8: sandbox must be true, false or a group"
	probe_cfg "$work/key.cfg" none vcpu 'sandbox = { enable = true; colour = "red"; };'
	expect_code 2 "$modvm" check "$work/key.cfg"
	expect_out "colour"
	probe_cfg "$work/conflict.cfg" none vcpu 'sandbox = { enable = false; user = "nobody"; };'
	expect_code 2 "$modvm" check "$work/conflict.cfg"
	expect_out "they only apply inside the sandbox"
	probe_cfg "$work/nouser.cfg" none vcpu 'sandbox = { user = "no-such-user-here"; };'
	expect_code 2 "$modvm" run "$work/nouser.cfg"
	expect_out 'sandbox: user "no-such-user-here": no such user'
	probe_cfg "$work/uid.cfg" none vcpu 'sandbox = { uid = -1; };'
	expect_code 2 "$modvm" check "$work/uid.cfg"
	expect_out "sandbox uid must be a number from 0 to 4294967294"
	expect_code 0 "$modvm" run --help
	expect_out "--sandbox=on|off"
	;;
proc)
	# the kernel's view: every thread filtered, no new privileges, and
	# the vCPU thread under a second, narrower filter
	wait_cfg "$work/wait.cfg"
	start_wait "$work/wait.cfg"
	check "no_new_privs" test "$(status_of "$pid" "$pid" NoNewPrivs)" = 1
	check "seccomp filter mode" test "$(status_of "$pid" "$pid" Seccomp)" = 2
	for t in /proc/"$pid"/task/*; do
		tid=$(basename "$t")
		check "thread $(cat "$t/comm") filtered" test "$(status_of "$pid" "$tid" Seccomp)" = 2
	done
	cpu=$(tid_named "$pid" modvm-cpu0)
	check "a vCPU thread" test -n "$cpu"
	[ -n "$cpu" ] && check "the vCPU thread stacks the device filter" \
		test "$(status_of "$pid" "$cpu" Seccomp_filters)" = 2
	# a plugin's thread started during set-up was narrowed too
	w=$(tid_named "$pid" probe-worker)
	check "a plugin thread" test -n "$w"
	[ -n "$w" ] && check "the plugin thread stacks the device filter" \
		test "$(status_of "$pid" "$w" Seccomp_filters)" = 2
	check "the main thread has one filter" test "$(status_of "$pid" "$pid" Seccomp_filters)" = 1
	stop_wait
	# and nothing of it with --sandbox=off
	start_wait "$work/wait.cfg" --sandbox=off
	check "no filter when off" test "$(status_of "$pid" "$pid" Seccomp)" = 0
	stop_wait
	;;
snapshot)
	# a snapshot writes files and the control socket serves clients
	# under the sandbox; a FUSE mount requested after set-up is refused
	# with the reason (mounting needs a new process)
	wait_cfg "$work/wait.cfg"
	mkdir "$work/snaps" "$work/mnt"
	start_wait "$work/wait.cfg" --snapshot-dir "$work/snaps"
	expect_code 0 "$modvm" ctl "$sock" snapshot s1
	check "snapshot written" test -f "$work/snaps/s1/manifest.json"
	expect_code 1 "$modvm" mount "$sock" "$work/mnt"
	expect_out "the sandbox is on"
	expect_out "--mount DIR"
	stop_wait
	rm -f "$sock"
	"$modvm" resume "$work/snaps/s1" --control "$sock" >"$work/resume.out" 2>&1 &
	pid=$!
	wait_running "$sock"
	check "resumed VM filtered" test "$(status_of "$pid" "$pid" Seccomp)" = 2
	stop_wait
	;;
files)
	# what modvm created it removes when it stops, inside the sandbox
	# too (Landlock refuses removals outside the folders allowed): the
	# control socket and a chardev socket server's file (in a folder of
	# its own: Landlock rules cover whole trees, and the control socket's
	# folder is allowed anyway)
	socks=$(mktemp -d /tmp/modvm-sandbox-sock.XXXXXX)
	cat >"$work/files.cfg" <<CFG
vm: {
  name = "files"; machine = "none"; memory = "16M";
  cpu = { engine = "test-engine"; action = "wait"; };
  boot = { kernel = "$work/hlt.bin"; format = "flat"; load_address = 0x7c00; };
  devices = ( { plugin = "serial-16550"; id = "com1"; backend = "socket";
                path = "$socks/com1.sock"; } );
};
CFG
	start_wait "$work/files.cfg" -v
	check "the chardev socket exists while the VM runs" test -S "$socks/com1.sock"
	stop_wait
	grep -q "writes confined (Landlock)" "$work/run.out" ||
		echo "note: no Landlock in this kernel: removals were not confined"
	check "the chardev socket is removed at exit" test ! -e "$socks/com1.sock"
	check "the control socket is removed at exit" test ! -e "$sock"
	;;
credentials)
	[ "$(id -u)" = 0 ] || skip "changing uid and namespaces needs root"
	id nobody >/dev/null 2>&1 || skip "no user nobody"
	nobody=$(id -u nobody)
	nogroup=$(id -g nobody)
	wait_cfg "$work/user.cfg" 'sandbox = { user = "nobody"; };'
	start_wait "$work/user.cfg"
	check "uid of nobody" test "$(status_of "$pid" "$pid" Uid)" = "$nobody"
	check "gid of nobody" test "$(status_of "$pid" "$pid" Gid)" = "$nogroup"
	check "still filtered" test "$(status_of "$pid" "$pid" Seccomp)" = 2
	stop_wait
	wait_cfg "$work/ids.cfg" 'sandbox = { uid = 12345; gid = 23456; };'
	start_wait "$work/ids.cfg"
	check "uid 12345" test "$(status_of "$pid" "$pid" Uid)" = 12345
	check "gid 23456" test "$(status_of "$pid" "$pid" Gid)" = 23456
	check "no supplementary groups" test -z "$(sed -n 's/^Groups:[[:space:]]*//p' /proc/$pid/status | sed 's/23456//; s/ //g')"
	stop_wait
	wait_cfg "$work/ns.cfg" 'sandbox = { namespaces = true; };'
	start_wait "$work/ns.cfg"
	cpu=$(tid_named "$pid" modvm-cpu0)
	check "vCPU thread in its own network namespace" \
		test "$(readlink /proc/"$pid"/task/"$cpu"/ns/net)" != "$(readlink /proc/self/ns/net)"
	check "vCPU thread in its own mount namespace" \
		test "$(readlink /proc/"$pid"/task/"$cpu"/ns/mnt)" != "$(readlink /proc/self/ns/mnt)"
	stop_wait
	;;
*)
	echo "unknown case $case_name"
	exit 2
	;;
esac
summarize
