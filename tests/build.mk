# Unit tests: every tests/unit/test_*.c is one cmocka program linked against all of
# our libraries (they need no /dev/kvm). Integration tests live in tests/integration/
# and are driven by tests/run.sh.
UNIT_TEST_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_TESTS     := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_TEST_SRCS))

$(B)/tests/%: $(B)/tests/unit/%.o
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LINK_LIBS) -lcmocka

unit-tests: $(UNIT_TESTS)
.PHONY: unit-tests

# Integration tests: every tests/integration/test_*.c is a cmocka program that drives
# real `thaw` processes through tests/integration/harness.c. They need /dev/kvm (or
# run inside tests/kvmhost/run.sh, which tests/run.sh arranges).
INTEG_TEST_SRCS := $(wildcard tests/integration/test_*.c)
INTEG_TESTS     := $(patsubst tests/integration/%.c,$(B)/itests/%,$(INTEG_TEST_SRCS))

$(INTEG_TESTS): $(LIBS)
$(B)/itests/%: $(B)/tests/integration/%.o $(B)/tests/integration/harness.o
	$(call msg,LD,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LINK_LIBS) -lcmocka

integration-tests: $(INTEG_TESTS)
.PHONY: integration-tests
