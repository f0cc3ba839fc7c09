# vmm/: the thaw process. libvmm.a holds everything but main so tests can link it.
VMM_SRCS := \
	vmm/log.c \
	vmm/memory.c \
	vmm/bus.c \
	vmm/elf.c \
	vmm/boot.c \
	vmm/cpuid.c \
	vmm/uart.c \
	vmm/vm.c \
	vmm/machine.c \
	vmm/loop.c \
	vmm/console.c \
	vmm/snapshot.c \
	vmm/control.c \
	vmm/virtio/devices.c \
	vmm/virtio/virtq.c \
	vmm/virtio/mmio.c \
	vmm/virtio/blk.c \
	vmm/virtio/net.c \
	vmm/virtio/vsock_conn.c \
	vmm/virtio/vsock.c \
	vmm/virtio/rng.c \
	vmm/seccomp.c

LIBS += $(B)/libvmm.a
$(B)/libvmm.a: $(VMM_SRCS:%.c=$(B)/%.o)

PROGRAMS += $(B)/thaw
$(B)/thaw: $(B)/vmm/main.o
	$(link)

# A static thaw for jails, which hold no shared libraries (thaw-jailer copies one
# binary in). Not built by default.
$(B)/thaw-static: $(B)/vmm/main.o
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -static -o $@ $< $(LINK_LIBS)
