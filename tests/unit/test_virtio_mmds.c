/* MMDS on the wire: a guest's ARP, TCP and HTTP, frame by frame, against the endpoint
 * (vmm/virtio/mmds_net.c) and a real store (api/mmds.c). The test plays the guest's TCP:
 * it builds the frames a Linux guest sends and checks every answer (addresses, flags,
 * sequence numbers, checksums, the HTTP inside). */
#include "tests/unit/test_virtio_harness.h"
#include "api/api.h"

#include <arpa/inet.h>
#include <json-c/json.h>

#define MMDS_IP	 0xa9fea9feu /* 169.254.169.254 */
#define GUEST_IP 0xa9fe0002u /* 169.254.0.2 */
#define SEC	 1000000000ull

static const uint8_t gmac[6] = {0x06, 0x00, 0xac, 0x10, 0x00, 0x02};

struct fx {
	struct api_mmds *store;
	struct mmds_net *net;
	uint32_t seq, ack; /* the guest's next sequence number, and what it acknowledges */
	uint16_t port;
	uint16_t wnd;
};

static void p16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void p32(uint8_t *p, uint32_t v)
{
	p16(p, (uint16_t)(v >> 16));
	p16(p + 2, (uint16_t)v);
}

static uint16_t g16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t g32(const uint8_t *p)
{
	return (uint32_t)g16(p) << 16 | g16(p + 2);
}

static uint32_t csum(const uint8_t *p, size_t n, uint32_t s)
{
	for (; n > 1; p += 2, n -= 2)
		s += g16(p);
	if (n)
		s += (uint32_t)p[0] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return s;
}

static struct fx *fx_new(void)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct api_error err = {0};
	const char *data = "{\"latest\": {\"meta-data\": {\"ami-id\": \"ami-87654321\", "
			   "\"big\": \"";
	char *json = malloc(20000);
	json_object *o;

	assert_int_equal(api_mmds_create(0, &f->store), 0);
	/* a 9000-byte value: a response of several segments */
	snprintf(json, 20000, "%s%09000d\"}}}", data, 7);
	o = json_tokener_parse(json);
	assert_non_null(o);
	assert_int_equal(api_mmds_put(f->store, o, &err), 0);
	json_object_put(o);
	free(json);
	assert_int_equal(mmds_net_create(f->store, MMDS_IP, &f->net), 0);
	f->port = 40000;
	f->wnd = 64000;
	return f;
}

static void fx_free(struct fx *f)
{
	mmds_net_destroy(f->net);
	api_mmds_destroy(f->store);
	free(f);
}

/* A TCP segment from the guest. */
static bool send_tcp(struct fx *f, uint8_t flags, const char *data, uint16_t mss)
{
	uint8_t fr[1600] = {0}, *ip = fr + 14, *t = ip + 20;
	size_t dl = data ? strlen(data) : 0, hl = mss ? 24 : 20;

	memcpy(fr, "\x06\x01\x23\x45\x67\x01", 6);
	memcpy(fr + 6, gmac, 6);
	p16(fr + 12, 0x0800);
	ip[0] = 0x45;
	p16(ip + 2, (uint16_t)(20 + hl + dl));
	p16(ip + 6, 0x4000);
	ip[8] = 64;
	ip[9] = 6;
	p32(ip + 12, GUEST_IP);
	p32(ip + 16, MMDS_IP);
	p16(t, f->port);
	p16(t + 2, 80);
	p32(t + 4, f->seq);
	p32(t + 8, f->ack);
	t[12] = (uint8_t)((hl / 4) << 4);
	t[13] = flags;
	p16(t + 14, f->wnd);
	if (mss) {
		t[20] = 2;
		t[21] = 4;
		p16(t + 22, mss);
	}
	memcpy(t + hl, data ? data : "", dl);
	f->seq += (uint32_t)dl + !!(flags & 0x02) + !!(flags & 0x01);
	return mmds_net_input(f->net, fr, 14 + 20 + hl + dl, SEC);
}

/* The next frame to the guest: a TCP segment, checked (addresses, checksums); its
 * flags, and payload appended to `body` when given. false when none waits. */
