/* libFuzzer target for the split virtqueue parser: the input becomes the guest's
 * rings and buffers (descriptor table, avail ring, used ring, indirect tables all
 * live in one small guest memory that is a malloc'ed buffer, so ASan sees any access
 * outside it), plus the queue size and negotiated features. Every chain popped is
 * touched end to end (read and written) and pushed back, as a device would.
 * Build and run: `make fuzz` (tests/build.mk) or build/fuzz/virtq_fuzz directly. */
#include "vmm/virtio/virtio_int.h"

#include <stdlib.h>
#include <string.h>

#define MEM_SIZE  (64 * 1024)
#define DESC_GPA  0x0000
#define AVAIL_GPA 0x1000
#define USED_GPA  0x2000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct virtq_elem e;
	struct vmm_mem mem = {0};
	struct virtq_state s = {0};
	struct virtq q;
	const char *why;
	uint64_t features = 0;
	uint8_t *ram;

	if (size < 4)
		return 0;
	ram = calloc(1, MEM_SIZE);
	if (!ram)
		return 0;
	vmm_mem_layout(&mem, MEM_SIZE);
	mem.host = ram;
	/* Header: queue size (16 bits, any value: setup must refuse the bad ones),
	 * feature bits, where the rings go. */
	s.size = (uint16_t)(data[0] | data[1] << 8);
	if (data[2] & 1)
		features |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	if (data[2] & 2)
		features |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	s.desc = DESC_GPA;
	s.avail = AVAIL_GPA;
	s.used = USED_GPA;
	if (data[2] & 4) /* rings placed by the input, possibly outside memory */
		s.used = (uint64_t)data[3] << 12;
	memcpy(ram, data + 4, size - 4 < MEM_SIZE ? size - 4 : MEM_SIZE);

	if (virtq_setup(&q, &s, &mem, VIRTQ_MAX_SIZE, features, &why) == 0) {
		for (unsigned round = 0; round < 2 * VIRTQ_MAX_SIZE; round++) {
			int ret = virtq_pop(&q, &e, &why);
			uint64_t sum = 0;

			if (ret <= 0) {
				if (ret < 0 && !why)
					abort(); /* a refusal must say why */
				break;
			}
			if (e.nr_out + e.nr_in > VIRTQ_MAX_CHAIN || e.out_len > UINT32_MAX ||
			    e.in_len > UINT32_MAX)
				abort();
			for (unsigned i = 0; i < e.nr_out + e.nr_in; i++) {
				uint8_t *p = e.iov[i].iov_base;

				if (p < ram || p + e.iov[i].iov_len > ram + MEM_SIZE)
					abort();
				for (size_t k = 0; k < e.iov[i].iov_len; k++)
					sum += p[k];
				if (i >= e.nr_out && e.iov[i].iov_len)
					p[0] = (uint8_t)sum;
			}
			virtq_push(&q, e.head, (uint32_t)e.in_len);
			(void)virtq_should_notify(&q);
		}
	}
	free(ram);
	return 0;
}
