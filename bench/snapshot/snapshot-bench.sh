#!/usr/bin/env bash
# Snapshot and resume of an idle Linux guest (tests/guests/linux booted to its
# shell, 512 MiB): modvm's `ctl snapshot` and `resume` against QEMU TCG's
# migration to a file and -incoming from it, same kernel and initramfs.
#
#   bench/snapshot/snapshot-bench.sh [-e ENGINE] [-m MEM] [-n RUNS] [-t SECONDS]
#                                    [-b BUILDDIR] [-g GUESTDIR] [-k KEEPDIR]
#                                    [--no-qemu] [--no-modvm]
#
# Each VM boots once; then RUNS times: snapshot (modvm: `modvm ctl SOCK
# snapshot NAME`, returns when the files are written and fsync'ed; QEMU:
# QMP `migrate` to "exec:cat > FILE" of the running VM, until query-migrate
# says completed, no fsync) and resume in a new process until the guest's
# shell answers a command typed on its serial console (modvm resume with and
# without --no-verify-memory; QEMU -incoming "exec:cat FILE"). Times are
# host wall-clock, best of RUNS; sizes are du --apparent-size and du. The
# snapshot time of modvm includes starting `modvm ctl`; QEMU's is taken
# inside the QMP client, from the migrate command to "completed". Resume
# times have a 0.1 s resolution (the command is retyped every 0.1 s).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

engine=cpu-bt
mem=512M
runs=3
limit=1500
build=$repo/build
guest=
keep=
do_qemu=1
do_modvm=1

usage() {
	sed -n '6,8p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	-e) engine=$2; shift 2 ;;
	-m) mem=$2; shift 2 ;;
	-n) runs=$2; shift 2 ;;
	-t) limit=$2; shift 2 ;;
	-b) build=$(cd "$2" && pwd); shift 2 ;;
	-g) guest=$(cd "$2" && pwd); shift 2 ;;
	-k) mkdir -p "$2"; keep=$(cd "$2" && pwd); shift 2 ;;
	--no-qemu) do_qemu=0; shift ;;
	--no-modvm) do_modvm=0; shift ;;
	-h | --help) usage ;;
	*) echo "snapshot-bench: unknown argument $1" >&2; usage ;;
	esac
done
guest=${guest:-$build/guests/linux}
modvm=$build/modvm
kernel=$guest/vmlinuz
initrd=$guest/initrd.gz
# No modvm.script: /init starts the interactive shell on the console.
cmdline="console=ttyS0 nokaslr no_timer_check"

die() { echo "snapshot-bench: error: $*" >&2; exit 2; }
{ [ -f "$kernel" ] && [ -f "$initrd" ]; } ||
	die "no $kernel or $initrd: run tests/guests/linux/mkinitramfs.sh $guest"
[ "$do_modvm" = 0 ] || [ -x "$modvm" ] || die "no $modvm: build modvm first (or -b BUILDDIR)"
if [ "$do_qemu" = 1 ]; then
	command -v qemu-system-x86_64 >/dev/null ||
		die "qemu-system-x86_64 not found (apt-get install qemu-system-x86), or pass --no-qemu"
	command -v python3 >/dev/null || die "python3 is needed for QEMU's QMP socket, or pass --no-qemu"
fi
[[ "$mem" =~ ^[0-9]+M$ ]] || die "-m takes megabytes, such as 512M"

