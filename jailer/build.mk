# jailer/: thaw-jailer, which builds a jail and execs thaw inside it. libjailer.a
# holds everything but main so the unit tests can call the argument checks.
JAILER_SRCS := \
	jailer/config.c \
	jailer/fs.c \
	jailer/cgroup.c \
	jailer/jail.c

LIBS += $(B)/libjailer.a
$(B)/libjailer.a: $(JAILER_SRCS:%.c=$(B)/%.o)
JAILER_LINK := $(B)/libjailer.a $(B)/libcommon.a

PROGRAMS += $(B)/thaw-jailer
$(B)/thaw-jailer: $(B)/jailer/main.o $(JAILER_LINK)
	$(link)
# Static unless sanitizing: no loader work at every jail start (it showed in
# bench_jail), and the jailer runs where our libraries are not installed.
ifeq ($(SAN),0)
$(B)/thaw-jailer: LDFLAGS += -static
endif

# The program tests jail: static, because a jail holds no libc, and without
# sanitizers (their runtime would need /proc inside the jail).
$(B)/tests/jailer_probe: tests/integration/jailer_probe.c
	$(call msg,CC,$@)
	@mkdir -p $(dir $@)
	$(Q)$(CC) -std=gnu11 -O2 -D_GNU_SOURCE $(WARN) -static -o $@ $<

# test_jailer runs both programs above.
$(B)/tests/test_jailer: $(B)/thaw-jailer $(B)/tests/jailer_probe
