#!/usr/bin/env bash
# Fetches Debian's amd64 kernel and busybox-static with `apt-get download`,
# keeps the packages in a cache, and puts vmlinuz, busybox and the virtio (and
# ext4) modules into the output folder that mkinitramfs.sh builds from.
#
#   tests/guests/linux/fetch.sh [OUTDIR]      default OUTDIR: build/guests/linux
#
# Environment:
#   MODVM_CACHE      download cache (default $HOME/.cache/modvm); the packages
#                    go to $MODVM_CACHE/linux/debs, unpacked trees beside them
#   MODVM_LINUX_PKG  kernel package to use, e.g. linux-image-6.1.0-56-amd64
#                    (default: what Debian's linux-image-amd64 depends on)
#
# Packages are unpacked with dpkg-deb -x, never installed. Running it again
# downloads nothing that is cached, and rewrites OUTDIR only when it changed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
out=${1:-$repo/build/guests/linux}
cache=${MODVM_CACHE:-$HOME/.cache/modvm}/linux
debs=$cache/debs

# The modules the later virtio-pci issues need, plus ext4 for the "disk"
# script. Their dependencies are added from each module's own depends= field
# (Debian ships no modules.dep: depmod runs at install time). crc32c_generic
# is ext4's soft dependency (softdep pre: crc32c), which depends= omits.
root_modules="virtio_pci virtio_blk virtio_net crc32c_generic ext4"

say() { printf 'fetch: %s\n' "$*" >&2; }
die() { printf 'fetch: error: %s\n' "$*" >&2; exit 1; }

# The newest package matching a glob in the cache, or nothing.
cached_deb() {
	local f
	# $1 is a glob: unquoted on purpose.
	# shellcheck disable=SC2086,SC2012
	f=$(ls -1 "$debs"/$1 2>/dev/null | sort -V | tail -n 1) || true
	printf '%s' "$f"
}

# Debian's current default kernel: the dependency of linux-image-amd64
# (the signed package, which holds /boot/vmlinuz-<abi>-amd64).
resolve_kernel_pkg() {
	if [ -n "${MODVM_LINUX_PKG:-}" ]; then
		printf '%s' "$MODVM_LINUX_PKG"
		return
	fi
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9.]*-[0-9]*-amd64\)$/\1/p' |
		sort -V | tail -n 1
}

# apt-get download PKG into the cache, unless a matching .deb is there.
download() {
	local pkg=$1 glob=$2 tmp
	if [ -n "$(cached_deb "$glob")" ]; then
		say "cached: $(basename "$(cached_deb "$glob")")"
		return
	fi
	say "downloading $pkg into $debs"
	tmp=$(mktemp -d "$debs/.dl.XXXXXX")
	# apt-get writes into the current directory; a temporary one keeps a
	# half-downloaded file out of the cache.
	# As root, apt hands the download to the _apt user, who cannot write
	# into a private cache such as /root/.cache: keep it as root.
	if ! (cd "$tmp" && apt-get download "${apt_opts[@]}" "$pkg"); then
		rm -rf "$tmp"
		die "apt-get download $pkg failed (run apt-get update first?)"
	fi
	mv "$tmp"/*.deb "$debs"/
	rmdir "$tmp"
}

# Unpack a .deb once into $cache/unpacked/<deb name>.
unpack() {
	local deb=$1 dir
	dir=$cache/unpacked/$(basename "$deb" .deb)
	if [ ! -e "$dir/.done" ]; then
		say "unpacking $(basename "$deb")"
		rm -rf "$dir"
		mkdir -p "$dir"
		dpkg-deb -x "$deb" "$dir"
		touch "$dir/.done"
	fi
	printf '%s' "$dir"
}

# The path of module NAME (.ko, .ko.xz or .ko.zst) in the unpacked tree;
# the kernel treats '-' and '_' in module names alike.
find_module() {
	local name=$1 alt
	alt=$(printf '%s' "$name" | tr _ -)
	find "$moddir" \( -name "$name.ko*" -o -name "$alt.ko*" \) | head -n 1
}

# The uncompressed ELF vmlinux inside the bzImage: the xz stream that starts
# at the first xz magic (FD 37 7A 58 5A 00). Debian's kernel has CONFIG_PVH,
# so this ELF can be entered directly through its PVH note (QEMU: -kernel
# vmlinux), skipping the decompressor, the slowest part of an emulated boot.
extract_vmlinux() {
	local off
	off=$(LC_ALL=C grep -m 1 -obUaP '\xfd\x37\x7a\x58\x5a\x00' "$1" | cut -d : -f 1) || true
	[ -n "$off" ] || die "no xz stream in $1 (not CONFIG_KERNEL_XZ?)"
	# xz stops after the stream and tail may then die of SIGPIPE: the ELF
	# check below decides.
	tail -c +$((off + 1)) "$1" | xz -dc --single-stream >"$2" 2>/dev/null || true
	[ "$(head -c 4 "$2" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] ||
		die "the xz stream in $1 is not an ELF vmlinux"
}

# Copy a module into the staging folder as a plain .ko: busybox insmod
# loads uncompressed modules only.
stage_module() {
	local src=$1 dst=$2
	case "$src" in
	*.ko) cp "$src" "$dst" ;;
	*.ko.xz) xz -dc "$src" >"$dst" ;;
	*.ko.zst) zstd -qdc "$src" >"$dst" ;;
	*.ko.gz) gzip -dc "$src" >"$dst" ;;
	*) die "unknown module format: $src" ;;
	esac
}

# Depth-first over depends=, so every module follows its dependencies in
# modules/load-order.
declare -A seen=()
order=()
add_module() {
	local name=$1 src deps d
	[ -n "${seen[$name]:-}" ] && return
	seen[$name]=1
	src=$(find_module "$name")
	[ -n "$src" ] || die "module $name is not in $(basename "$kdir")"
	stage_module "$src" "$stage/modules/$name.ko"
	deps=$(tr '\0' '\n' <"$stage/modules/$name.ko" |
		sed -n 's/^depends=//p' | head -n 1 | tr , ' ')
	for d in $deps; do
		add_module "$(printf '%s' "$d" | tr - _)"
	done
	order+=("$name")
}

command -v dpkg-deb >/dev/null || die "dpkg-deb is needed (Debian or Ubuntu host)"
mkdir -p "$debs"
apt_opts=()
[ "$(id -u)" != 0 ] || apt_opts=(-o APT::Sandbox::User=root)

pkg=$(resolve_kernel_pkg)
if [ -z "$pkg" ] && [ "$(id -u)" = 0 ] && [ -z "$(cached_deb 'linux-image-*-amd64_*.deb')" ]; then
	say "apt knows no linux-image-amd64: running apt-get update"
	apt-get update -qq || die "apt-get update failed"
	pkg=$(resolve_kernel_pkg)
fi
if [ -z "$pkg" ]; then
	deb=$(cached_deb 'linux-image-*-amd64_*.deb')
	[ -n "$deb" ] || die "no kernel package known: run apt-get update, or set MODVM_LINUX_PKG"
	pkg=$(basename "$deb" | sed 's/_.*//')
	say "apt knows no linux-image-amd64; using the cached $pkg"
fi
case "$pkg" in
linux-image-*-amd64) ;;
*) die "$pkg: expected linux-image-<version>-amd64" ;;
esac
say "kernel package: $pkg"

