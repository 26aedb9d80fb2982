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

# config NAME MODE [VGA-PROPS]: a VM with COM1 to NAME.serial, a vga-std
# (with VGA-PROPS) and an i8042 with keyboard and mouse.
config() {
	cat >"$work/$1.cfg" <<CFG
vm: {
  name = "$1";
  memory = "32M";
  cpu = { engine = "cpu-bt"; };
  boot = { kernel = "$guest"; cmdline = "mode=$2"; };
  devices = ( { plugin = "serial-16550"; id = "com1"; backend = "file";
                path = "$work/$1.serial"; append = false; },
              { plugin = "i8042"; id = "kbc"; keyboard = true; mouse = true; },
              { plugin = "vga-std"; id = "vga"; ${3:-} } );
};
CFG
}

# A free TCP port on 127.0.0.1 (the kernel's pick; free a moment later).
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

need_vnc() {
	[ -f "$build/plugins/display-vnc.so" ] || { echo "SKIP: display-vnc not built (libvncserver-dev)"; exit 77; }
	command -v vncsnapshot >/dev/null || { echo "SKIP: no vncsnapshot (scripts/deps.sh)"; exit 77; }
	command -v djpeg >/dev/null || { echo "SKIP: no djpeg (libjpeg-turbo-progs)"; exit 77; }
}

# jpeg_pixels FILE WxH X,Y=RRGGBB...: vncsnapshot writes JPEG (quality
# 100): decode with djpeg and allow a small error per component.
jpeg_pixels() {
	checks=$((checks + 1))
	local file=$1
	shift
	djpeg -pnm "$file" >"$file.ppm" || { fail "$file: not a JPEG"; return; }
	python3 - "$file.ppm" "$@" <<'PY' || fail "$file: pixels differ"
import sys
data = open(sys.argv[1], "rb").read()
magic, dims, maxval, px = data.split(b"\n", 3)
w, h = map(int, dims.split())
want_w, want_h = map(int, sys.argv[2].split("x"))
if (w, h) != (want_w, want_h):
    sys.exit(f"{w}x{h}, expected {want_w}x{want_h}")
bad = 0
for spec in sys.argv[3:]:
    pos, colour = spec.split("=")
    x, y = map(int, pos.split(","))
    got = px[(y * w + x) * 3:(y * w + x) * 3 + 3]
    want = bytes.fromhex(colour)
    if any(abs(a - b) > 12 for a, b in zip(got, want)):
        print(f"pixel {x},{y} is {got.hex()}, expected {colour}")
        bad += 1
sys.exit(1 if bad else 0)
PY
}

# Quadrant centres, away from the edges JPEG blurs.
vnc_fb_pixels="640x480 100,100=FF0000 500,100=00FF00 100,400=0000FF 500,400=FFFFFF"


# boot NAME MODE [ARGS...]: start it, wait for "display: ready". VGA
# properties come from $vga_props.
boot() {
	local name=$1 mode=$2
	shift 2
	config "$name" "$mode" "${vga_props:-}"
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

# The text checks read glyphs (0xDB, the full block) of the default font.
need_font() {
	[ -f /usr/share/consolefonts/Uni2-VGA16.psf.gz ] ||
		{ echo "SKIP: no /usr/share/consolefonts/Uni2-VGA16.psf.gz (console-setup-linux, scripts/deps.sh)"; exit 77; }
}

case $case_name in
text)
	need_font
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
	need_font
	[ -w /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
	mkdir "$work/mnt"
	boot m text --mount "$work/mnt"
	check "screen.png is listed" grep -qx "screen.png" <(ls "$work/mnt")
	cp "$work/mnt/screen.png" "$work/m.png"
	# shellcheck disable=SC2086
	pixels "$work/m.png" $text_pixels
	quit m
	;;
vnc)
	# a real VNC client (vncsnapshot) gets the same picture, twice (two
	# clients, one after the other; a third while a second is connected)
	need_vnc
	port=$(free_port)
	vga_props="display = \"vnc\"; vnc-listen = \"127.0.0.1:$port\";"
	boot v fb
	expect_code 0 timeout 10 vncsnapshot -quiet 127.0.0.1::$port "$work/v1.jpg"
	jpeg_pixels "$work/v1.jpg" $vnc_fb_pixels
	python3 "$src/tests/integration/display/rfbclient.py" 127.0.0.1 "$port" keys "" &
	held=$!
	expect_code 0 timeout 10 vncsnapshot -quiet 127.0.0.1::$port "$work/v2.jpg"
	jpeg_pixels "$work/v2.jpg" $vnc_fb_pixels
	wait "$held"
	quit v
	;;
vnc-password)
	need_vnc
	port=$(free_port)
	vga_props="display = \"vnc\"; vnc-listen = \"127.0.0.1:$port\"; vnc-password = \"s3cret\";"
	boot p fb
	check "password file" "$build/tests/integration/display/vncpasswd" s3cret "$work/good.pw"
	check "wrong password file" "$build/tests/integration/display/vncpasswd" wrong "$work/bad.pw"
	expect_code 0 timeout 10 vncsnapshot -quiet -passwd "$work/good.pw" 127.0.0.1::$port "$work/p.jpg"
	jpeg_pixels "$work/p.jpg" $vnc_fb_pixels
	checks=$((checks + 1))
	if timeout 10 vncsnapshot -quiet -passwd "$work/bad.pw" 127.0.0.1::$port "$work/bad.jpg" >/dev/null 2>&1; then
		fail "a wrong password got a picture"
	fi
	# a client without a password is refused too (no security type None)
	checks=$((checks + 1))
	python3 "$src/tests/integration/display/rfbclient.py" 127.0.0.1 "$port" keys "" >/dev/null 2>&1 &&
		fail "a client without the password got in"
	expect_code 0 "$modvm" ctl "$work/p.sock" status
	quit p
	;;
vnc-keys)
	# keys typed at a VNC client reach the guest as PS/2 scan codes
	need_vnc
	port=$(free_port)
	vga_props="display = \"vnc\"; vnc-listen = \"127.0.0.1:$port\";"
	boot k keys
	check "typing through VNC" python3 "$src/tests/integration/display/rfbclient.py" 127.0.0.1 "$port" keys "a1"
	for _ in $(seq 100); do
		[ "$(grep -c '^key ' "$work/k.serial")" -ge 4 ] && break
		sleep 0.05
	done
	out=$(grep '^key ' "$work/k.serial" | tr '\n' ' ')
	# set 1 (the controller translates): a down 1E, up 9E; 1 down 02, up 82
	expect_out "key 1E key 9E key 02 key 82"
	quit k
	;;
vnc-garbage)
	# hostile clients: the VM and the server live on and serve the next
	need_vnc
	port=$(free_port)
	vga_props="display = \"vnc\"; vnc-listen = \"127.0.0.1:$port\";"
	boot g fb
	for seed in 1 2 3; do
		python3 "$src/tests/integration/display/rfbclient.py" 127.0.0.1 "$port" garbage "$seed" >/dev/null 2>&1
	done
	# a client that connects and says nothing, one that stops half-way
	exec 3<>/dev/tcp/127.0.0.1/"$port"
	printf 'RFB 003.008\n\001' >&3
	expect_code 0 "$modvm" ctl "$work/g.sock" status
	expect_code 0 timeout 10 vncsnapshot -quiet 127.0.0.1::$port "$work/g.jpg"
	jpeg_pixels "$work/g.jpg" $vnc_fb_pixels
	exec 3>&-
	quit g
	;;
*)
	echo "unknown case $case_name"
	exit 2
	;;
esac
summarize
