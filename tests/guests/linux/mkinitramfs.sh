#!/usr/bin/env bash
# Builds the Linux test guest's initramfs (cpio newc, gzip) from busybox-static,
# the files in rootfs/ (/init and /scripts) and the modules fetch.sh staged.
#
#   tests/guests/linux/mkinitramfs.sh [OUTDIR]   default OUTDIR: build/guests/linux
#
# Runs fetch.sh first when OUTDIR has no kernel yet. Writes OUTDIR/initrd.gz.
# The archive is written here, not by cpio(1): every entry is owned by root
# with mtime 0 and the /dev/console node is included without needing root,
# so the same inputs always give the same bytes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
out=${1:-$repo/build/guests/linux}

say() { printf 'mkinitramfs: %s\n' "$*" >&2; }
die() { printf 'mkinitramfs: error: %s\n' "$*" >&2; exit 1; }

if [ ! -f "$out/vmlinuz" ] || [ ! -x "$out/busybox" ]; then
	say "no kernel in $out yet: running fetch.sh"
	"$here/fetch.sh" "$out"
fi

# --- cpio newc writer (the format the kernel unpacks, see
# Documentation/driver-api/early-userspace/buffer-format.rst) ---
ino=0
pad() { head -c $(((4 - $1 % 4) % 4)) /dev/zero; }

# entry NAME MODE(hex, with type bits) SIZE RDEVMAJ RDEVMIN
# The entry's data, if any, is written by the caller right after.
entry() {
	local name=$1 mode=$2 size=$3 nlink=1 namesize
	namesize=$((${#name} + 1))
	ino=$((ino + 1))
	[ $((0x$mode & 0xF000)) -ne $((0x4000)) ] || nlink=2
	printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
		$ino $((0x$mode)) 0 0 $nlink 0 "$size" 0 0 "$4" "$5" $namesize 0
	printf '%s\0' "$name"
	pad $((110 + namesize))
}

# The staged tree, parents before children, then the trailer.
write_cpio() {
	local root=$1 path name mode size target
	entry dev 41ed 0 0 0
	entry dev/console 2180 0 5 1 # crw------- 5,1: init's first stdio
	(cd "$root" && find . -mindepth 1 | LC_ALL=C sort) | while read -r path; do
		name=${path#./}
		mode=$(stat -c %f "$root/$name")
		if [ -L "$root/$name" ]; then
			target=$(readlink "$root/$name")
			entry "$name" "$mode" ${#target} 0 0
			printf '%s' "$target"
			pad ${#target}
		elif [ -d "$root/$name" ]; then
			entry "$name" "$mode" 0 0 0
		else
			size=$(stat -c %s "$root/$name")
			entry "$name" "$mode" "$size" 0 0
			cat "$root/$name"
			pad "$size"
		fi
	done
	entry TRAILER!!! 0 0 0 0
}

stage=$(mktemp -d "$out/.initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT
chmod 755 "$stage"

mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,proc,sys,tmp,mnt,etc/modvm,lib/modules}
chmod 1777 "$stage/tmp"
cp "$out/busybox" "$stage/bin/busybox"
chmod 755 "$stage/bin/busybox"
# One relative symlink per applet, where Debian's busybox puts it.
"$out/busybox" --list-full | while read -r applet; do
	case "$applet" in
	bin/busybox | "") continue ;;
	esac
	[ -e "$stage/$applet" ] && continue
	mkdir -p "$stage/$(dirname "$applet")"
	rel=$(printf '%s' "$(dirname "$applet")" | sed 's|[^/][^/]*|..|g')
	ln -s "$rel/bin/busybox" "$stage/$applet"
done
cp -r "$here/rootfs"/. "$stage"/
chmod 755 "$stage/init" "$stage"/scripts/*
# The guest-side programs of tests/guests/linux/tools, static (glibc's
# libc.a, Debian libc6-dev); without a compiler the tests that need them
# skip and say so.
for t in "$here"/tools/*.c; do
	if ! ${CC:-cc} -static -Os -s -Wall -Wextra -Werror -o "$stage/bin/$(basename "$t" .c)" "$t"; then
		say "cannot build $(basename "$t") (a C compiler and a static libc): left out"
		rm -f "$stage/bin/$(basename "$t" .c)"
	fi
done
cp "$out"/modules/*.ko "$out/modules/load-order" "$stage/lib/modules/"

# Results the guest compares with, computed on the host from the same bytes.
seq 1 100000 | sha256sum | cut -d ' ' -f 1 >"$stage/etc/modvm/seq-sha256"
head -c $((64 << 20)) /dev/zero | sha256sum | cut -d ' ' -f 1 \
	>"$stage/etc/modvm/zero64-sha256"
cp "$out/VERSION" "$stage/etc/modvm/VERSION"

say "writing $out/initrd.gz"
write_cpio "$stage" | gzip -9 -n >"$out/initrd.gz.tmp"
mv "$out/initrd.gz.tmp" "$out/initrd.gz"
say "initrd.gz: $(stat -c %s "$out/initrd.gz") bytes, $(find "$stage" -mindepth 1 | wc -l) entries + /dev/console"
