# restore/: the snapshot file format library (libsnap.a) and the thaw-snap tool.
SNAP_SRCS := \
	restore/crc32c.c \
	restore/snap_write.c \
	restore/snap_read.c \
	restore/snap_codec.c \
	restore/snap_host.c \
	restore/snap_merge.c

LIBS += $(B)/libsnap.a
$(B)/libsnap.a: $(SNAP_SRCS:%.c=$(B)/%.o)

PROGRAMS += $(B)/thaw-snap
$(B)/thaw-snap: $(B)/restore/thaw_snap.o
	$(link)

# Not a shipped program: measures snap_writer_commit on 256 MiB (make bench-snap-write).
$(B)/bench-snap-write: $(B)/restore/bench_write.o $(B)/libsnap.a $(B)/libvmm.a
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -ljson-c

bench-snap-write: $(B)/bench-snap-write
	$(B)/bench-snap-write

# libFuzzer target for the reader. `make fuzz-snap` builds it, writes seed snapshots and
# runs a bounded session (FUZZ_RUNS inputs); a crash fails the target.
FUZZ_CC    ?= clang
FUZZ_FLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -I. -fsanitize=fuzzer,address,undefined
FUZZ_SNAP  := build-fuzz/snap_fuzz
FUZZ_RUNS  ?= 20000
SNAP_FUZZ_DEPS := $(SNAP_SRCS) vmm/log.c restore/snapshot.h restore/snap_internal.h

$(FUZZ_SNAP): tests/fuzz/snap_fuzz.c $(SNAP_FUZZ_DEPS)
	$(call msg,FUZZ,$@)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz/snap_fuzz.c $(SNAP_SRCS) vmm/log.c -ljson-c

build-fuzz/snap-seed: tests/fuzz/snap_seed.c $(SNAP_FUZZ_DEPS)
	$(call msg,CC,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) -std=gnu11 -O1 -g -D_GNU_SOURCE -I. -o $@ tests/fuzz/snap_seed.c $(SNAP_SRCS) vmm/log.c -ljson-c -pthread

fuzz-snap: $(FUZZ_SNAP) build-fuzz/snap-seed
	@mkdir -p build-fuzz/snap-corpus
	$(Q)build-fuzz/snap-seed build-fuzz/snap-corpus
	$(Q)$(FUZZ_SNAP) -runs=$(FUZZ_RUNS) -max_len=65536 -seed=1 -print_final_stats=1 build-fuzz/snap-corpus

.PHONY: bench-snap-write fuzz-snap
