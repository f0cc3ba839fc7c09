/* Linked into a test build of thaw (thaw-alloc-count) with the linker's --wrap: counts
 * the allocations thaw's own code makes while vm_restore runs, and reports them on
 * stderr as "thaw: restore allocations: N". The restore path is meant to allocate
 * nothing once its buffers exist (vm_init, vm_prepare). */
#include <stddef.h>
#include <stdio.h>

#include "vmm/vmm.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
int __real_vm_restore(struct vm *vm, const struct vm_restore_opts *opts, char *err, size_t errlen);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
int __wrap_vm_restore(struct vm *vm, const struct vm_restore_opts *opts, char *err, size_t errlen);

static int counting;
static unsigned long allocs;

static void count(void)
{
	if (__atomic_load_n(&counting, __ATOMIC_RELAXED))
		__atomic_add_fetch(&allocs, 1, __ATOMIC_RELAXED);
}

void *__wrap_malloc(size_t n)
{
	count();
	return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	count();
	return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	count();
	return __real_realloc(p, n);
}

int __wrap_vm_restore(struct vm *vm, const struct vm_restore_opts *opts, char *err, size_t errlen)
{
	int ret;

	__atomic_store_n(&counting, 1, __ATOMIC_RELAXED);
	ret = __real_vm_restore(vm, opts, err, errlen);
	__atomic_store_n(&counting, 0, __ATOMIC_RELAXED);
	fprintf(stderr, "thaw: restore allocations: %lu\n", allocs);
	return ret;
}
