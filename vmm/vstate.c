/* KVM's side of a snapshot: reading a paused VM's vCPU and VM state out of KVM and
 * setting it back. The file format (restore/) and the order of a restore
 * (vmm/snapshot.c) are elsewhere; each failure names the ioctl, once. */
#include "vmm/snapshot_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define MSR_IA32_TSC 0x10 /* the time-stamp counter itself (SDM vol. 4, table 2-2) */

static int kvm_err(char *err, size_t errlen, const char *what, unsigned vcpu)
{
	int e = errno;

	if (vcpu == ~0u)
		return errf(err, errlen, -e, "%s: %s", what, strerror(e));
	return errf(err, errlen, -e, "vcpu%u: %s: %s", vcpu, what, strerror(e));
}

int vm_msr_list(struct vm *vm, char *err, size_t errlen)
{
	struct kvm_msr_list probe = {.nmsrs = 0}, *list;
	struct kvm_msrs *one = vm->plan->msrs; /* room for SNAP_MAX_MSRS; one is used */
	uint32_t *idx;
	unsigned n = 0;

	if (vm->msr_indices)
		return 0;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return kvm_err(err, errlen, "KVM_GET_MSR_INDEX_LIST", ~0u);
	list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
	idx = calloc(probe.nmsrs ? probe.nmsrs : 1, sizeof(uint32_t));
	if (!list || !idx) {
		free(list);
		free(idx);
		return errf(err, errlen, -ENOMEM, "out of memory for %u MSRs", probe.nmsrs);
	}
	list->nmsrs = probe.nmsrs;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		int ret = kvm_err(err, errlen, "KVM_GET_MSR_INDEX_LIST", ~0u);

		/* Nothing half-made is kept: a later call tries again rather than saving
		 * snapshots without MSRs. */
		free(list);
		free(idx);
		return ret;
	}
	for (unsigned i = 0; i < list->nmsrs && n < SNAP_MAX_MSRS; i++) {
		one->nmsrs = 1;
		one->pad = 0;
		one->entries[0] = (struct kvm_msr_entry){.index = list->indices[i]};
		if (ioctl(vm->vcpus[0].fd, KVM_GET_MSRS, one) == 1)
			idx[n++] = list->indices[i];
	}
	free(list);
	vm->nr_msr_indices = n;
	vm->msr_indices = idx;
	return 0;
}

int vm_vcpu_get_state(struct vm *vm, struct vcpu *v, struct snap_vcpu_state *s, char *err,
		      size_t errlen)
{
	struct kvm_msrs *msrs = vm->plan->msrs;
	unsigned i = v->index;
	int ret;

	memset(s, 0, sizeof(*s));
	if (ioctl(v->fd, KVM_GET_MP_STATE, &s->mp_state) < 0)
		return kvm_err(err, errlen, "KVM_GET_MP_STATE", i);
	if (ioctl(v->fd, KVM_GET_REGS, &s->regs) < 0)
		return kvm_err(err, errlen, "KVM_GET_REGS", i);
	if (ioctl(v->fd, KVM_GET_SREGS, &s->sregs) < 0)
		return kvm_err(err, errlen, "KVM_GET_SREGS", i);
	if (ioctl(v->fd, KVM_GET_XSAVE, &s->xsave) < 0)
		return kvm_err(err, errlen, "KVM_GET_XSAVE", i);
	if (ioctl(v->fd, KVM_GET_XCRS, &s->xcrs) < 0)
		return kvm_err(err, errlen, "KVM_GET_XCRS", i);
	if (ioctl(v->fd, KVM_GET_DEBUGREGS, &s->debugregs) < 0)
		return kvm_err(err, errlen, "KVM_GET_DEBUGREGS", i);
	if (ioctl(v->fd, KVM_GET_LAPIC, &s->lapic) < 0)
		return kvm_err(err, errlen, "KVM_GET_LAPIC", i);
	msrs->nmsrs = vm->nr_msr_indices;
	msrs->pad = 0;
	for (unsigned k = 0; k < vm->nr_msr_indices; k++)
		msrs->entries[k] = (struct kvm_msr_entry){.index = vm->msr_indices[k]};
	ret = ioctl(v->fd, KVM_GET_MSRS, msrs);
	if (ret != (int)vm->nr_msr_indices)
		return errf(err, errlen, -EIO, "vcpu%u: KVM_GET_MSRS read %d of %u MSRs", i, ret,
			    vm->nr_msr_indices);
	s->nmsrs = msrs->nmsrs;
	memcpy(s->msrs, msrs->entries, s->nmsrs * sizeof(s->msrs[0]));
	/* Events last: the others do not change pending exceptions or NMIs. */
	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &s->events) < 0)
		return kvm_err(err, errlen, "KVM_GET_VCPU_EVENTS", i);
	return 0;
}

