# uffd/: lazy restore through userfaultfd (libuffd.a), the external handler thaw-uffd,
# (its benchmark is bench/uffd.sh).
UFFD_SRCS := \
	uffd/stall.c \
	uffd/plan.c \
	uffd/wsfile.c \
	uffd/server.c \
	uffd/backend.c

LIBS += $(B)/libuffd.a
$(B)/libuffd.a: $(UFFD_SRCS:%.c=$(B)/%.o)
# uffd/ reaches the VM only through struct uffd_vm (uffd.h): nothing of libvmm here.
UFFD_LINK := $(B)/libuffd.a $(B)/libsnap.a $(B)/libcommon.a

PROGRAMS += $(B)/thaw-uffd
$(B)/thaw-uffd: $(B)/uffd/thaw_uffd.o $(UFFD_LINK)
	$(link)

# test_thaw_uffd runs the program above.
$(B)/tests/test_thaw_uffd: | $(B)/thaw-uffd
