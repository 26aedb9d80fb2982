#!/usr/bin/env bash
# Installs the Debian 12 packages modvm needs to build and test. Idempotent;
# run as root (or with sudo available).
set -euo pipefail
packages=(
	build-essential cmake pkg-config
	libconfig-dev libcunit1-dev libfuse3-dev fuse3 zlib1g-dev libjansson-dev
	libseccomp-dev     # the sandbox (core/sandbox.c)
	nasm clang libclang-rt-14-dev
	xorriso       # El Torito ISO images for the firmware CD-ROM boot tests
	qemu-utils    # qemu-img, qemu-nbd: outside judges and NBD servers in tests
	qemu-system-x86 # QEMU TCG: the reference guests and benchmarks compare with
	libnbd-dev nbdkit  # the NBD block backend and a server for its tests
	libslirp-dev       # the net-user backend (user-mode networking)
	e2fsprogs fdisk    # mke2fs/debugfs/e2fsck and sfdisk for the disk tests
	lcov               # scripts/coverage.sh
	libpng-dev         # PNG screendumps (core/display.c)
	console-setup-linux # the console font vga-std draws text mode with
	libvncserver-dev   # display-vnc, the VNC front end
	vncsnapshot libjpeg-turbo-progs # display/vnc* tests: a real VNC client, djpeg for its JPEG
)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#packages[@]} packages present"
	exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
echo "deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
