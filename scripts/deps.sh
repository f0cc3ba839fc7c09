#!/bin/sh
# Install the Debian packages thaw needs to build, test and run its guests.
# Root: installs what is missing. Not root: prints the exact apt-get line and fails.
# containerd, podman, runc, crun, conmon, umoci, skopeo: thaw-oci's tests with the real
# engines and its benchmark series (docs/oci.md).
set -eu
pkgs="build-essential pkg-config liburing-dev libseccomp-dev libcap-dev libjson-c-dev
libcmocka-dev libhttp-parser-dev systemtap-sdt-dev linux-source-6.1 bc flex bison
libelf-dev libssl-dev xz-utils cpio busybox-static e2fsprogs qemu-system-x86 qemu-utils iproute2
curl gnuplot-nox clang libclang-rt-14-dev linux-perf acpica-tools
containerd podman runc crun conmon umoci skopeo"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "thaw: missing packages; as root run:" >&2
	echo "  apt-get update && apt-get install -y$missing" >&2
	exit 1
fi
echo "thaw: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq $missing >/dev/null