static bool recv_tcp(struct fx *f, uint8_t *flags, uint32_t *seq, char *body, size_t *blen)
{
	size_t len;
	const uint8_t *fr = mmds_net_peek(f->net, &len), *ip, *t;
	size_t tot, hl;

	if (!fr)
		return false;
	assert_memory_equal(fr, gmac, 6);
	assert_int_equal(g16(fr + 12), 0x0800);
	ip = fr + 14;
	tot = g16(ip + 2);
	assert_int_equal(tot, len - 14);
	assert_int_equal(csum(ip, 20, 0), 0xffff);
	assert_int_equal(g32(ip + 12), MMDS_IP);
	assert_int_equal(g32(ip + 16), GUEST_IP);
	t = ip + 20;
	/* pseudo header + segment sums to all ones */
	assert_int_equal(csum(t, tot - 20, csum(ip + 12, 8, 0) + 6 + (uint32_t)(tot - 20)), 0xffff);
	assert_int_equal(g16(t), 80);
	assert_int_equal(g16(t + 2), f->port);
	hl = (size_t)(t[12] >> 4) * 4;
	*flags = t[13];
	*seq = g32(t + 4);
	if (body && tot - 20 > hl) {
		memcpy(body + *blen, t + hl, tot - 20 - hl);
		*blen += tot - 20 - hl;
		body[*blen] = '\0';
	}
	mmds_net_pop(f->net);
	return true;
}

/* SYN, SYN-ACK, ACK. */
static void connect_(struct fx *f, uint16_t mss)
{
	uint8_t fl;
	uint32_t seq;

	f->seq = 1000;
	f->ack = 0;
	assert_true(send_tcp(f, 0x02, NULL, mss));
	assert_true(recv_tcp(f, &fl, &seq, NULL, NULL));
	assert_int_equal(fl, 0x12); /* SYN|ACK */
	f->ack = seq + 1;
	assert_true(send_tcp(f, 0x10, NULL, 0));
	assert_false(recv_tcp(f, &fl, &seq, NULL, NULL)); /* a pure ACK gets no answer */
}

static void test_arp_for_the_service_is_answered_others_go_to_the_tap(void **state)
{
	struct fx *f = fx_new();
	uint8_t fr[42] = {0};
	const uint8_t *r;
	size_t len;

	memset(fr, 0xff, 6);
	memcpy(fr + 6, gmac, 6);
	p16(fr + 12, 0x0806);
	p16(fr + 14, 1);
	p16(fr + 16, 0x0800);
	fr[18] = 6;
	fr[19] = 4;
	p16(fr + 20, 1);
	memcpy(fr + 22, gmac, 6);
	p32(fr + 28, GUEST_IP);
	p32(fr + 38, 0x0a000001); /* someone else */
	assert_false(mmds_net_input(f->net, fr, sizeof(fr), SEC));
	p32(fr + 38, MMDS_IP);
	assert_true(mmds_net_input(f->net, fr, sizeof(fr), SEC));
	r = mmds_net_peek(f->net, &len);
	assert_non_null(r);
	assert_int_equal(len, 42);
	assert_memory_equal(r, gmac, 6);
	assert_int_equal(g16(r + 20), 2); /* reply */
	assert_memory_equal(r + 22, "\x06\x01\x23\x45\x67\x01", 6);
	assert_int_equal(g32(r + 28), MMDS_IP);
	assert_memory_equal(r + 32, gmac, 6);
	assert_int_equal(g32(r + 38), GUEST_IP);
	mmds_net_pop(f->net);
	fx_free(f);
}