download "$pkg" "${pkg}_*.deb"
download busybox-static 'busybox-static_*.deb'

kdir=$(unpack "$(cached_deb "${pkg}_*.deb")")
bdir=$(unpack "$(cached_deb 'busybox-static_*.deb')")
abi=${pkg#linux-image-}
vmlinuz=$kdir/boot/vmlinuz-$abi
moddir=$kdir/lib/modules/$abi
[ -f "$vmlinuz" ] || die "$vmlinuz missing (an -unsigned or meta package?)"
[ -d "$moddir" ] || die "$moddir missing"
[ -x "$bdir/bin/busybox" ] || die "busybox missing in $bdir"

stage=$(mktemp -d "$cache/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/modules"
cp "$vmlinuz" "$stage/vmlinuz"
if [ ! -f "$kdir/vmlinux.elf" ]; then
	say "extracting vmlinux (uncompressed ELF) from the bzImage"
	extract_vmlinux "$vmlinuz" "$kdir/vmlinux.tmp"
	mv "$kdir/vmlinux.tmp" "$kdir/vmlinux.elf"
fi
cp "$kdir/vmlinux.elf" "$stage/vmlinux"
cp "$kdir/boot/config-$abi" "$stage/config"
cp "$bdir/bin/busybox" "$stage/busybox"
for m in $root_modules; do
	add_module "$m"
done
printf '%s\n' "${order[@]}" >"$stage/modules/load-order"
{
	printf 'kernel %s %s\n' "$pkg" "$(dpkg-deb -f "$(cached_deb "${pkg}_*.deb")" Version)"
	printf 'busybox busybox-static %s\n' \
		"$(dpkg-deb -f "$(cached_deb 'busybox-static_*.deb')" Version)"
} >"$stage/VERSION"

mkdir -p "$out"
if [ -f "$out/VERSION" ] && diff -rq "$stage" "$out" \
	-x initrd.gz -x initramfs -x '*.log' >/dev/null 2>&1; then
	say "up to date: $out ($(head -n 1 "$out/VERSION"))"
	exit 0
fi
say "writing $out"
rm -rf "$out/modules"
cp -r "$stage"/. "$out"/
say "vmlinuz: $(stat -c %s "$out/vmlinuz") bytes, $(head -n 1 "$out/VERSION")"
say "modules (load order): $(tr '\n' ' ' <"$out/modules/load-order")"
