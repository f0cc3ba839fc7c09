# thaw: read top to bottom. `make` builds the programs, `make test` runs the whole
# suite, `make demo` boots, snapshots and restores a microVM. V=1 shows commands,
# SAN=1 builds with ASan+UBSan into build-san/, WERROR=0 keeps warnings non-fatal.

CC      ?= gcc
V       ?= 0
SAN     ?= 0
WERROR  ?= 1

ifeq ($(SAN),1)
B := build-san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
else
B := build
SANFLAGS :=
endif

WARN := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wpointer-arith -Wcast-align \
	-Wstrict-prototypes -Wmissing-prototypes -Wmissing-declarations -Wformat=2 \
	-Wformat-overflow=2 -Wundef -Wvla -Wwrite-strings -Wimplicit-fallthrough \
	-Wnull-dereference -Wold-style-definition -Wredundant-decls -Wswitch-enum \
	-Wno-switch-enum
ifeq ($(WERROR),1)
WARN += -Werror
endif

# Hardening, on every program and test: bounds-checked libc calls where the size is
# known (_FORTIFY_SOURCE, needs -O2), stack canaries, stack probes so a large frame cannot
# jump the guard page, CET landing pads (a program is marked CET-ready only when every
# library it links is: Debian 12's are not), and full RELRO with immediate binding (the
# GOT read-only from start-up on; for thaw's static-pie too).
# -static programs (thaw-jailer) have no dynamic section to bind: RELRO still applies.
# Under SAN=1 FORTIFY is off (undefined, in case the compiler defines it): the sanitizer
# runtimes intercept few of glibc's __*_chk functions, so fortified calls would escape
# ASan's checks (google/sanitizers issue 247), and ASan checks those accesses itself.
# tests/unit/test_hardening.c checks the built programs.
HARDEN_CFLAGS  := -U_FORTIFY_SOURCE -fstack-protector-strong -fstack-clash-protection \
	-fcf-protection
ifneq ($(SAN),1)
HARDEN_CFLAGS  += -D_FORTIFY_SOURCE=2
endif
HARDEN_LDFLAGS := -Wl,-z,relro,-z,now

CFLAGS  := -std=gnu11 -O2 -g -D_GNU_SOURCE -I. $(WARN) $(HARDEN_CFLAGS) $(SANFLAGS) -MMD -MP
LDFLAGS := $(SANFLAGS) $(HARDEN_LDFLAGS) -pthread
LDLIBS  := -luring -lseccomp -lcap -ljson-c -lhttp_parser

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-6s %s\n' $(1) $(2)
endif

# Filled in by each folder's build.mk.
PROGRAMS   :=
LIBS       :=
UNIT_TESTS :=

all: programs

include common/build.mk
include vmm/build.mk
include restore/build.mk
include uffd/build.mk
include api/build.mk
include jailer/build.mk
include tests/build.mk
include bench/build.mk
include guest/build.mk

programs: $(PROGRAMS)

# Every library of ours, in a group so their order does not matter. A program's own
# rule lists its objects; it links against all of our libraries.
LINK_LIBS = -Wl,--start-group $(LIBS) -Wl,--end-group $(LDLIBS)
$(PROGRAMS) $(UNIT_TESTS) $(B)/thaw-static: $(LIBS)
define link
	$(call msg,LD,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LINK_LIBS)
endef

$(B)/%.o: %.c
	$(call msg,CC,$<)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(B)/lib%.a:
	$(call msg,AR,$@)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

# Installs the Debian packages we need (prints the apt-get line when not root).
deps:
	@scripts/deps.sh

test: deps
	$(Q)$(MAKE) --no-print-directory programs unit-tests integration-tests guests bench-needs
	$(Q)tests/run.sh $(B)

demo: deps
	$(Q)$(MAKE) --no-print-directory programs guests
	$(Q)scripts/demo.sh $(B)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san

.PHONY: all programs deps test demo format clean
.DELETE_ON_ERROR:

-include $(shell find $(B) -name '*.d' 2>/dev/null)
