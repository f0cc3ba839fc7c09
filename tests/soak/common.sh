# Sourced by tests/soak/soak.sh and idle.sh: what both need before their first cycle.
# $me names the script in messages.

# soak_setup BUILD: THAW, UFFD, SPAWN (absolute paths in BUILD), the guests' env
# (THAW_PROBE), /dev/kvm; exits 2 when one is missing.
soak_setup() {
	THAW=$(realpath -m -- "$1/thaw") UFFD=$(realpath -m -- "$1/thaw-uffd") SPAWN=$(realpath -m -- "$1/bench/spawn")
	for p in "$THAW" "$UFFD" "$SPAWN"; do
		[[ -x $p ]] || { echo "$me: $p missing (make $1/thaw $1/thaw-uffd $1/bench/spawn)" >&2 && exit 2; }
	done
	if [[ -z ${THAW_PROBE:-} ]]; then
		eval "$(guest/env.sh)" || { echo "$me: building the guests failed" >&2 && exit 2; }
	fi
	[[ -c /dev/kvm ]] || { echo "$me: no /dev/kvm (run it through tests/kvmhost/run.sh)" >&2 && exit 2; }
}

# soak_workdir: W, a new work directory (the caller removes it), with copies of the
# programs in W/bin that THAW, UFFD and SPAWN then name: in the nested host the build
# directory is a 9p export, and an exec from there costs 0.25 s against 0.1 s from the
# VM's tmpfs (tests/soak/README.md, "Why a nested cycle was slow").
soak_workdir() {
	W=$(mktemp -d "${TMPDIR:-/tmp}/thaw-$me.XXXXXX") || exit 2
	mkdir "$W/bin" && cp -- "$THAW" "$UFFD" "$SPAWN" "$W/bin/" || exit 2
	THAW=$W/bin/thaw UFFD=$W/bin/thaw-uffd SPAWN=$W/bin/spawn
}

# soak_snapshot MIB VCPUS: S, a snapshot of the probe booted with them, in W; exits 1
# when making it failed.
soak_snapshot() {
	S=$W/probe.snap
	if ! timeout 300 "$THAW" --kernel "$THAW_PROBE" --mem-mib "$1" --vcpus "$2" --snapshot "$S" \
		--snapshot-after THAW_PROBE_READY --snapshot-then exit </dev/null >/dev/null 2>"$W/snap.err"; then
		echo "$me: making the probe snapshot failed: $(tail -n 1 "$W/snap.err")" >&2
		exit 1
	fi
}

# soak_handler SOCK: starts thaw-uffd serving S on SOCK in the background (its pid in
# hpid, its output in W/uffd.out and W/uffd.err); returns 1 when it is not ready in 60 s.
soak_handler() {
	local k
	rm -f -- "$1"
	"$UFFD" --socket "$1" --snapshot "$S" >"$W/uffd.out" 2>"$W/uffd.err" &
	hpid=$!
	for ((k = 0; k < 600; k++)); do
		grep -q '^THAW_UFFD_READY' "$W/uffd.out" && return 0
		sleep 0.1
	done
	return 1
}
