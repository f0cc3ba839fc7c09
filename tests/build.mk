# Unit tests: every tests/unit/test_*.c is one cmocka program (they need no /dev/kvm),
# linked against the library list of the folder it tests (the Makefile's link rule says
# why the order matters): test_uffd* with uffd/'s list shows uffd/ works without the
# VMM. Integration tests live in tests/integration/ and are driven by tests/run.sh.
UNIT_TEST_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_TESTS     := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_TEST_SRCS))

UNIT_API    := $(filter $(B)/tests/test_api_%,$(UNIT_TESTS))
UNIT_JAILER := $(filter $(B)/tests/test_jailer,$(UNIT_TESTS))
UNIT_SNAP   := $(filter $(B)/tests/test_snap_%,$(UNIT_TESTS))
UNIT_DISK   := $(filter $(B)/tests/test_disk_%,$(UNIT_TESTS))
UNIT_UFFD   := $(filter $(B)/tests/test_uffd% $(B)/tests/test_thaw_uffd,$(UNIT_TESTS))
UNIT_COMMON := $(filter $(B)/tests/test_hardening,$(UNIT_TESTS))
UNIT_POOL   := $(filter $(B)/tests/test_pool_%,$(UNIT_TESTS))
UNIT_OCI    := $(filter $(B)/tests/test_oci_%,$(UNIT_TESTS))
UNIT_VMM    := $(filter $(B)/tests/test_vmm_% $(B)/tests/test_virtio_% $(B)/tests/test_seccomp,\
		 $(UNIT_TESTS))
$(UNIT_API): $(API_LINK)
$(UNIT_JAILER): $(JAILER_LINK)
$(UNIT_SNAP): $(SNAP_LINK)
$(UNIT_DISK): $(DISK_LINK)
$(UNIT_UFFD): $(UFFD_LINK)
$(UNIT_VMM): $(VMM_LINK)
$(UNIT_COMMON): $(COMMON_LINK)
$(UNIT_POOL): $(POOL_LINK)
$(UNIT_OCI): $(OCI_LINK)
UNIT_UNLISTED := $(filter-out $(UNIT_API) $(UNIT_JAILER) $(UNIT_SNAP) $(UNIT_DISK) $(UNIT_UFFD) $(UNIT_VMM) \
		   $(UNIT_COMMON) $(UNIT_POOL) $(UNIT_OCI),$(UNIT_TESTS))
ifneq ($(UNIT_UNLISTED),)
$(error tests/build.mk: give $(UNIT_UNLISTED) a library list)
endif

$(B)/tests/%: $(B)/tests/unit/%.o
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(link_inputs) $(LDLIBS) -lcmocka

# test_seccomp compares the compiled-in filters with what the rules build now.
$(B)/tests/test_seccomp: $(B)/vmm/seccomp_rules.o

# test_api_router drives thawctl's pool commands.
$(B)/tests/test_api_router: | $(B)/thawctl

# test_hardening reads the programs it checks.
$(B)/tests/test_hardening: | $(B)/thaw $(B)/thaw-jailer $(B)/thaw-uffd $(B)/thawctl $(B)/thaw-snap \
	$(B)/thaw-pool $(B)/thaw-disk $(B)/thaw-oci

unit-tests: $(UNIT_TESTS)
.PHONY: unit-tests

# Integration tests: every tests/integration/test_*.c is a cmocka program that drives
# real `thaw` processes through tests/integration/harness.c. They need /dev/kvm (or
# run inside tests/kvmhost/run.sh, which tests/run.sh arranges).
INTEG_TEST_SRCS := $(wildcard tests/integration/test_*.c)
INTEG_TESTS     := $(patsubst tests/integration/%.c,$(B)/itests/%,$(INTEG_TEST_SRCS))

