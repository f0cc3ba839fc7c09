#!/bin/sh
# Builds (if needed) and prints THAW_KERNEL=, THAW_INITRD=, THAW_PROBE= lines.
set -eu
cd "$(dirname "$0")"
[ -x linux/build.sh ] && linux/build.sh
[ -x probe/build.sh ] && probe/build.sh
exit 0
