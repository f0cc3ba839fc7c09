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
