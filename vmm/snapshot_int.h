/* Private to vmm/: the restore plan, and KVM's side of vCPU and VM state
 * (vmm/vstate.c). */
#ifndef THAW_SNAPSHOT_INT_H
#define THAW_SNAPSHOT_INT_H

#include "vmm/vmm.h"
#include "vmm/virtio/virtio.h"
#include "restore/snap_kvm.h"

/* Everything a restore decodes and checks before it acts (vm_restore's plan step),
 * and the buffers the later steps fill for KVM. Allocated once per process by
 * vm_init, so a restore allocates nothing. */
struct vm_restore_plan {
	/* What outlives a restore first; `machine` and `saved`, the largest scratch, last,
	 * where vm_restore_plan_trim gives their pages back. */
	struct snap *snap;		    /* open for the length of one vm_restore */
	struct snap_store store;	    /* snap's storage, kept from one restore to the next */
	struct vmm_mem layout;		    /* the region layout for machine.mem_size */
	struct kvm_cpuid2 *cpuid;	    /* the saved CPUID (SNAP_MAX_CPUID entries) */
	struct kvm_cpuid2 *vcpu_cpuid;	    /* one vCPU's copy, its APIC id put back */
	struct kvm_cpuid_entry2 *host_view; /* PVM: the host CPU's own leaves */
	struct snap_vcpu_state *vcpu;	    /* VMM_MAX_VCPUS decoded vCPU states */
	struct kvm_msrs *msrs;		    /* SNAP_MAX_MSRS entries, for KVM_SET_MSRS */
	void *scratch;			    /* one mapping holding the five buffers above */
	size_t scratch_len;
	int paths_dirfd; /* --snapshot-paths DIR, open during the restore; else -1 */
	struct snap_vm_state vms;
	bool has_uart;
	struct uart_state uart;
	bool has_i8042; /* snapshots before the i8042 was saved have none: a fresh one */
	struct i8042_state i8042;
	uint64_t vmgenid_gpa; /* the saved generation ID's address; 0: no VMGenID */
	/* The devices to build (with their saved places and operator-chosen backends)
	 * and each one's saved state, by placement index. */
	bool saved_at[VIRTIO_MAX_DEVS];
	struct vm_config devices;
	struct snap_machine machine;
	struct virtio_saved saved[VIRTIO_MAX_DEVS];
};

/* Allocates vm->plan (vm_init calls it). 0 or -ENOMEM. */
int vm_restore_plan_alloc(struct vm *vm);
void vm_restore_plan_free(struct vm *vm);
/* After a restore: the plan's scratch (the snapshot's state area as read, its section
 * table, the decoded vCPU states, the CPUID and MSR buffers, the devices' saved states)
 * is not needed again until another restore or a snapshot, which fill what they use,
 * so its pages go back to the kernel (issue 17: what an idle clone holds). */
void vm_restore_plan_trim(struct vm *vm);
/* A prepared process, before its request: faults in the plan's pages a restore of
 * `nr_vcpus` vCPUs writes (each first touch is a page fault, ~5 us on PVM: ~30 of a
 * load's ~47). The trim gives them back after the launch. */
void vm_restore_plan_warm(struct vm *vm, unsigned nr_vcpus);

/* ---- vmm/vstate.c: KVM get/set of what a snapshot holds. Each returns 0 or -errno
 * with `err` naming the vCPU and the ioctl that failed. */

/* The MSRs snapshots save: KVM's list minus what this host cannot read back, found
 * once per process on vCPU 0 of the current VM. */
int vm_msr_list(struct vm *vm, char *err, size_t errlen);
/* Reads vCPU `v` into `s` (the VM paused; vm_msr_list done). */
int vm_vcpu_get_state(struct vm *vm, struct vcpu *v, struct snap_vcpu_state *s, char *err,
		      size_t errlen);
/* Sets vCPU `v` from `s` (checked by snap_decode_vcpu). Uses vm->plan->msrs. The saved
 * IA32_TSC is moved `tsc_advance` cycles forward (0: the guest's TSC resumes where it
 * stopped). */
int vm_vcpu_set_state(struct vm *vm, struct vcpu *v, const struct snap_vcpu_state *s,
		      uint64_t tsc_advance, char *err, size_t errlen);
/* The cycles vCPU `v`'s TSC runs in `ns` nanoseconds, at the rate KVM gives it
 * (KVM_GET_TSC_KHZ); negative errno when KVM cannot say. */
int64_t vm_vcpu_tsc_cycles(struct vcpu *v, uint64_t ns);
/* The irqchip (PIC, IOAPIC), PIT and clock. */
int vm_get_vm_state(struct vm *vm, struct snap_vm_state *s, char *err, size_t errlen);
/* KVM_CLOCK_REALTIME is kept only when `clock_realtime`: KVM then advances kvmclock by
 * the real time elapsed since the snapshot; without it the guest resumes where it
 * stopped. (A guest whose clocksource is the TSC needs the TSC moved as well:
 * vm_vcpu_set_state's tsc_advance.) */
int vm_set_vm_state(struct vm *vm, const struct snap_vm_state *s, bool clock_realtime, char *err,
		    size_t errlen);

#endif
