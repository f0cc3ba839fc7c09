/* The KVM x86 state schema of thaw's snapshot file: the sections `machine`, `cpuid`,
 * `vcpu.<N>`, `irqchip`, `pit` and `clock` (docs/snapshot-format.md, 6.1-6.6), as plain KVM
 * structs and their codecs. The container they live in (writer, reader, field records,
 * checksums, memory) is restore/snapshot.h, which needs no <linux/kvm.h>; this header is
 * the part that does. All functions return 0 or -errno. Nothing here needs /dev/kvm.
 */
#ifndef THAW_SNAP_KVM_H
#define THAW_SNAP_KVM_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#include "restore/snapshot.h"

/* ---------------------------------------------------------------- limits and state */

#define SNAP_MAX_MSRS	 256
#define SNAP_MAX_CPUID	 256
#define SNAP_MAX_VCPUS	 64
#define SNAP_MAX_REGIONS 8
#define SNAP_MAX_XCRS	 KVM_MAX_XCRS

/* Everything KVM needs to resume one vCPU. The VMM fills it from KVM_GET_* and passes it
 * back to KVM_SET_*. `msrs` holds `nmsrs` entries (only index and data are saved). */
struct snap_vcpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp_state;
	struct kvm_debugregs debugregs;
	uint32_t nmsrs;
	struct kvm_msr_entry msrs[SNAP_MAX_MSRS];
	struct kvm_xsave xsave; /* last: struct kvm_xsave ends in a flexible array */
};

/* VM-wide device state kept by KVM: sections `irqchip`, `pit`, `clock`. */
struct snap_vm_state {
	struct kvm_pic_state pic[2]; /* KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE */
	struct kvm_ioapic_state ioapic;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
};

struct snap_mem_region {
	uint64_t gpa; /* guest physical base */
	uint64_t size;
	uint64_t offset; /* offset of the region inside the memory section/file */
};

struct snap_machine {
	uint64_t mem_size;
	uint32_t nr_vcpus;
	uint32_t nr_regions;
	struct snap_mem_region regions[SNAP_MAX_REGIONS];
	char cpu_template[64];
	char cmdline[4096];
	/* Firecracker's static CPU template the guest booted with ("T2A"), "" for none
	 * (a custom template or none); what GET /vm/config reports after a load. */
	char static_template[16];
};

/* Encoders fill a builder; decoders default every missing field to 0 and ignore unknown
 * tags. Decoders treat the section as hostile: counts above the caps, values that do not
 * fit the struct field, wrong blob sizes and a section major other than 1 (through
 * snap_section_check_version) fail with -EBADMSG / -ERANGE / -EPROTONOSUPPORT and a
 * message in `err`. snap_decode_machine also refuses regions that do not tile the memory
 * in guest physical order (see the spec, 6.1). */
int snap_encode_vcpu(struct snap_sec *sec, const struct snap_vcpu_state *v);
int snap_decode_vcpu(const struct snap_section *sec, struct snap_vcpu_state *v, char *err,
		     size_t errlen);
int snap_encode_irqchip(struct snap_sec *sec, const struct snap_vm_state *vm);
int snap_decode_irqchip(const struct snap_section *sec, struct snap_vm_state *vm, char *err,
			size_t errlen);
int snap_encode_pit(struct snap_sec *sec, const struct kvm_pit_state2 *pit);
int snap_decode_pit(const struct snap_section *sec, struct kvm_pit_state2 *pit, char *err,
		    size_t errlen);
int snap_encode_clock(struct snap_sec *sec, const struct kvm_clock_data *clock);
int snap_decode_clock(const struct snap_section *sec, struct kvm_clock_data *clock, char *err,
		      size_t errlen);
int snap_encode_cpuid(struct snap_sec *sec, const struct kvm_cpuid_entry2 *e, size_t n);
int snap_decode_cpuid(const struct snap_section *sec, struct kvm_cpuid_entry2 *e, size_t cap,
		      size_t *n, char *err, size_t errlen);
int snap_encode_machine(struct snap_sec *sec, const struct snap_machine *m);
int snap_decode_machine(const struct snap_section *sec, struct snap_machine *m, char *err,
			size_t errlen);

/* Writer conveniences: add the section with its name, version and REQUIRED flag, and
 * encode. vcpu sections are `vcpu.<index>`. snap_put_vm adds irqchip, pit and clock. */
int snap_put_vcpu(struct snap_writer *w, unsigned index, const struct snap_vcpu_state *v);
int snap_put_vm(struct snap_writer *w, const struct snap_vm_state *vm);
int snap_put_cpuid(struct snap_writer *w, const struct kvm_cpuid_entry2 *e, size_t n);
int snap_put_machine(struct snap_writer *w, const struct snap_machine *m);
/* Reader conveniences: find the section (missing -> -ENOENT with a message) and decode. */
int snap_get_vcpu(const struct snap *s, unsigned index, struct snap_vcpu_state *v, char *err,
		  size_t errlen);
int snap_get_vm(const struct snap *s, struct snap_vm_state *vm, char *err, size_t errlen);
int snap_get_cpuid(const struct snap *s, struct kvm_cpuid_entry2 *e, size_t cap, size_t *n,
		   char *err, size_t errlen);
int snap_get_machine(const struct snap *s, struct snap_machine *m, char *err, size_t errlen);

#endif