int64_t vm_vcpu_tsc_cycles(struct vcpu *v, uint64_t ns)
{
	int khz = ioctl(v->fd, KVM_GET_TSC_KHZ);

	if (khz <= 0)
		return khz < 0 ? -errno : -EOPNOTSUPP;
	/* ns * kHz / 10^6 without overflow: years of nanoseconds times GHz rates. */
	return (int64_t)((unsigned __int128)ns * (unsigned)khz / 1000000u);
}

int vm_vcpu_set_state(struct vm *vm, struct vcpu *v, const struct snap_vcpu_state *s,
		      uint64_t tsc_advance, char *err, size_t errlen)
{
	struct kvm_msrs *msrs = vm->plan->msrs;
	unsigned i = v->index;
	int ret;

	if (ioctl(v->fd, KVM_SET_MP_STATE, &s->mp_state) < 0)
		return kvm_err(err, errlen, "KVM_SET_MP_STATE", i);
	if (ioctl(v->fd, KVM_SET_SREGS, &s->sregs) < 0)
		return kvm_err(err, errlen, "KVM_SET_SREGS", i);
	if (ioctl(v->fd, KVM_SET_REGS, &s->regs) < 0)
		return kvm_err(err, errlen, "KVM_SET_REGS", i);
	if (ioctl(v->fd, KVM_SET_XSAVE, &s->xsave) < 0)
		return kvm_err(err, errlen, "KVM_SET_XSAVE", i);
	if (ioctl(v->fd, KVM_SET_XCRS, &s->xcrs) < 0)
		return kvm_err(err, errlen, "KVM_SET_XCRS", i);
	if (ioctl(v->fd, KVM_SET_DEBUGREGS, &s->debugregs) < 0)
		return kvm_err(err, errlen, "KVM_SET_DEBUGREGS", i);
	if (ioctl(v->fd, KVM_SET_LAPIC, &s->lapic) < 0)
		return kvm_err(err, errlen, "KVM_SET_LAPIC", i);
	/* The state's MSR array is kvm_msrs without its header; the order is kept
	 * (TSC before TSC_ADJUST matters). */
	msrs->nmsrs = s->nmsrs;
	msrs->pad = 0;
	memcpy(msrs->entries, s->msrs, s->nmsrs * sizeof(s->msrs[0]));
	for (unsigned k = 0; tsc_advance && k < s->nmsrs; k++)
		if (msrs->entries[k].index == MSR_IA32_TSC)
			msrs->entries[k].data += tsc_advance;
	ret = ioctl(v->fd, KVM_SET_MSRS, msrs);
	if (ret != (int)s->nmsrs)
		return ret < 0 ? kvm_err(err, errlen, "KVM_SET_MSRS", i)
			       : errf(err, errlen, -EINVAL,
				      "vcpu%u: KVM_SET_MSRS took %d of %u MSRs (MSR %#x refused)",
				      i, ret, s->nmsrs, s->msrs[ret].index);
	if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &s->events) < 0)
		return kvm_err(err, errlen, "KVM_SET_VCPU_EVENTS", i);
	return 0;
}

int vm_get_vm_state(struct vm *vm, struct snap_vm_state *s, char *err, size_t errlen)
{
	struct kvm_irqchip chip;

	memset(s, 0, sizeof(*s));
	for (unsigned id = 0; id < 3; id++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = id;
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
			return kvm_err(err, errlen, "KVM_GET_IRQCHIP", ~0u);
		if (id == KVM_IRQCHIP_IOAPIC)
			s->ioapic = chip.chip.ioapic;
		else
			s->pic[id] = chip.chip.pic;
	}
	if (__atomic_load_n(&vm->pit_deferred, __ATOMIC_ACQUIRE))
		s->pit = vm->pit_saved; /* not made yet: as restored */
	else if (ioctl(vm->vm_fd, KVM_GET_PIT2, &s->pit) < 0)
		return kvm_err(err, errlen, "KVM_GET_PIT2", ~0u);
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &s->clock) < 0)
		return kvm_err(err, errlen, "KVM_GET_CLOCK", ~0u);
	return 0;
}

int vm_set_vm_state(struct vm *vm, const struct snap_vm_state *s, bool clock_realtime, char *err,
		    size_t errlen)
{
	struct kvm_clock_data clock = s->clock;
	struct kvm_irqchip chip;

	if (vm->pit_deferred)
		vm->pit_saved = s->pit;
	else if (ioctl(vm->vm_fd, KVM_SET_PIT2, &s->pit) < 0)
		return kvm_err(err, errlen, "KVM_SET_PIT2", ~0u);
	clock.flags &= clock_realtime ? KVM_CLOCK_REALTIME : 0;
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0)
		return kvm_err(err, errlen, "KVM_SET_CLOCK", ~0u);
	for (unsigned id = 0; id < 3; id++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = id;
		if (id == KVM_IRQCHIP_IOAPIC)
			chip.chip.ioapic = s->ioapic;
		else
			chip.chip.pic = s->pic[id];
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chip) < 0)
			return kvm_err(err, errlen, "KVM_SET_IRQCHIP", ~0u);
	}
	return 0;
}
