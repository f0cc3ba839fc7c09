/* The VM as uffd/ sees it: its memory layout and the few calls the uffd backend makes
 * into the VMM (request exit, sample and kick a vCPU, translate an address, narrow a
 * thread's seccomp filter). uffd/ knows no vmm/ type, so the dependency points one way:
 * libvmm uses libuffd, never the reverse. */
#include "vmm/vmm.h"

#include <string.h>

#include "uffd/uffd.h"

_Static_assert(VMM_MAX_MEM_REGIONS <= UFFD_MAX_REGIONS, "uffd must take every guest region");

static int glue_thread_filter(void *opaque)
{
	return vmm_seccomp_install(VMM_SECCOMP_UFFD);
}

static void glue_request_exit(void *opaque, int status, const char *why)
{
	vm_request_exit(opaque, status, why);
}

static enum uffd_vm_phase glue_phase(void *opaque)
{
	struct vm *vm = opaque;

	if (__atomic_load_n(&vm->exiting, __ATOMIC_ACQUIRE))
		return UFFD_VM_EXITING;
	return __atomic_load_n(&vm->times.running_ns, __ATOMIC_ACQUIRE) ? UFFD_VM_RUNNING
									: UFFD_VM_RESTORING;
}

static void glue_vcpu_sample(void *opaque, unsigned i, struct uffd_vcpu_sample *s)
{
	vm_vcpu_sample(opaque, i, s);
}

static void glue_vcpu_probe(void *opaque, unsigned i)
{
	vm_vcpu_probe(opaque, i);
}

static void *glue_gpa_to_host(void *opaque, uint64_t gpa, uint64_t len)
{
	struct vm *vm = opaque;

	return vmm_gpa(&vm->mem, gpa, len);
}

int vm_uffd_restore(struct vm *vm, const struct snap *s, const struct vm_restore_opts *opts,
		    char *err, size_t errlen)
{
	struct uffd_vm u = {.host = vm->mem.host,
			    .size = vm->mem.size,
			    .nr_regions = vm->mem.nr_regions,
			    .nr_vcpus = vm->nr_vcpus,
			    .stall_ms = vm->uffd_stall_ms,
			    .exit_status = VMM_EXIT_INTERNAL,
			    .opaque = vm,
			    .thread_filter = glue_thread_filter,
			    .request_exit = glue_request_exit,
			    .phase = glue_phase,
			    .vcpu_sample = glue_vcpu_sample,
			    .vcpu_probe = glue_vcpu_probe,
			    .gpa_to_host = glue_gpa_to_host};
	struct uffd_restore_opts o = {.external = opts->backend == VM_MEM_UFFD_EXT,
				      .sock = opts->uffd_sock,
				      .strategy = opts->uffd_strategy,
				      .record = opts->uffd_record,
				      .snap_path = opts->path};
	int ret;

	for (unsigned i = 0; i < vm->mem.nr_regions; i++)
		u.regions[i] = (struct uffd_vm_region){.offset = vm->mem.regions[i].offset,
						       .size = vm->mem.regions[i].size};
	ret = uffd_restore_memory(&u, s, &o, &vm->uffd, err, errlen);
	/* The mapping is ours from the moment it exists, also when the restore failed
	 * after it (vm_destroy unmaps it). */
	if (u.host) {
		vm->mem.host = u.host;
		vm->mem.owned = true;
	}
	return ret;
}

void vm_uffd_stop(struct vm *vm)
{
	struct uffd_backend *b = vm->uffd;

	vm->uffd = NULL;
	uffd_stop(b);
}