# They drive thaw and thaw-jailer as processes and link neither libvmm nor libjailer:
# what they may use (working-set files, snapshots, the API client) is below those.
INTEG_LINK := $(B)/libuffd.a $(B)/libapi.a $(B)/libsnap.a $(B)/libcommon.a
$(INTEG_TESTS): $(INTEG_LINK)
$(B)/itests/%: $(B)/tests/integration/%.o $(B)/tests/integration/harness.o
	$(call msg,LD,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(link_inputs) $(LDLIBS) -lcmocka

# The jail test runs the static thaw (a jail holds no libraries); sanitizer builds
# cannot link one, and the test says SKIPPED there.
ifneq ($(SAN),1)
$(B)/itests/test_jail: | $(B)/thaw-static $(B)/thaw-jailer
endif

# thaw with its allocations counted while vm_restore runs (tests/integration/alloc_count.c).
$(B)/tests/thaw-alloc-count: $(B)/vmm/main.o $(B)/tests/integration/alloc_count.o $(VMM_LINK)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=vm_restore \
		-o $@ $(link_inputs) $(LDLIBS)
$(B)/itests/test_snapshot: | $(B)/tests/thaw-alloc-count

# The pool test drives thaw-pool, which starts thaw (and thaw-jailer with thaw-static
# for its jailed pool).
$(B)/itests/test_pool: | $(B)/thaw-pool $(B)/thaw $(B)/thaw-jailer
ifneq ($(SAN),1)
$(B)/itests/test_pool: | $(B)/thaw-static
endif

# The Firecracker conformance test runs thaw, and thaw-jailer with thaw-static.
$(B)/itests/test_fc_conformance: | $(B)/thaw $(B)/thaw-jailer
ifneq ($(SAN),1)
$(B)/itests/test_fc_conformance: | $(B)/thaw-static
endif

integration-tests: $(INTEG_TESTS)
.PHONY: integration-tests

# Fuzz targets: every tests/fuzz/<name>_fuzz.c defines LLVMFuzzerTestOneInput and
# becomes $(B)/fuzz/<name>_fuzz, linked with clang's libFuzzer, ASan and UBSan against
# our library sources, which are compiled again with clang (coverage instrumented)
# into $(B)/fuzz/obj/ and archived, so a target pulls in only what it calls. A
# folder's own explicit rule for its target (api/build.mk) takes precedence.
# `make fuzz` runs each target for FUZZ_SECONDS and fails on the first crash, leak,
# timeout or contract violation; the corpus grows in $(B)/fuzz/<name>_corpus, seeded
# from tests/fuzz/<name>_corpus/ when that folder exists.
FUZZ_SECONDS  ?= 15
FUZZ_CLANG    ?= clang
FUZZ_SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=undefined
# FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION (libFuzzer's convention): what is random in
# production is fixed there, so the fuzzer can answer it (MMDS's TCP initial sequence).
FUZZ_CFLAGS    = -std=gnu11 -O1 -g -D_GNU_SOURCE -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION \
	-I. -Wall -Wno-unused-parameter \
	-fno-omit-frame-pointer $(FUZZ_SANITIZE)
FUZZ_LIB_SRCS  = $(sort $(COMMON_SRCS) $(DISK_SRCS) $(VMM_SRCS) $(SNAP_SRCS) $(API_SRCS) $(UFFD_SRCS) $(JAILER_SRCS) \
	$(POOL_SRCS) $(OCI_SRCS))
FUZZ_LIB       = $(B)/fuzz/libthaw-fuzz.a
FUZZ_SRCS     := $(wildcard tests/fuzz/*_fuzz.c)
FUZZ_TARGETS  := $(patsubst tests/fuzz/%.c,$(B)/fuzz/%,$(FUZZ_SRCS))

$(B)/fuzz/obj/%.o: %.c
	$(call msg,FUZZCC,$<)
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_LIB): $(patsubst %.c,$(B)/fuzz/obj/%.o,$(FUZZ_LIB_SRCS))
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/fuzz/%_fuzz: $(B)/fuzz/obj/tests/fuzz/%_fuzz.o $(FUZZ_LIB)
	$(call msg,FUZZLD,$@)
	$(Q)$(FUZZ_CLANG) $(FUZZ_SANITIZE) -fsanitize=fuzzer -pthread -o $@ $< $(FUZZ_LIB) \
		$(LDLIBS)

fuzz-targets: $(FUZZ_TARGETS)

# Kept after linking (make would delete them as intermediates of the pattern chains,
# and recompile every test and fuzz target on each run).
.SECONDARY: $(patsubst %.c,$(B)/%.o,$(UNIT_TEST_SRCS)) \
	$(patsubst %.c,$(B)/fuzz/obj/%.o,$(FUZZ_SRCS))

# One bounded session per target, one after the other (the machine has 2 cores).
# FUZZ_ARGS_<name> adds libFuzzer flags for tests/fuzz/<name>_fuzz.c (-max_len=...).
FUZZ_ARGS_api ?= -max_len=70000
define fuzz_run
	@mkdir -p $(B)/fuzz/$(2)_corpus $(B)/fuzz/$(2)_crashes
	@echo "  FUZZ   $(1) ($(FUZZ_SECONDS) s)"
	$(Q)$(1) -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 \
		-print_final_stats=1 -artifact_prefix=$(B)/fuzz/$(2)_crashes/ $(FUZZ_ARGS_$(2)) \
		$(B)/fuzz/$(2)_corpus $(wildcard tests/fuzz/$(2)_corpus) >$(B)/fuzz/$(2).log 2>&1 \
	|| { tail -n 40 $(B)/fuzz/$(2).log; \
	     echo "fuzz: $(1) failed: $(B)/fuzz/$(2).log, input in $(B)/fuzz/$(2)_crashes/"; \
	     exit 1; }
	@grep -h '^#[0-9]*.*DONE' $(B)/fuzz/$(2).log | tail -n 1

endef

fuzz: $(FUZZ_TARGETS)
	$(foreach t,$(FUZZ_TARGETS),$(call fuzz_run,$(t),$(patsubst %_fuzz,%,$(notdir $(t)))))

.PHONY: fuzz fuzz-targets

# The disk tests drive thaw-disk (the crash test's writer, the tool's own test).
$(B)/tests/test_disk_crash $(B)/tests/test_disk_tool: | $(B)/thaw-disk

# The crash test's power cut, preloaded into thaw-disk's workload (no sanitizers: it
# only forwards writes and syncs).
$(B)/tests/crash_shim.so: tests/unit/crash_shim.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -std=gnu11 -O2 -g -D_GNU_SOURCE $(WARN) -fPIC -shared -o $@ $<
$(B)/tests/test_disk_crash: | $(B)/tests/crash_shim.so

# The OCI test drives thaw-oci, which starts thaw (and thaw-jailer with thaw-static),
# and a thaw-pool whose prepared VMMs thaw-oci takes.
$(B)/itests/test_oci: | $(B)/thaw-oci $(B)/thaw $(B)/thaw-jailer $(B)/thaw-pool
ifneq ($(SAN),1)
$(B)/itests/test_oci: | $(B)/thaw-static
endif
