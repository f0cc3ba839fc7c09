#!/bin/sh
# Builds (if needed) and prints THAW_KERNEL=, THAW_INITRD=, THAW_PROBE=, THAW_ROOTFS= lines.
set -eu
cd "$(dirname "$0")"
[ -x linux/build.sh ] && linux/build.sh
[ -x probe/build.sh ] && probe/build.sh
[ -x linux/rootfs.sh ] && linux/rootfs.sh
exit 0
