#!/usr/bin/env bash
# Display tests: the display guest (tests/guests/display.asm) draws on
# vga-std, and the picture is taken the ways a user takes it (modvm ctl
# screendump, the FUSE view's screen.png, after a snapshot and resume) and
# checked pixel by pixel (pngcheck.py). One case per invocation.
# usage: display.sh CASE BUILD_DIR SOURCE_DIR
set -u
case_name=$1
build=$2
src=$3
modvm=$build/modvm
guest=$build/tests/guests/display.bin
check_png="python3 $src/tests/integration/display/pngcheck.py"
work=$(realpath "$(mktemp -d /tmp/modvm-display.XXXXXX)")
pids=()
. "$src/tests/integration/lib.sh"

cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	[ -d "$work/mnt" ] && fusermount3 -u -z "$work/mnt" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# The text screen (720x400): banner on blue, row 1 red background, row 2
# green full blocks (the font maps 0xDB), the cursor on row 3, black below.
text_pixels="720x400 2,2=0000AA 4,20=AA0000 85,20=AA0000 4,36=00AA00 90,36=000000 3,61=AAAAAA 3,56=000000 400,300=000000"
# The framebuffer (640x480x32): quadrants and the last pixel.
fb_pixels="640x480 0,0=FF0000 319,239=FF0000 320,0=00FF00 0,240=0000FF 320,240=FFFFFF 638,479=FFFFFF 639,479=123456"

# config NAME MODE: a VM with COM1 to NAME.serial and a vga-std.
config() {
	cat >"$work/$1.cfg" <<CFG
vm: {
  name = "$1";
  memory = "32M";
  cpu = { engine = "cpu-bt"; };
  boot = { kernel = "$guest"; cmdline = "mode=$2"; };
  devices = ( { plugin = "serial-16550"; id = "com1"; backend = "file";
                path = "$work/$1.serial"; append = false; },
              { plugin = "vga-std"; id = "vga"; } );
};
CFG
}

# boot NAME MODE [ARGS...]: start it, wait for "display: ready".
boot() {
	local name=$1 mode=$2
	shift 2
	config "$name" "$mode"
	"$modvm" run "$work/$name.cfg" --control "$work/$name.sock" "$@" >"$work/$name.out" 2>&1 &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 200); do
		grep -q "display: ready" "$work/$name.serial" 2>/dev/null && return 0
		grep -q "FAIL" "$work/$name.serial" 2>/dev/null && break
		sleep 0.05
	done
	fail "the display guest ($mode) did not get ready"
	cat "$work/$name.serial" "$work/$name.out" 2>/dev/null | sed 's/^/    /'
	exit 1
}

# quit NAME: end it through the control socket (exit 130).
quit() {
	expect_code 0 "$modvm" ctl "$work/$1.sock" quit
	wait "$pid"
	local code=$?
	checks=$((checks + 1))
	[ "$code" = 130 ] || { fail "modvm exited $code after quit, expected 130"; sed 's/^/    /' "$work/$1.out"; }
}

pixels() { # pixels FILE SPEC...
	checks=$((checks + 1))
	local file=$1
	shift
	# shellcheck disable=SC2086
	$check_png "$file" "$@" || fail "$file: pixels differ"
}

case $case_name in
text)
	boot t text
	expect_code 0 "$modvm" ctl "$work/t.sock" screendump "$work/t.png"
	expect_out '"bytes"'
	# shellcheck disable=SC2086
	pixels "$work/t.png" $text_pixels
	# an unchanged screen is the same picture
	expect_code 0 "$modvm" ctl "$work/t.sock" screendump "$work/t2.png"
	check "a second screendump is the same" cmp -s "$work/t.png" "$work/t2.png"
	# no file descriptor, a path that cannot be made: clear errors
	expect_fail "screendump needs one FILE" "$modvm" ctl "$work/t.sock" screendump
	out=$(python3 - "$work/t.sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b'{"execute": "screendump"}\n')
print(s.makefile().readline())
PY
)
	expect_out "screendump writes to a file descriptor passed with the request"
	expect_fail "cannot create $work/no/such/dir.png" "$modvm" ctl "$work/t.sock" screendump "$work/no/such/dir.png"
	quit t
	;;
fb)
	boot f fb
	expect_code 0 "$modvm" ctl "$work/f.sock" screendump "$work/f.png"
	# shellcheck disable=SC2086
	pixels "$work/f.png" $fb_pixels
	quit f
	;;
bad)
	# absurd modes and writes past VRAM first: the VM lives on and
	# shows the good mode set after them
	boot b bad
	expect_code 0 "$modvm" ctl "$work/b.sock" screendump "$work/b.png"
	# shellcheck disable=SC2086
	pixels "$work/b.png" $fb_pixels
	quit b
	;;
snapshot)
	# a resumed VM shows the same screen: registers and VRAM are state
	mkdir "$work/snaps"
	boot s fb --snapshot-dir "$work/snaps"
	expect_code 0 "$modvm" ctl "$work/s.sock" snapshot s1
	quit s
	check "snapshot has the VRAM section" test -n "$(ls "$work/snaps/s1" | grep -i vga)"
	"$modvm" resume "$work/snaps/s1" --control "$work/r.sock" >"$work/r.out" 2>&1 &
	pid=$!
	pids+=("$pid")
	wait_running "$work/r.sock"
	expect_code 0 "$modvm" ctl "$work/r.sock" screendump "$work/r.png"
	# shellcheck disable=SC2086
	pixels "$work/r.png" $fb_pixels
	quit r
	;;
fuse)
	[ -w /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
	mkdir "$work/mnt"
	boot m text --mount "$work/mnt"
	check "screen.png is listed" grep -qx "screen.png" <(ls "$work/mnt")
	cp "$work/mnt/screen.png" "$work/m.png"
	# shellcheck disable=SC2086
	pixels "$work/m.png" $text_pixels
	quit m
	;;
*)
	echo "unknown case $case_name"
	exit 2
	;;
esac
summarize
