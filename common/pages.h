/* Giving pages back to the kernel while keeping the memory: what a long-lived process
 * does with scratch it will not need for a while (issue 17: every idle clone's private
 * memory is what a host runs a thousand of). */
#ifndef THAW_PAGES_H
#define THAW_PAGES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

/* Gives the whole pages inside [p, p + len) back to the kernel; the allocation stays
 * valid. Private anonymous memory only (heap, mmap'd blocks, .bss): those pages read as
 * zero afterwards and cost nothing until written again, so use it on memory whose
 * contents are not needed any more (or must be zero). The partial pages at either end
 * are left as they are. NULL or a range within one page is a no-op. */
static inline void pages_release(void *p, size_t len)
{
	const uintptr_t page = 4096;
	uintptr_t a = ((uintptr_t)p + page - 1) & ~(page - 1);
	uintptr_t b = ((uintptr_t)p + len) & ~(page - 1);

	if (p && b > a)
		madvise((void *)a, b - a, MADV_DONTNEED);
}

/* Gives back the pages of the main thread's stack more than a page below the caller's
 * frame, down to 256 KiB below it: what deeper calls used once (a restore's decoders,
 * the start's option parsing) and nothing holds now. Main thread only, at a shallow
 * point of its loop (another thread's stack is a mapping with others right below
 * it). Below the main stack the kernel leaves at least the
 * stack's rlimit (>= 128 MiB of address space) free of other mappings, so the window
 * meets nothing but the stack; its unmapped part is skipped (madvise's ENOMEM). */
static inline void pages_release_stack(void)
{
	uintptr_t below = ((uintptr_t)__builtin_frame_address(0) - 4096) & ~(uintptr_t)4095;

	pages_release((void *)(below - (256u << 10)), 256u << 10);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* Faults in the pages of [p, p + len) for writing, keeping their contents: for memory a
 * latency-critical request will write, touched before the request arrives. Kernels
 * before 5.14 get each page read and written back. */
static inline void pages_touch(void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p & ~(uintptr_t)4095;

	if (!p || !len || madvise((void *)a, (uintptr_t)p + len - a, MADV_POPULATE_WRITE) == 0)
		return;
	for (volatile uint8_t *b = (void *)a; (uintptr_t)b < (uintptr_t)p + len; b += 4096)
		*b = *b;
}

#endif