static void test_a_get_is_answered_and_the_connection_closes(void **state)
{
	struct fx *f = fx_new();
	char body[16384];
	size_t blen = 0;
	uint8_t fl;
	uint32_t seq;

	connect_(f, 1460);
	assert_true(
	    send_tcp(f, 0x18, "GET /latest/meta-data/ami-id HTTP/1.1\r\nHost: x\r\n\r\n", 0));
	assert_true(recv_tcp(f, &fl, &seq, body, &blen));
	assert_int_equal(seq, f->ack);
	assert_true(fl & 0x10);
	assert_non_null(strstr(body, "HTTP/1.1 200"));
	assert_non_null(strstr(body, "\r\n\r\nami-87654321"));
	f->ack += (uint32_t)blen;
	assert_true(send_tcp(f, 0x10, NULL, 0));
	/* The guest closes: our FIN follows at once (the response is all acknowledged). */
	assert_true(send_tcp(f, 0x11, NULL, 0));
	assert_true(recv_tcp(f, &fl, &seq, NULL, NULL));
	assert_int_equal(fl, 0x11);
	assert_int_equal(seq, f->ack);
	f->ack++;
	assert_true(send_tcp(f, 0x10, NULL, 0));
	/* Gone: a segment now is answered with a reset. */
	assert_true(send_tcp(f, 0x10, NULL, 0));
	assert_true(recv_tcp(f, &fl, &seq, NULL, NULL));
	assert_true(fl & 0x04);
	/* The metrics: 7 frames taken (SYN, ACK, GET, ACK, FIN, ACK, the stray), 4 sent
	 * (SYN-ACK, answer, FIN, RST), one connection made and ended; then nothing new. */
	uint64_t c[MMDS_NET_COUNTERS] = {0};

	mmds_net_take_counts(f->net, c);
	assert_string_equal(mmds_net_counter_names[0], "rx_accepted");
	assert_int_equal(c[0], 7);
	assert_int_equal(c[2], 4);
	assert_int_equal(c[5], 1);
	assert_int_equal(c[6], 1);
	memset(c, 0, sizeof(c));
	mmds_net_take_counts(f->net, c);
	assert_int_equal(c[0] + c[2] + c[5], 0);
	fx_free(f);
}

static void test_a_large_answer_respects_mss_and_window(void **state)
{
	struct fx *f = fx_new();
	char *body = calloc(1, 20000);
	size_t blen = 0, clen = 0;
	uint32_t base, seq;
	uint8_t fl;
	unsigned segs = 0, rounds = 0;
	char *hdr_end;

	f->wnd = 3000;
	connect_(f, 1000);
	base = f->ack;
	assert_true(send_tcp(f, 0x18, "GET /latest/meta-data/big HTTP/1.1\r\n\r\n", 0));
	/* Three segments of 1000 bytes fill the 3000-byte window. */
	while (recv_tcp(f, &fl, &seq, body, &blen)) {
		assert_int_equal(seq, base + blen - 1000);
		segs++;
	}
	assert_int_equal(segs, 3);
	assert_int_equal(blen, 3000);
	/* Each acknowledgement opens the window again, until all of it came. */
	hdr_end = strstr(body, "\r\n\r\n");
	assert_non_null(hdr_end);
	assert_int_equal(sscanf(strstr(body, "Content-Length: "), "Content-Length: %zu", &clen), 1);
	while (blen < (size_t)(hdr_end + 4 - body) + clen) {
		assert_true(++rounds < 20);
		f->ack = base + (uint32_t)blen;
		assert_true(send_tcp(f, 0x10, NULL, 0));
		while (recv_tcp(f, &fl, &seq, body, &blen))
			;
	}
	assert_int_equal(clen, 9000);
	assert_int_equal(blen, (size_t)(hdr_end + 4 - body) + 9000);
	free(body);
	fx_free(f);
}

/* A repeated acknowledgement (same number, same window) means the guest lost what
 * followed: it comes again from there. A window update is not one. */
static void test_a_duplicate_ack_sends_again(void **state)
{
	struct fx *f = fx_new();
	char body[16384];
	size_t blen = 0;
	uint32_t base, seq, first = 0;
	uint8_t fl;
	unsigned n = 0;

	f->wnd = 2000;
	connect_(f, 1000);
	base = f->ack;
	assert_true(send_tcp(f, 0x18, "GET /latest/meta-data/big HTTP/1.1\r\n\r\n", 0));
	while (recv_tcp(f, &fl, &seq, body, &blen))
		n++;
	assert_int_equal(n, 2);
	/* the guest says it has only the first segment, twice */
	f->ack = base + 1000;
	assert_true(send_tcp(f, 0x10, NULL, 0)); /* new ack: the window slides: one more */
	assert_true(recv_tcp(f, &fl, &first, NULL, NULL));
	assert_int_equal(first, base + 2000);
	assert_true(send_tcp(f, 0x10, NULL, 0)); /* the same again: a duplicate */
	assert_true(recv_tcp(f, &fl, &seq, NULL, NULL));
	assert_int_equal(seq, base + 1000); /* sent again from the first one missing */
	while (recv_tcp(f, &fl, &seq, NULL, NULL))
		;
	f->wnd = 4000; /* a window update with the same number: no resend, new data */
	assert_true(send_tcp(f, 0x10, NULL, 0));
	assert_true(recv_tcp(f, &fl, &seq, NULL, NULL));
	assert_int_equal(seq, base + 3000);
	fx_free(f);
}

