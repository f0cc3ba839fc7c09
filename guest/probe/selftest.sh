#!/bin/sh
# Boots the probe guest under QEMU TCG (microvm) with 1 and 2 CPUs and checks every
# request, the checksums against the host tool and a mid-computation snapshot/restore.
# Prints PASS/FAIL lines; exit status 0 only if all pass.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
command -v qemu-system-x86_64 >/dev/null || { echo "FAIL: qemu-system-x86_64 not installed"; exit 1; }
elf=$("$here/build.sh" | sed -n 's/^THAW_PROBE=//p')
[ -f "$elf" ] || { echo "FAIL: probe build"; exit 1; }
exec python3 "$here/selftest.py" "$elf" "$(dirname "$elf")/probesum"
