# vmm/disk/: disk images, raw and qcow2 (libdisk.a), and the thaw-disk tool. Below
# libvmm (virtio-blk reads and writes images through it), above libcommon only.
DISK_SRCS := \
	vmm/disk/disk.c \
	vmm/disk/qcow2.c \
	vmm/disk/qcow2_snap.c \
	vmm/disk/qcow2_check.c

LIBS += $(B)/libdisk.a
$(B)/libdisk.a: $(DISK_SRCS:%.c=$(B)/%.o)
DISK_LINK := $(B)/libdisk.a $(B)/libcommon.a

PROGRAMS += $(B)/thaw-disk
$(B)/thaw-disk: $(B)/vmm/disk/thaw_disk.o $(DISK_LINK)
	$(link)

# The crash-consistency run at full length (docs/disk.md): `make test` runs 24 kills,
# this DISK_CRASH_N (200), about 45 s on the project machine.
DISK_CRASH_N ?= 200
disk-crash: $(B)/tests/test_disk_crash
	$(Q)THAW_DISK_CRASH_N=$(DISK_CRASH_N) $(B)/tests/test_disk_crash

.PHONY: disk-crash
