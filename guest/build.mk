# guest/: our two guests. Both are built by scripts into a cache outside the repo
# (~/.cache/thaw, keyed by a hash of their inputs); `make -s guest-env` prints where.
guests:
	$(Q)guest/env.sh >/dev/null

guest-env:
	@guest/env.sh

.PHONY: guests guest-env