static void test_other_ports_and_strays_get_resets(void **state)
{
	struct fx *f = fx_new();
	uint8_t fl;
	uint32_t seq;

	/* data on a connection that does not exist */
	f->seq = 5;
	f->ack = 77;
	assert_true(send_tcp(f, 0x18, "GET / HTTP/1.1\r\n\r\n", 0));
	assert_true(recv_tcp(f, &fl, &seq, NULL, NULL));
	assert_int_equal(fl, 0x04);
	assert_int_equal(seq, 77);
	fx_free(f);
}

static void test_malformed_frames_are_dropped(void **state)
{
	struct fx *f = fx_new();
	uint8_t fr[80] = {0};
	size_t len;

	memcpy(fr + 6, gmac, 6);
	p16(fr + 12, 0x0800);
	fr[14] = 0x45;
	p32(fr + 14 + 16, MMDS_IP);
	/* total length past the frame */
	p16(fr + 16, 200);
	fr[14 + 9] = 6;
	assert_true(mmds_net_input(f->net, fr, sizeof(fr), SEC));
	/* a fragment */
	p16(fr + 16, 60);
	p16(fr + 20, 0x2000);
	assert_true(mmds_net_input(f->net, fr, sizeof(fr), SEC));
	/* header length below 20 */
	p16(fr + 20, 0);
	fr[14] = 0x44;
	assert_true(mmds_net_input(f->net, fr, sizeof(fr), SEC));
	/* UDP to the service */
	fr[14] = 0x45;
	fr[14 + 9] = 17;
	assert_true(mmds_net_input(f->net, fr, sizeof(fr), SEC));
	/* a TCP data offset past the segment */
	fr[14 + 9] = 6;
	fr[14 + 20 + 12] = 0xf0;
	p16(fr + 16, 40);
	assert_true(mmds_net_input(f->net, fr, sizeof(fr), SEC));
	/* too short to be anything */
	assert_false(mmds_net_input(f->net, fr, 10, SEC));
	assert_null(mmds_net_peek(f->net, &len));
	assert_true(mmds_net_dropped(f->net) >= 4);
	fx_free(f);
}

/* A guest that never takes its frames back: the queue stops at its cap and counts. */
static void test_queue_is_bounded_when_the_guest_takes_nothing(void **state)
{
	struct fx *f = fx_new();
	size_t n = 0, len;

	for (unsigned i = 0; i < 20000 && !mmds_net_dropped(f->net); i++) {
		f->port = (uint16_t)(1024 + i);
		f->seq = 1;
		send_tcp(f, 0x02, NULL, 1460);
	}
	assert_true(mmds_net_dropped(f->net) > 0);
	while (mmds_net_peek(f->net, &len)) {
		n += len;
		mmds_net_pop(f->net);
	}
	assert_true(n <= 512 << 10);
	fx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_arp_for_the_service_is_answered_others_go_to_the_tap),
	    cmocka_unit_test(test_a_get_is_answered_and_the_connection_closes),
	    cmocka_unit_test(test_a_large_answer_respects_mss_and_window),
	    cmocka_unit_test(test_a_duplicate_ack_sends_again),
	    cmocka_unit_test(test_other_ports_and_strays_get_resets),
	    cmocka_unit_test(test_malformed_frames_are_dropped),
	    cmocka_unit_test(test_queue_is_bounded_when_the_guest_takes_nothing),
	};

	return cmocka_run_group_tests_name("mmds-net", tests, NULL, NULL);
}
