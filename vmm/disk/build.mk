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
