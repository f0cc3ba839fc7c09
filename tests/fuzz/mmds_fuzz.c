/* libFuzzer target for MMDS as a guest reaches it: the input is a run of frames, each a
 * 2-byte length and that many bytes, handed to the endpoint (vmm/virtio/mmds_net.c) as
 * the guest's transmit queue would, with the guest taking every answer back after each
 * frame; the first byte picks V1 or V2 and whether answers are left queued. A few
 * frames seed a real connection (the corpus has a SYN, an ACK and a GET), so the TCP
 * and HTTP layers behind it (api/mmds.c) are reached too.
 * Build and run: `make fuzz` (tests/build.mk) or build/fuzz/mmds_fuzz directly. */
#include "vmm/virtio/virtio_int.h"
#include "api/api.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char store[] = "{\"latest\": {\"meta-data\": {\"ami-id\": \"ami-1\", "
				    "\"n\": 5, \"o\": {\"k\": \"v\"}}}}";
	struct api_error err = {0};
	struct api_mmds_config cfg = {0};
	struct api_mmds *m;
	struct mmds_net *n;
	json_object *o;
	uint64_t now = 1000000000ull;
	bool keep;

	if (size < 1 || api_mmds_create(0, &m))
		return 0;
	o = json_tokener_parse(store);
	if (o)
		api_mmds_put(m, o, &err);
	json_object_put(o);
	cfg.version = data[0] & 1 ? API_MMDS_V2 : API_MMDS_V1;
	cfg.ipv4 = API_MMDS_DEFAULT_IPV4;
	cfg.imds_compat = data[0] & 2;
	keep = data[0] & 4;
	api_mmds_set_config(m, &cfg);
	if (mmds_net_create(m, cfg.ipv4, &n)) {
		api_mmds_destroy(m);
		return 0;
	}
	data++;
	size--;
	while (size >= 2) {
		size_t len = (size_t)(data[0] | data[1] << 8), fl;
		uint8_t *frame;

		data += 2;
		size -= 2;
		if (len > size)
			len = size;
		/* A copy of exactly the frame's size, so ASan sees any read past it. */
		frame = malloc(len ? len : 1);
		if (!frame)
			break;
		memcpy(frame, data, len);
		(void)mmds_net_wants(n, frame, len < 64 ? len : 64);
		mmds_net_input(n, frame, len, now);
		free(frame);
		data += len;
		size -= len;
		now += 1000000;
		while (!keep && mmds_net_peek(n, &fl))
			mmds_net_pop(n);
	}
	mmds_net_destroy(n);
	api_mmds_destroy(m);
	return 0;
}
