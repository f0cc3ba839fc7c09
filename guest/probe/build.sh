#!/bin/sh
# Builds the probe guest into ~/.cache/thaw/probe/<hash>/ (hash of the sources, this script
# and the compiler version), reusing an existing build at once. Prints exactly one line on
# stdout: THAW_PROBE=<abs path of probe.elf>. The host checksum tool `probesum` is built
# into the same directory.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
CC=${CC:-gcc}
srcs="build.sh layout.h hw.h entry.S probe.c probe.ld.S probesum.c"
hash=$( { for f in $srcs; do echo "== $f"; cat "$f"; done; $CC --version | head -1; } |
	sha256sum | cut -c1-16)
cache=${HOME:?}/.cache/thaw/probe
out=$cache/$hash
if [ -f "$out/probe.elf" ] && [ -x "$out/probesum" ]; then
	echo "THAW_PROBE=$out/probe.elf"
	exit 0
fi
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
CFLAGS="-std=gnu11 -O2 -g -ffreestanding -fno-builtin -nostdlib -static -fno-pic -no-pie
	-mno-red-zone -mgeneral-regs-only -fno-stack-protector -fcf-protection=none
	-fno-asynchronous-unwind-tables -fno-tree-loop-distribute-patterns --param=min-pagesize=0
	-Wall -Wextra -Werror -Wno-unused-parameter"
# CFLAGS is split into words on purpose.
# shellcheck disable=SC2086
{
	$CC -E -P -x c -I. probe.ld.S -o "$tmp/probe.ld"
	$CC $CFLAGS -I. -c entry.S -o "$tmp/entry.o"
	$CC $CFLAGS -I. -c probe.c -o "$tmp/probe.o"
	$CC $CFLAGS -Wl,-T,"$tmp/probe.ld" -Wl,--build-id=none -Wl,-z,max-page-size=4096 \
		-Wl,-z,noexecstack -Wl,--no-warn-rwx-segments "$tmp/entry.o" "$tmp/probe.o" -o "$tmp/probe.elf"
	$CC -std=gnu11 -O2 -Wall -Wextra -Werror probesum.c -o "$tmp/probesum"
} 1>&2
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "THAW_PROBE=$out/probe.elf"
