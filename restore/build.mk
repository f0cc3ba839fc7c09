# restore/: the snapshot file format library (libsnap.a) and the thaw-snap tool.
SNAP_SRCS := \
	restore/crc32c.c \
	restore/snap_write.c \
	restore/snap_read.c \
	restore/snap_codec.c \
	restore/snap_kvm.c \
	restore/snap_host.c \
	restore/snap_merge.c \
	restore/snap_check.c

LIBS += $(B)/libsnap.a
$(B)/libsnap.a: $(SNAP_SRCS:%.c=$(B)/%.o)
SNAP_LINK := $(B)/libsnap.a $(B)/libcommon.a

PROGRAMS += $(B)/thaw-snap
$(B)/thaw-snap: $(B)/restore/thaw_snap.o $(VMM_LINK)
	$(link)

# The reader's fuzz target tests/fuzz/snap_fuzz.c is built by tests/build.mk's generic
# rule as $(B)/fuzz/snap_fuzz and run by `make fuzz`. Seeds (valid snapshots of every
# section kind, written by tests/fuzz/snap_seed.c) are generated into its corpus first:
# checksums make random inputs useless as a start. `make fuzz-snap` runs the reader's
# target alone for FUZZ_RUNS inputs and fails on a crash.
FUZZ_RUNS     ?= 20000
FUZZ_ARGS_snap ?= -max_len=65536

$(B)/fuzz/snap-seed: tests/fuzz/snap_seed.c $(SNAP_LINK)
	$(call msg,LD,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^ -ljson-c -pthread

$(B)/fuzz/snap_corpus/.seeded: $(B)/fuzz/snap-seed
	@mkdir -p $(dir $@)
	$(Q)$(B)/fuzz/snap-seed $(dir $@) && touch $@

$(B)/fuzz/snap_fuzz: | $(B)/fuzz/snap_corpus/.seeded

fuzz-snap: $(B)/fuzz/snap_fuzz
	@mkdir -p $(B)/fuzz/snap_crashes
	$(Q)$(B)/fuzz/snap_fuzz -runs=$(FUZZ_RUNS) -seed=1 -timeout=10 -print_final_stats=1 \
		-artifact_prefix=$(B)/fuzz/snap_crashes/ $(FUZZ_ARGS_snap) $(B)/fuzz/snap_corpus \
		tests/fuzz/snap_corpus

.PHONY: fuzz-snap