tmp=$(mktemp -d /tmp/snapshot-bench.XXXXXX)
vm_pid=
cleanup() {
	[ -z "$vm_pid" ] || kill "$vm_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
logs=${keep:-$tmp}

now() { echo "${EPOCHREALTIME/./}"; }
secs() { awk -v us="$1" 'BEGIN { printf "%.3f", us / 1e6 }'; }

# start_vm LOG CMD...: runs CMD in the background with its console on a
# FIFO (fd 5, held open so the VM never reads end of file) and on LOG.
start_vm() {
	local log=$1
	shift
	rm -f "$tmp/in"
	mkfifo "$tmp/in"
	: >"$log"
	exec 5<>"$tmp/in"
	timeout -k 5 "$limit" "$@" <"$tmp/in" >"$log" 2>"$log.err" &
	vm_pid=$!
}

# stop_vm: waits for the VM started last to end (after a quit).
stop_vm() {
	local i
	for i in $(seq 100); do
		kill -0 "$vm_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill "$vm_pid" 2>/dev/null || true
	wait "$vm_pid" 2>/dev/null || true
	vm_pid=
	exec 5>&-
}

# wait_marker LOG: until the guest printed MODVM-LINUX-READY.
wait_marker() {
	while ! grep -qs '^MODVM-LINUX-READY' "$1"; do
		kill -0 "$vm_pid" 2>/dev/null ||
			die "the VM exited before MODVM-LINUX-READY; see $1 and $1.err"
		sleep 0.5
	done
}

# ping LOG: types a command on the console until the shell's answer
# appears; prints the time from the call to the answer in microseconds.
# The typed line is echoed, so the expected answer is a number the line
# only holds as an expression.
ping_no=0
ping() {
	local t0 sent=0 n want
	ping_no=$((ping_no + 1))
	n=$((RANDOM % 1000 + 1000 * ping_no))
	want="pong-$((n + 1))"
	t0=$(now)
	while ! tr -d '\r' <"$1" | grep -qx "$want"; do
		kill -0 "$vm_pid" 2>/dev/null || die "the VM exited while waiting for its shell; see $1 and $1.err"
		# Retyped every 0.1 s (the resolution of the resume times): a
		# line that arrives before the UART's state is loaded is lost
		# (QEMU drops its first bytes).
		if [ $(((${EPOCHREALTIME/./} - t0) / 100000)) -ge "$sent" ]; then
			echo "echo pong-\$(($n + 1))" >&5
			sent=$((sent + 1))
		fi
		sleep 0.02
	done
	echo $(($(now) - t0))
}

# qmp SOCKET COMMAND...: QEMU's QMP, for the migration (python3, stdlib).
qmp() {
	python3 - "$@" <<'PY'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX)
for _ in range(100):
    try:
        s.connect(sys.argv[1]); break
    except OSError:
        time.sleep(0.1)
f = s.makefile("rw")
def call(cmd, **args):
    f.write(json.dumps({"execute": cmd, "arguments": args}) + "\n"); f.flush()
    while True:
        r = json.loads(f.readline())
        if "return" in r: return r["return"]
        if "error" in r: sys.exit("qmp %s: %s" % (cmd, r["error"]["desc"]))
json.loads(f.readline())                       # greeting
call("qmp_capabilities")
if sys.argv[2] == "migrate":
    # Saving to a file: no bandwidth cap (the default is 128 MiB/s).
    call("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
    t0 = time.monotonic()
    call("migrate", uri="exec:cat > " + sys.argv[3])
    while True:
        st = call("query-migrate").get("status")
        if st == "completed": break
        if st in ("failed", "cancelled"): sys.exit("migration " + st)
        time.sleep(0.005)
    print(int((time.monotonic() - t0) * 1e6))
elif sys.argv[2] == "cont":
    call("cont")
else:
    call(sys.argv[2])
PY
}

# best_of VAR VALUE: keeps the smallest value seen.
best_of() {
	local cur=${!1}
	if [ -z "$cur" ] || [ "$2" -lt "$cur" ]; then printf -v "$1" '%s' "$2"; fi
}
ratio() {
	if [ -n "$1" ] && [ -n "$2" ]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; else printf 'n/a'; fi
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
sizes() { # sizes PATH: apparent and allocated bytes
	echo "$(du -sb --apparent-size "$1" | cut -f 1) $(($(du -sk "$1" | cut -f 1) * 1024))"
}

echo "kernel:  $kernel ($(sed -n 's/^kernel //p' "$guest/VERSION" 2>/dev/null))"
echo "initrd:  $initrd"
echo "cmdline: $cmdline"
echo "memory:  $mem, runs: $runs (best is kept), host load: $(cut -d ' ' -f 1-3 /proc/loadavg)"

m_boot='' m_snap='' m_res='' m_resnv='' m_app='' m_disk=''
q_boot='' q_snap='' q_res='' q_app='' q_disk=''

if [ "$do_modvm" = 1 ]; then
	cat >"$tmp/vm.cfg" <<-EOF
	vm: {
	  name = "snapshot-bench";
	  memory = "$mem";
	  cpu = { engine = "$engine"; model = "baseline-v1"; };
	  boot = { kernel = "$kernel"; initrd = "$initrd"; format = "linux";
	           cmdline = "$cmdline"; };
	  devices = ( { plugin = "serial-16550"; id = "com1"; backend = "stdio"; } );
	};
	EOF
	sock=$tmp/modvm.sock
	echo "modvm ($engine): $modvm"
	t0=$(now)
	start_vm "$logs/modvm-boot.log" "$modvm" run "$tmp/vm.cfg" --control "$sock" --snapshot-dir "$tmp"
	wait_marker "$logs/modvm-boot.log"
	ping "$logs/modvm-boot.log" >/dev/null
	m_boot=$(($(now) - t0))
	echo "  boot to the shell's answer: $(secs "$m_boot")s"
	sleep 3
	for i in $(seq 1 "$runs"); do
		t0=$(now)
		"$modvm" ctl "$sock" snapshot "snap$i" >"$logs/modvm-snap$i.out" 2>&1 ||
			die "modvm ctl snapshot failed: $(cat "$logs/modvm-snap$i.out")"
		t=$(($(now) - t0))
		echo "  snapshot $i: $(secs "$t")s"
		best_of m_snap "$t"
		sleep 1
	done
	"$modvm" ctl "$sock" quit >/dev/null
	stop_vm
	read -r m_app m_disk < <(sizes "$tmp/snap1")
	echo "  snapshot size: $(mib "$m_app") MiB apparent, $(mib "$m_disk") MiB on disk"
	for i in $(seq 1 "$runs"); do
		for opt in "" --no-verify-memory; do
			t0=$(now)
			start_vm "$logs/modvm-resume$i$opt.log" "$modvm" resume "$tmp/snap$i" --control "$sock" $opt
			ping "$logs/modvm-resume$i$opt.log" >/dev/null
			t=$(($(now) - t0))
			echo "  resume $i${opt:+ $opt}: shell answered after $(secs "$t")s"
			if [ -z "$opt" ]; then best_of m_res "$t"; else best_of m_resnv "$t"; fi
			"$modvm" ctl "$sock" quit >/dev/null
			stop_vm
		done
	done
fi

if [ "$do_qemu" = 1 ]; then
	echo "QEMU TCG: $(qemu-system-x86_64 --version | head -n 1)"
	qemu=(qemu-system-x86_64 -accel tcg -m "$mem" -display none -monitor none
		-serial stdio -no-reboot -kernel "$kernel" -initrd "$initrd" -append "$cmdline")
	qsock=$tmp/qmp.sock
	t0=$(now)
	start_vm "$logs/qemu-boot.log" "${qemu[@]}" -qmp "unix:$qsock,server=on,wait=off"
	wait_marker "$logs/qemu-boot.log"
	ping "$logs/qemu-boot.log" >/dev/null
	q_boot=$(($(now) - t0))
	echo "  boot to the shell's answer: $(secs "$q_boot")s"
	sleep 3
	for i in $(seq 1 "$runs"); do
		t=$(qmp "$qsock" migrate "$tmp/qemu$i.mig")
		echo "  migrate to file $i: $(secs "$t")s"
		best_of q_snap "$t"
		qmp "$qsock" cont # a completed migration leaves the VM paused
		sleep 1
	done
	qmp "$qsock" quit
	stop_vm
	read -r q_app q_disk < <(sizes "$tmp/qemu1.mig")
	echo "  migration file size: $(mib "$q_app") MiB apparent, $(mib "$q_disk") MiB on disk"
	for i in $(seq 1 "$runs"); do
		t0=$(now)
		start_vm "$logs/qemu-incoming$i.log" "${qemu[@]}" -qmp "unix:$qsock,server=on,wait=off" \
			-incoming "exec:cat $tmp/qemu$i.mig"
		ping "$logs/qemu-incoming$i.log" >/dev/null
		t=$(($(now) - t0))
		echo "  incoming $i: shell answered after $(secs "$t")s"
		best_of q_res "$t"
		qmp "$qsock" quit
		stop_vm
	done
fi

s() { [ -n "$1" ] && secs "$1" || echo none; }
m() { [ -n "$1" ] && mib "$1" || echo none; }
echo
echo "results (best of $runs; seconds of host wall time, MiB), host load now: $(cut -d ' ' -f 1-3 /proc/loadavg)"
printf '  %-34s %12s %12s %12s\n' "" "modvm" "QEMU TCG" "modvm/QEMU"
printf '  %-34s %12s %12s %12s\n' "boot to shell answer" "$(s "$m_boot")" "$(s "$q_boot")" "$(ratio "$m_boot" "$q_boot")"
printf '  %-34s %12s %12s %12s\n' "snapshot / migrate to file" "$(s "$m_snap")" "$(s "$q_snap")" "$(ratio "$m_snap" "$q_snap")"
printf '  %-34s %12s %12s %12s\n' "size, apparent" "$(m "$m_app")" "$(m "$q_app")" "$(ratio "$m_app" "$q_app")"
printf '  %-34s %12s %12s %12s\n' "size, on disk" "$(m "$m_disk")" "$(m "$q_disk")" "$(ratio "$m_disk" "$q_disk")"
printf '  %-34s %12s %12s %12s\n' "resume / incoming to shell answer" "$(s "$m_res")" "$(s "$q_res")" "$(ratio "$m_res" "$q_res")"
printf '  %-34s %12s %12s %12s\n' "resume --no-verify-memory" "$(s "$m_resnv")" "-" "$(ratio "$m_resnv" "$q_res")"
[ -z "$keep" ] || echo "console logs: $keep"
