/* vmm/seccomp's private half: the rules (vmm/seccomp_rules.c, libseccomp, run when thaw
 * is built and by the unit tests) and the BPF programs they compile to, which the build
 * writes into build/gen/vmm/seccomp_bpf.c for vmm/seccomp.c. */
#ifndef THAW_VMM_SECCOMP_INT_H
#define THAW_VMM_SECCOMP_INT_H

#include <linux/filter.h>
#include <stdint.h>

#include "vmm/vmm.h"

/* The filters: one per thread kind, then the main thread's seal (vm_launch). */
#define VMM_SECCOMP_SEALED     VMM_SECCOMP_NR_THREADS
#define VMM_SECCOMP_NR_FILTERS (VMM_SECCOMP_NR_THREADS + 1)

/* The pid in tgkill's rule at build time: above any pid Linux hands out (PID_MAX_LIMIT
 * is 2^22), so no other rule's constant is mistaken for it; the generator checks that
 * exactly the instructions holding it change with it. */
#define VMM_SECCOMP_PID_SENTINEL 0x7ffffff1u

/* Syscall numbers the SIGSYS report can name. */
#define VMM_SECCOMP_NAMES_MAX 512

/* Builds filter `filter` (a VMM_SECCOMP_* kind or VMM_SECCOMP_SEALED) with `pid` as
 * the process tgkill may signal, into `out` (out->filter is malloc'ed). 0 or -errno
 * (logged). */
int vmm_seccomp_rules_build(unsigned filter, uint32_t pid, struct sock_fprog *out);
/* "main", "vcpu", "uffd", "release", "sealed main". */
const char *vmm_seccomp_rules_name(unsigned filter);

/* ---------------------------------------------------------------- generated */

struct vmm_seccomp_bpf {
	const struct sock_filter *insns;
	unsigned short len;
	/* the instructions whose k is the pid (VMM_SECCOMP_PID_SENTINEL when built) */
	const unsigned short *pid_sites;
	unsigned nr_pid_sites;
};

extern const struct vmm_seccomp_bpf vmm_seccomp_bpf[VMM_SECCOMP_NR_FILTERS];
/* Syscall names by number (NULL where the build's libseccomp knows none). */
extern const char *const vmm_seccomp_syscall_names[VMM_SECCOMP_NAMES_MAX];

#endif
