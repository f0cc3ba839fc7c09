#!/bin/sh
# Builds a small ext4 root filesystem image with busybox, for hosts where guest
# user space runs (boot with root=/dev/vda rw, without thaw_agent.hold_init),
# and prints:
#   THAW_ROOTFS=/abs/path/rootfs.ext4
# Nothing else goes to stdout.  Keyed by busybox, initramfs/init and this
# script; an existing image is reused.  The image's /sbin/init is the same
# line-protocol script as the initramfs's /init (see AGENT.md).
# The whole script is one function, read completely before it runs, so
# editing this file while an instance runs (or waits for the lock) cannot
# make that instance execute a mix of old and new lines.
main() {
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cache=${THAW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/thaw}/linux
busybox=/bin/busybox
size_mib=32

die() { echo "thaw guest/linux rootfs: error: $*" >&2; exit 1; }
[ -x "$busybox" ] || die "$busybox not found; run: apt-get install -y busybox-static"
command -v mkfs.ext4 >/dev/null 2>&1 || die "mkfs.ext4 not found; run: apt-get install -y e2fsprogs"

key=$({
	sha256sum <"$busybox"
	sha256sum <"$here/initramfs/init"
	sha256sum <"$here/rootfs.sh"
} | sha256sum | cut -c1-16)
img=$cache/rootfs-$key.ext4
if [ ! -f "$img" ]; then
	mkdir -p "$cache"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	root=$tmp/root
	mkdir -p "$root/bin" "$root/sbin" "$root/dev" "$root/proc" "$root/sys" \
		"$root/tmp" "$root/root" "$root/etc" "$root/mnt"
	chmod 1777 "$root/tmp"
	cp "$busybox" "$root/bin/busybox"
	ln -s busybox "$root/bin/sh"
	cp "$here/initramfs/init" "$root/sbin/init"
	chmod 0755 "$root/sbin/init"
	ln -s sbin/init "$root/init"
	# /dev stays empty: the kernel mounts devtmpfs there (DEVTMPFS_MOUNT).
	mkfs.ext4 -q -F -L thaw-root -E root_owner=0:0 -d "$root" "$tmp/img" "${size_mib}M" >&2 ||
		die "mkfs.ext4 failed"
	mv "$tmp/img" "$img"
	# Images built from older inputs are 32 MiB each and never used again.
	for old in "$cache"/rootfs-*.ext4; do
		[ "$old" = "$img" ] || rm -f "$old"
	done
	echo "thaw guest/linux rootfs: built $img" >&2
fi
echo "THAW_ROOTFS=$img"
}

main "$@"
exit $?
