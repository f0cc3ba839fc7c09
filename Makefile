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
LDLIBS  := -luring -lseccomp -lcap -ljson-c -lhttp_parser -lm

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
include vmm/disk/build.mk
include vmm/build.mk
include restore/build.mk
include uffd/build.mk
include api/build.mk
include jailer/build.mk
include pool/build.mk
include oci/build.mk
include tests/build.mk
include bench/build.mk
include guest/build.mk

programs: $(PROGRAMS)

# Linking. Our libraries are layers; each calls only into the ones below it:
#   libvmm -> libuffd -> libsnap -> libcommon
#   libvmm -> libdisk -> libcommon
#   libvmm -> libapi  -> libcommon            libjailer -> libcommon
#   libpool -> libapi, libsnap -> libcommon
#   liboci -> libapi -> libcommon
# A program's (or test's) rule lists its objects, then the archives it uses, each above
# those it calls (its folder's *_LINK list, e.g. VMM_LINK); `link` passes them to ld in
# that order. No --start-group: ld reads each archive once and never goes back, so a
# library that calls into one listed before it (a dependency pointing up, a cycle)
# leaves an undefined reference and the link fails. That failure is the check: move
# the code (or pass a callback down, as vmm/uffd_glue.c does), don't reorder the list.
link_inputs = $(filter %.o,$^) $(filter %.a,$^)
define link
	$(call msg,LD,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(link_inputs) $(LDLIBS)
endef

# A program pulls only the archive members it needs, so an upward call in a member no
# program uses would go unnoticed: each library is also linked whole, above only the
# layers below it, into a throwaway program.
LAYER_CHECKS := $(patsubst $(B)/%.a,$(B)/layers/%.ok,$(LIBS))
programs: $(LAYER_CHECKS)
$(B)/layers/libcommon.ok: $(COMMON_LINK)
$(B)/layers/libsnap.ok: $(SNAP_LINK)
$(B)/layers/libdisk.ok: $(DISK_LINK)
$(B)/layers/libuffd.ok: $(UFFD_LINK)
$(B)/layers/libapi.ok: $(API_LINK)
$(B)/layers/libjailer.ok: $(JAILER_LINK)
$(B)/layers/libvmm.ok: $(VMM_LINK)
$(B)/layers/libpool.ok: $(POOL_LINK)
$(B)/layers/liboci.ok: $(OCI_LINK)
$(B)/layers/%.ok:
	$(call msg,LAYER,$(firstword $^))
	@mkdir -p $(dir $@)
	$(Q)printf 'int main(void) { return 0; }\n' | $(CC) $(LDFLAGS) -o $@.out -x c - -x none \
		-Wl,--whole-archive $(firstword $^) -Wl,--no-whole-archive $(wordlist 2,99,$^) \
		$(LDLIBS)
	$(Q)rm -f $@.out && touch $@

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

# The soak (issue 22, tests/soak/soak.sh): SOAK_N restore/answer/teardown cycles through
# the CLI, the API and one thaw-uffd, failing on any growth of fds, RSS or threads; in the
# nested host when /dev/kvm is absent, with no reboot after a wedge (a wedge fails it).
# Not part of `make test`, which runs a 10-cycle version.
SOAK_N ?= 1000
soak: deps
	$(Q)$(MAKE) --no-print-directory programs guests
	$(Q)THAW_KVMHOST_RETRIES=0 tests/kvmhost/run.sh --timeout 0 -- tests/soak/soak.sh --build $(B) -n $(SOAK_N) $(SOAK_ARGS)

demo: deps
	$(Q)$(MAKE) --no-print-directory programs guests
	$(Q)scripts/demo.sh $(B)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san

.PHONY: all programs deps test soak demo format clean
.DELETE_ON_ERROR:

-include $(shell find $(B) -name '*.d' 2>/dev/null)
