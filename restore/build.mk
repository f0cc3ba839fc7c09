# restore/: the snapshot file format library (libsnap.a) and the thaw-snap tool.
SNAP_SRCS := \
	restore/crc32c.c \
	restore/snap_write.c \
	restore/snap_read.c \
	restore/snap_codec.c \
	restore/snap_host.c

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

# libFuzzer target for the reader; `make fuzz-snap` builds it and runs a bounded session.
FUZZ_CC    ?= clang
FUZZ_FLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -I. -fsanitize=fuzzer,address,undefined
FUZZ_SNAP  := build-fuzz/snap_fuzz
FUZZ_RUNS  ?= 20000

$(FUZZ_SNAP): tests/fuzz/snap_fuzz.c $(SNAP_SRCS) vmm/log.c restore/snapshot.h restore/snap_internal.h
	$(call msg,FUZZ,$@)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz/snap_fuzz.c $(SNAP_SRCS) vmm/log.c -ljson-c

fuzz-snap: $(FUZZ_SNAP)
	@mkdir -p build-fuzz/snap-corpus
	$(Q)$(FUZZ_SNAP) -runs=$(FUZZ_RUNS) -max_len=65536 -seed=1 build-fuzz/snap-corpus

.PHONY: bench-snap-write fuzz-snap
