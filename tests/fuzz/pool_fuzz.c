/* libFuzzer target for thaw-pool's request bodies: a client's bytes through json-c and
 * the strict parsers of PUT /pools/{id} and POST /pools/{id}/clones. The first byte
 * chooses the pool id's shape, the rest is the body. Every refusal must carry a message,
 * every acceptance must survive its own JSON (what the state directory keeps). */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pool/pool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pool_cfg cfg, again;
static struct pool_clone_req req;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ids[] = {"p", "fn-42", "-x",
					  "",  "a_b",	"0123456789abcdef0123456789abcdef0"};
	struct json_tokener *tok;
	json_object *o;
	char err[1024];

	if (size < 1 || size > 65536)
		return 0;
	tok = json_tokener_new_ex(16);
	if (!tok)
		return 0;
	o = json_tokener_parse_ex(tok, (const char *)data + 1, (int)(size - 1));
	json_tokener_free(tok);
	if (!o)
		return 0;
	err[0] = '\0';
	if (pool_cfg_parse(ids[data[0] % 6], o, &cfg, err, sizeof(err))) {
		if (!err[0])
			abort(); /* a refusal without a reason */
	} else {
		json_object *saved = pool_cfg_to_json(&cfg);

		if (!saved || pool_cfg_parse(cfg.id, saved, &again, err, sizeof(err)) ||
		    memcmp(&cfg, &again, sizeof(cfg)))
			abort(); /* the state dir's copy would not restore the same pool */
		json_object_put(saved);
	}
	err[0] = '\0';
	if (pool_clone_req_parse(o, &req, err, sizeof(err))) {
		if (!err[0])
			abort();
	} else if (req.count < 1 || req.count > POOL_MAX_BATCH ||
		   req.opts.n_drives > API_MAX_DRIVE_OVERRIDES) {
		abort();
	}
	json_object_put(o);
	return 0;
}
