# vmm/: the thaw process. libvmm.a holds everything but main so tests can link it.
VMM_SRCS := \
	vmm/memory.c \
	vmm/bus.c \
	vmm/elf.c \
	vmm/boot.c \
	vmm/acpi/aml.c \
	vmm/acpi/acpi.c \
	vmm/acpi/dsdt.c \
	vmm/acpi/fadt.c \
	vmm/acpi/madt.c \
	vmm/acpi/vmgenid.c \
	vmm/cpuid.c \
	vmm/cpu_template.c \
	vmm/cpu_compat.c \
	vmm/devcfg.c \
	vmm/uart.c \
	vmm/i8042.c \
	vmm/vm.c \
	vmm/machine.c \
	vmm/loop.c \
	vmm/console.c \
	vmm/snapshot.c \
	vmm/vstate.c \
	vmm/uffd_glue.c \
	vmm/control.c \
	vmm/virtio/devices.c \
	vmm/virtio/virtq.c \
	vmm/virtio/mmio.c \
	vmm/virtio/blk.c \
	vmm/virtio/net.c \
	vmm/virtio/vsock_conn.c \
	vmm/virtio/vsock.c \
	vmm/virtio/rng.c \
	vmm/virtio/ratelimit.c \
	vmm/virtio/mmds_net.c \
	vmm/seccomp.c \
	vmm/signals.c

LIBS += $(B)/libvmm.a
$(B)/libvmm.a: $(VMM_SRCS:%.c=$(B)/%.o) $(B)/gen/vmm/seccomp_bpf.o

# The seccomp filters are compiled when thaw is built, not at every start (issue 21:
# libseccomp took ~2 ms of each clone's process start): seccomp_gen runs the rules of
# vmm/seccomp_rules.c through libseccomp and writes the BPF programs as C for libvmm.
SECCOMP_GEN := $(B)/vmm/seccomp_gen
$(SECCOMP_GEN): $(B)/vmm/seccomp_gen.o $(B)/vmm/seccomp_rules.o $(B)/libcommon.a
	$(link)
$(B)/gen/vmm/seccomp_bpf.c: $(SECCOMP_GEN)
	$(call msg,GEN,$@)
	@mkdir -p $(dir $@)
	$(Q)$(SECCOMP_GEN) $@ 2>$@.log || { cat $@.log; false; }
$(B)/gen/vmm/seccomp_bpf.o: $(B)/gen/vmm/seccomp_bpf.c
	$(call msg,CC,$<)
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<
# The top layer: everything below it, each library before the ones it calls.
VMM_LINK := $(B)/libvmm.a $(B)/libuffd.a $(B)/libapi.a $(B)/libsnap.a $(B)/libdisk.a \
	$(B)/libcommon.a

PROGRAMS += $(B)/thaw
$(B)/thaw: $(B)/vmm/main.o $(VMM_LINK)
	$(link)

# thaw is linked statically: the dynamic loader's work (six libraries and their
# relocations) is on every clone's path, about 0.9 ms per process start measured on the
# project machine (fork .. exit of a usage error: 2.57 ms dynamic, 1.66 ms static-pie,
# medians of 200) and 28 ms in the nested TCG VM, and a jail then needs no libraries.
# static-pie rather than -static keeps address-space randomization for the one process
# that parses untrusted snapshots and requests. Sanitizer builds cannot link statically,
# so there thaw stays dynamic and the jail tests and series say they are left out.
# thaw-static is the same file under the name the jail tests and benchmarks use.
ifneq ($(SAN),1)
$(B)/thaw: LDFLAGS += -static-pie
$(B)/thaw-static: $(B)/thaw
	$(call msg,LN,$@)
	$(Q)ln -f $< $@
else
$(B)/thaw-static: $(B)/vmm/main.o $(VMM_LINK)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -static -o $@ $(link_inputs) $(LDLIBS)
endif
