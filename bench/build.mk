# bench/: the benchmark harness (bench/README.md). Two small programs of ours:
#   floor  the kernel work a restore cannot avoid, timed (the ratio's denominator)
#   spawn  starts a VMM and times process start to the guest's first answer
#   flood  API GET / latency, idle and while the guest floods each virtio device
#   fleet  clone requests to a running thaw-pool: latency, bursts, sustained rate
# `make bench` runs bench/bench.sh (inside tests/kvmhost/run.sh when /dev/kvm is
# absent) and writes bench/results/<timestamp>/; `make bench-check` is a short run that
# fails when thaw's restore is over 3x the floor or 50% slower than bench/baseline.json.
# floor and bench_jail use none of our libraries; the others list theirs.
BENCH_TOOLS := $(B)/bench/floor $(B)/bench/spawn $(B)/bench/flood $(B)/bench/fleet
PROGRAMS += $(BENCH_TOOLS)

$(B)/bench/floor: $(B)/bench/floor.o
	$(link)

# flood: GET / latency while the probe floods a virtio queue (issue 14).
$(B)/bench/flood: $(B)/bench/flood.o $(API_LINK)
	$(link)

$(B)/bench/spawn: $(B)/bench/spawn.o $(API_LINK)
	$(link)

# fleet: a client of thaw-pool's API (issue 17).
$(B)/bench/fleet: $(B)/bench/fleet.o $(API_LINK)
	$(link)

# BENCH_ARGS passes options to bench/bench.sh (e.g. BENCH_ARGS="--runs 50").
BENCH_ARGS ?=

# The jail series runs the static thaw (a jail holds no libraries) and jailer/bench_jail.
BENCH_NEEDS := $(B)/thaw-static $(B)/thaw-jailer $(B)/bench_jail $(B)/tests/jailer_probe $(B)/thaw-pool

# make test's smoke run has the same series (sanitizer builds cannot link a static
# thaw; the jail series then say why they are left out).
ifeq ($(SAN),1)
bench-needs: $(filter-out $(B)/thaw-static,$(BENCH_NEEDS))
else
bench-needs: $(BENCH_NEEDS)
endif
.PHONY: bench-needs

bench: programs guests $(BENCH_NEEDS)
	$(Q)bench/kvmhost.sh $(B) $(BENCH_ARGS)

bench-check: programs guests
	$(Q)bench/kvmhost.sh $(B) --check $(BENCH_ARGS)

.PHONY: bench bench-check

# Benchmarks of one part each (not shipped).
# Median round trip of GET / on one kept-alive connection (the API overhead figure).
PROGRAMS += $(B)/bench_api
$(B)/bench_api: $(B)/bench/api.o $(API_LINK)
	$(link)
bench-api: $(B)/bench_api
	$(B)/bench_api

# Jail setup time, one at a time and 10 at once.
$(B)/bench_jail: $(B)/bench/jail.o
	$(link)
bench-jail: $(B)/bench_jail $(B)/thaw-jailer $(B)/tests/jailer_probe
	$(Q)$(B)/bench_jail $(B)/thaw-jailer $(B)/tests/jailer_probe

# snap_writer_commit on 256 MiB.
$(B)/bench-snap-write: $(B)/bench/snap_write.o $(SNAP_LINK)
	$(link)
bench-snap-write: $(B)/bench-snap-write
	$(B)/bench-snap-write

# A drive's checkpoints and a restore's overlay, the disk calls alone (issue 20); the
# bench's diskckpt group runs it on a 1 GiB qcow2 with 256 MiB allocated.
PROGRAMS += $(B)/bench-disk-ckpt
$(B)/bench-disk-ckpt: $(B)/bench/disk_ckpt.o $(DISK_LINK)
	$(link)

.PHONY: bench-api bench-jail bench-snap-write
