#!/bin/sh
# Builds the thaw Linux guest once per machine and prints where it is:
#   THAW_KERNEL=/abs/path/vmlinux
#   THAW_INITRD=/abs/path/initramfs.cpio.gz
# Nothing else goes to stdout; progress and errors go to stderr.
#
# Inputs: Debian's linux-source-6.1 (its package version), config.fragment,
# patches/*.patch, agent/*, initramfs/*, busybox and this script.  The output
# directory ~/.cache/thaw/linux/<hash> is keyed by all of them, so a second run
# with the same inputs only prints the paths.  The kernel is compiled in a
# build tree keyed by the source version and the patches alone
# (~/.cache/thaw/linux/src-<hash>), so changing the agent or the fragment is an
# incremental rebuild of seconds, not a fresh 8-minute build.
# The whole script is one function, read completely before it runs, so
# editing this file while an instance runs (or waits for the lock) cannot
# make that instance execute a mix of old and new lines.
main() {
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cache=${THAW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/thaw}/linux
tarball=/usr/src/linux-source-6.1.tar.xz
busybox=/bin/busybox
jobs=2

say() { echo "thaw guest/linux: $*" >&2; }
die() { say "error: $*"; exit 1; }

# --- keys -------------------------------------------------------------------
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || :)
hash_files() { # prints "name sha" for each file given, in order
	for f in "$@"; do
		if [ -f "$f" ]; then
			printf '%s %s\n' "${f#"$here"/}" "$(sha256sum <"$f" | cut -c1-64)"
		fi
	done
}
src_key=$({
	echo "linux-source-6.1 $srcver"
	hash_files "$here"/patches/*.patch
} | sha256sum | cut -c1-16)
out_key=$({
	echo "src $src_key"
	hash_files "$here/config.fragment" "$here"/agent/* "$here"/initramfs/* "$here/build.sh"
	echo "busybox $(sha256sum <"$busybox" 2>/dev/null | cut -c1-64)"
} | sha256sum | cut -c1-16)

out=$cache/$out_key
src=$cache/src-$src_key

print_paths() {
	echo "THAW_KERNEL=$out/vmlinux"
	echo "THAW_INITRD=$out/initramfs.cpio.gz"
}

if [ -f "$out/complete" ]; then
	print_paths
	exit 0
fi

# --- dependencies (only checked when something has to be built) ------------
pkgs="linux-source-6.1 bc flex bison libelf-dev libssl-dev build-essential xz-utils cpio busybox-static"
# shellcheck disable=SC2086
installed=$(dpkg-query -W -f='${Package} ${Status}\n' $pkgs 2>/dev/null |
	awk '/ ok installed$/ { print $1 }')
missing=
for pkg in $pkgs; do
	echo "$installed" | grep -qx "$pkg" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
	die "missing packages; run: apt-get install -y$missing"
fi
[ -r "$tarball" ] || die "$tarball not found (package linux-source-6.1)"
[ -x "$busybox" ] || die "$busybox not found (package busybox-static)"

mkdir -p "$cache"
# One build at a time per machine (make test and make demo may race).
exec 9>"$cache/.lock"
flock 9
if [ -f "$out/complete" ]; then
	print_paths
	exit 0
fi

start=$(date +%s)
log=$cache/build-$out_key.log
: >"$log"
run() { # run a build step quietly, show the log tail if it fails
	if ! "$@" >>"$log" 2>&1; then
		tail -n 40 "$log" >&2
		die "'$*' failed (full log: $log)"
	fi
}

# --- source tree ------------------------------------------------------------
if [ ! -f "$src/.thaw-prepared" ]; then
	# Other trees are 1+ GiB each and keyed by inputs that no longer exist.
	for old in "$cache"/src-*; do
		[ -d "$old" ] && [ "$old" != "$src" ] && rm -rf "$old"
	done
	say "extracting linux-source-6.1 $srcver into $src"
	rm -rf "$src" "$src.tmp"
	mkdir -p "$src.tmp"
	run tar -xJf "$tarball" -C "$src.tmp" --strip-components=1
	for p in "$here"/patches/*.patch; do
		[ -f "$p" ] || continue
		(cd "$src.tmp" && patch -p1 -s --no-backup-if-mismatch <"$p") >>"$log" 2>&1 ||
			die "patch $(basename "$p") does not apply (log: $log)"
	done
	touch "$src.tmp/.thaw-prepared"
	mv "$src.tmp" "$src"
fi

# Copy a file only when it changed, so make does not rebuild needlessly.
sync_file() {
	cmp -s "$1" "$2" 2>/dev/null || cp "$1" "$2"
}
mkdir -p "$src/drivers/thaw"
for f in "$here"/agent/*; do
	sync_file "$f" "$src/drivers/thaw/$(basename "$f")"
done

# The built-in initramfs: /dev/console, and a placeholder /init.  The
# placeholder is there so that, with no initrd and no root=, the kernel does
# not try to mount a root device (and panic) before the agent's hold hook in
# kernel_init runs.  A real initrd given by the VMM replaces /init.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/builtin-init" <<'EOF'
#!/bin/sh
echo "thaw: built-in placeholder /init; boot with thaw_agent.hold_init=1 or an initrd"
EOF
cat >"$tmp/builtin-initramfs.list" <<EOF
dir /dev 0755 0 0
nod /dev/console 0600 0 0 c 5 1
nod /dev/hwrng 0600 0 0 c 10 183
dir /root 0700 0 0
file /init $src/drivers/thaw/builtin-init 0755 0 0
EOF
sync_file "$tmp/builtin-init" "$src/drivers/thaw/builtin-init"
sync_file "$tmp/builtin-initramfs.list" "$src/drivers/thaw/builtin-initramfs.list"

# --- configuration ----------------------------------------------------------
cp "$here/config.fragment" "$tmp/fragment"
echo "CONFIG_INITRAMFS_SOURCE=\"$src/drivers/thaw/builtin-initramfs.list\"" >>"$tmp/fragment"
if ! cmp -s "$tmp/fragment" "$src/.thaw-fragment" || [ ! -f "$src/.config" ]; then
	say "configuring (tinyconfig + config.fragment)"
	cp "$src/.config" "$tmp/old.config" 2>/dev/null || :
	run make -C "$src" tinyconfig
	run sh -c "cd '$src' && scripts/kconfig/merge_config.sh -m .config '$tmp/fragment'"
	run make -C "$src" olddefconfig
	run make -C "$src" olddefconfig
	# Every fragment line must have stuck (a typo or unmet dependency would
	# otherwise silently vanish).
	grep -E '^(CONFIG_|# CONFIG_)' "$tmp/fragment" | while IFS= read -r line; do
		case $line in
		"# CONFIG_"*)
			sym=${line#"# "}
			sym=${sym%% *}
			if grep -q "^$sym=" "$src/.config"; then
				die "config: $sym is set but the fragment wants it off"
			fi
			;;
		*)
			grep -qxF "$line" "$src/.config" ||
				die "config: '$line' did not stick (dependency missing?)"
			;;
		esac
	done
	# Keep make's timestamps when nothing really changed.
	if cmp -s "$src/.config" "$tmp/old.config"; then
		touch -r "$tmp/old.config" "$src/.config" 2>/dev/null || :
	fi
	cp "$tmp/fragment" "$src/.thaw-fragment"
fi

# --- kernel -----------------------------------------------------------------
say "building vmlinux (make -j$jobs; the first build takes ~8 minutes; log: $log)"
run make -C "$src" -j"$jobs" vmlinux
if ! readelf -n "$src/vmlinux" | grep -q 'Xen.*0x00000012'; then
	die "vmlinux has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)"
fi

# --- initramfs (busybox, for hosts where guest user space runs) ------------
cat >"$tmp/initramfs.list" <<EOF
dir /dev 0755 0 0
nod /dev/console 0600 0 0 c 5 1
nod /dev/null 0666 0 0 c 1 3
nod /dev/ttyS0 0600 0 0 c 4 64
dir /bin 0755 0 0
dir /sbin 0755 0 0
dir /proc 0755 0 0
dir /sys 0755 0 0
dir /tmp 1777 0 0
dir /root 0700 0 0
dir /etc 0755 0 0
dir /mnt 0755 0 0
file /bin/busybox $busybox 0755 0 0
slink /bin/sh busybox 0777 0 0
file /init $here/initramfs/init 0755 0 0
EOF
run sh -c "'$src/usr/gen_init_cpio' '$tmp/initramfs.list' | gzip -9n >'$tmp/initramfs.cpio.gz'"

# --- publish ----------------------------------------------------------------
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
cp "$src/vmlinux" "$out.tmp/vmlinux"
cp "$tmp/initramfs.cpio.gz" "$out.tmp/initramfs.cpio.gz"
cp "$src/.config" "$out.tmp/config"
echo "$out_key" >"$out.tmp/complete"
rm -rf "$out"
mv "$out.tmp" "$out"
# Keep the three newest outputs (tests may still use a recent one).
for old in $(ls -1dt "$cache"/[0-9a-f]*[0-9a-f] 2>/dev/null | tail -n +4); do
	case $(basename "$old") in
	????????????????) rm -rf "$old" "$cache/build-$(basename "$old").log" ;;
	esac
done
say "done in $(($(date +%s) - start)) s: $out"
print_paths
}

main "$@"
exit $?
