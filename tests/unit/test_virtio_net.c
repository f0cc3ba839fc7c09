/* virtio-net over a real tap device in a private network namespace (the test
 * unshares one, so it needs root; it skips, saying why, without). Frames the "guest"
 * transmits appear on the tap, frames sent into the tap reach the guest's receive
 * buffers with a vnet header, the MAC is in config space, the tap's offloads
 * follow the acked features, and a transmit flood is served a budget at a time. */
#include "tests/unit/test_virtio_harness.h"
#include "api/api.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#define TAP	  "thawt0"
#define ETHERTYPE 0x88b5 /* IEEE local experimental: nothing else sends it */

static bool have_netns;

struct fx {
	struct vm *vm;
	struct virtio_dev *d;
	struct h_queue q[2];
	int pkt; /* AF_PACKET socket on the tap */
	int ifindex;
};

static int make(void **state, uint64_t features)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vm_config cfg = {.nr_nets = 1};
	struct ifreq ifr = {0};
	struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL)};
	int s;

	assert_int_equal(h_parse_net("id=eth0,tap=" TAP ",mac=02:11:22:33:44:55", &cfg.nets[0]), 0);
	f->vm = h_vm_new(H_MEM_SIZE);
	assert_int_equal(vmm_devices_attach(f->vm, &cfg, NULL, 0), 0);
	f->d = virtio_get(f->vm, 0);
	/* Bring the tap up so frames flow. */
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", TAP);
	assert_int_equal(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	assert_int_equal(ioctl(s, SIOCSIFFLAGS, &ifr), 0);
	close(s);
	f->ifindex = (int)if_nametoindex(TAP);
	f->pkt = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	assert_true(f->pkt >= 0);
	sll.sll_ifindex = f->ifindex;
	assert_int_equal(bind(f->pkt, (struct sockaddr *)&sll, sizeof(sll)), 0);
	h_driver_up(f->d, features, f->q, 2, 256, 0);
	*state = f;
	return 0;
}

static int setup_all(void **state)
{
	if (!have_netns)
		return 0;
	return make(state, ~0ull);
}

static int setup_plain(void **state)
{
	if (!have_netns)
		return 0;
	return make(state, 1ull << VIRTIO_F_VERSION_1);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (!f)
		return 0;
	close(f->pkt);
	h_vm_free(f->vm);
	free(f);
	return 0;
}

#define NEED_NETNS()                                                                               \
	do {                                                                                       \
		if (!have_netns) {                                                                 \
			print_message(                                                             \
			    "skipped: needs root to create a network namespace and tap\n");        \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

static size_t frame(uint8_t *buf, const char *payload)
{
	static const uint8_t dst[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t src[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
	uint16_t type = htons(ETHERTYPE);
	size_t n = strlen(payload);

	memcpy(buf, dst, 6);
	memcpy(buf + 6, src, 6);
	memcpy(buf + 12, &type, 2);
	memcpy(buf + 14, payload, n);
	memset(buf + 14 + n, 0, 46 > n ? 46 - n : 0);
	return 14 + (n < 46 ? 46 : n);
}

static void test_mac_in_config_space(void **state)
{
	NEED_NETNS();
	struct fx *f = *state;
	uint8_t mac[6];

	for (unsigned i = 0; i < 6; i++)
		virtio_mmio_access(f->d, VIRTIO_MMIO_CONFIG + i, &mac[i], 1, false);
	assert_memory_equal(mac, "\x02\x11\x22\x33\x44\x55", 6);
	assert_true(f->d->vs.device_features & (1ull << VIRTIO_NET_F_MAC));
}

static void test_guest_transmit_reaches_tap(void **state)
{
	NEED_NETNS();
	struct fx *f = *state;
	uint8_t *hdr = h_ptr(f->vm, H_DATA), *fr = h_ptr(f->vm, H_DATA + 0x1000), got[2048];
	uint64_t a[] = {H_DATA, H_DATA + 0x1000};
	uint32_t l[] = {12, 0}, id, len;
	bool w[] = {false, false};
	struct pollfd p = {.fd = f->pkt, .events = POLLIN};
	bool seen = false;

	memset(hdr, 0, 12); /* no offload: plain frame */
	l[1] = (uint32_t)frame(fr, "thaw-tx");
	h_publish(&f->q[1], h_add_chain(&f->q[1], 2, a, l, w));
	h_kick(f->d, 1);
	assert_true(h_take_used(&f->q[1], &id, &len));
	while (!seen && poll(&p, 1, 1000) == 1) {
		ssize_t n = recv(f->pkt, got, sizeof(got), 0);

		if (n >= 21 && got[12] == 0x88 && got[13] == 0xb5) {
			assert_memory_equal(got + 14, "thaw-tx", 7);
			seen = true;
		}
	}
	assert_true(seen);
}

static void stop_loop(void *opaque)
{
	vmm_loop_stop(opaque, 0);
}

static void test_tap_frame_reaches_guest_receive_buffer(void **state)
{
	NEED_NETNS();
	struct fx *f = *state;
	uint8_t buf[64];
	struct sockaddr_ll to = {
	    .sll_family = AF_PACKET, .sll_ifindex = f->ifindex, .sll_halen = 6};
	uint32_t id, len;
	bool seen = false;

	for (unsigned i = 0; i < 8; i++) {
		uint64_t a[] = {H_DATA + 0x10000 + i * 0x1000ull};
		uint32_t l[] = {2048};
		bool w[] = {true};

		h_publish(&f->q[0], h_add_chain(&f->q[0], 1, a, l, w));
	}
	h_kick(f->d, 0);
	assert_int_equal(
	    sendto(f->pkt, buf, frame(buf, "thaw-rx"), 0, (struct sockaddr *)&to, sizeof(to)), 60);
	f->vm->loop.timeout_ms = 100;
	f->vm->loop.idle = stop_loop;
	f->vm->loop.idle_opaque = &f->vm->loop;
	vmm_loop_run(&f->vm->loop);
	/* Other frames (IPv6 neighbour discovery of the fresh link) may come first. */
	while (!seen && h_take_used(&f->q[0], &id, &len)) {
		uint8_t *p = h_ptr(f->vm, h_desc(&f->q[0])[id].addr);
		struct virtio_net_hdr_v1 *vh = (struct virtio_net_hdr_v1 *)p;

		assert_true(len >= 12 + 14);
		assert_int_equal(vh->num_buffers, 1);
		if (p[12 + 12] == 0x88 && p[12 + 13] == 0xb5) {
			assert_int_equal(len, 12 + 60);
			assert_memory_equal(p + 12 + 14, "thaw-rx", 7);
			seen = true;
		}
	}
	assert_true(seen);
}

static unsigned take_all(struct h_queue *q)
{
	uint32_t id, len;
	unsigned n = 0;

	while (h_take_used(q, &id, &len))
		n++;
	return n;
}

/* A transmit limit of two frames per 10 s sends two of four; lifting it (PATCH) lets the
 * others go on the next loop round. */
static void test_transmit_rate_limit_holds_frames_back(void **state)
{
	NEED_NETNS();
	struct fx *f = *state;
	uint64_t a[] = {H_DATA, H_DATA + 0x1000};
	uint32_t l[] = {12, 0};
	bool w[] = {false, false};

	assert_int_equal(
	    virtio_set_rate_limit(f->d, 1, &(struct vmm_rate_limit){.ops = {2, 0, 10000}}, 0), 0);
	memset(h_ptr(f->vm, H_DATA), 0, 12);
	l[1] = (uint32_t)frame(h_ptr(f->vm, H_DATA + 0x1000), "thaw-rl");
	for (unsigned i = 0; i < 4; i++)
		h_publish(&f->q[1], h_add_chain(&f->q[1], 2, a, l, w));
	h_kick(f->d, 1);
	assert_int_equal(take_all(&f->q[1]), 2);
	assert_int_equal(virtio_set_rate_limit(f->d, 1, &(struct vmm_rate_limit){0}, 0), 0);
	h_loop_round(f->d);
	assert_int_equal(take_all(&f->q[1]), 2);
}

/* A receive limit of one frame per 10 s: however many frames wait in the tap, the
 * guest gets one, and the tap is no longer watched until the limiter's timer. */
static void test_receive_rate_limit_leaves_frames_in_the_tap(void **state)
{
	NEED_NETNS();
	struct fx *f = *state;
	uint8_t buf[64];
	struct sockaddr_ll to = {
	    .sll_family = AF_PACKET, .sll_ifindex = f->ifindex, .sll_halen = 6};

	assert_int_equal(
	    virtio_set_rate_limit(f->d, 0, &(struct vmm_rate_limit){.ops = {1, 0, 10000}}, 0), 0);
	for (unsigned i = 0; i < 8; i++) {
		uint64_t a[] = {H_DATA + 0x10000 + i * 0x1000ull};
		uint32_t l[] = {2048};
		bool w[] = {true};

		h_publish(&f->q[0], h_add_chain(&f->q[0], 1, a, l, w));
	}
	h_kick(f->d, 0);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(sendto(f->pkt, buf, frame(buf, "thaw-rx"), 0,
					(struct sockaddr *)&to, sizeof(to)),
				 60);
	f->vm->loop.timeout_ms = 200;
	f->vm->loop.idle = stop_loop;
	f->vm->loop.idle_opaque = &f->vm->loop;
	vmm_loop_run(&f->vm->loop);
	assert_int_equal(take_all(&f->q[0]), 1);
}

/* The MMDS configuration of an interface goes into its section and back. */
static void test_mmds_configuration_survives_a_snapshot(void **state)
{
	NEED_NETNS();
	struct fx *f = *state;
	struct api_mmds *m;
	struct api_mmds_config cfg = {
	    .version = API_MMDS_V2, .ipv4 = 0xa9fea902u, .imds_compat = true};
	struct virtio_saved s;
	uint32_t version;
	bool compat;

	assert_int_equal(api_mmds_create(0, &m), 0);
	api_mmds_set_config(m, &cfg);
	assert_int_equal(virtio_net_set_mmds(f->d, m), 0);
	h_file_roundtrip(f->d, &s);
	assert_int_equal(s.dev.net.mmds_ipv4, 0xa9fea902u);
	assert_int_equal(s.dev.net.mmds_version, API_MMDS_V2);
	assert_true(s.dev.net.mmds_imds_compat);
	assert_int_equal(virtio_net_set_mmds(f->d, NULL), 0);
	assert_int_equal(virtio_net_saved_mmds(f->d, &version, &compat), 0);
	assert_int_equal(virtio_restore(f->d, &s), 0);
	assert_int_equal(virtio_net_saved_mmds(f->d, &version, &compat), 0xa9fea902u);
	assert_int_equal(version, API_MMDS_V2);
	assert_true(compat);
	api_mmds_destroy(m);
}

static void test_offloads_follow_acked_features(void **state)
{
	NEED_NETNS();
	struct fx *f = *state;
	struct virtio_saved s;

	virtio_save(f->d, &s);
	assert_int_equal(s.dev.net.offload_flags,
			 TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN);
	assert_string_equal(s.dev.net.tap, TAP);
	assert_memory_equal(s.dev.net.mac, "\x02\x11\x22\x33\x44\x55", 6);
	/* A reset turns them off again. */
	h_wr(f->d, VIRTIO_MMIO_STATUS, 0);
	virtio_save(f->d, &s);
	assert_int_equal(s.dev.net.offload_flags, 0);
}

static void test_offloads_off_when_not_acked(void **state)
{
	NEED_NETNS();
	struct fx *f = *state;
	struct virtio_saved s;

	virtio_save(f->d, &s);
	assert_int_equal(s.dev.net.offload_flags, 0);
}

static void test_short_transmit_chain_needs_reset(void **state)
{
	NEED_NETNS();
	struct fx *f = *state;
	uint64_t a[] = {H_DATA};
	uint32_t l[] = {4};
	bool w[] = {false};

	h_publish(&f->q[1], h_add_chain(&f->q[1], 1, a, l, w));
	h_kick(f->d, 1);
	assert_true(h_needs_reset(f->d));
}

/* A guest republishing one transmit chain as fast as it is used gets
 * VIRTIO_BUDGET_CHAINS frames per notification; the rest goes on the next loop round. */
static void test_transmit_flood_gets_a_budget_per_notification(void **state)
{
	NEED_NETNS();
	struct fx *f = *state;
	uint8_t *hdr = h_ptr(f->vm, H_DATA), *fr = h_ptr(f->vm, H_DATA + 0x1000);
	uint64_t a[] = {H_DATA, H_DATA + 0x1000};
	uint32_t l[] = {12, 0};
	bool w[] = {false, false};
	struct h_flood fl;
	uint16_t first, second;

	memset(hdr, 0, 12);
	l[1] = (uint32_t)frame(fr, "thaw-flood");
	/* Below 65536 so the 16-bit used index cannot wrap past what it measures. */
	h_flood_start(&fl, &f->q[1], h_add_chain(&f->q[1], 2, a, l, w), 60000);
	h_kick(f->d, 1);
	first = h_used_idx(&f->q[1]);
	h_flood_stop(&fl);
	assert_int_equal(first, VIRTIO_BUDGET_CHAINS);
	h_loop_round(f->d);
	second = h_used_idx(&f->q[1]);
	assert_int_equal((uint16_t)(second - first), VIRTIO_BUDGET_CHAINS);
	assert_false(h_needs_reset(f->d));
}

static void test_restore_reapplies_and_checks_mac(void **state)
{
	NEED_NETNS();
	struct fx *f = *state;
	struct virtio_saved s;

	h_file_roundtrip(f->d, &s);
	assert_string_equal(s.dev.net.tap, TAP);
	assert_memory_equal(s.dev.net.mac, "\x02\x11\x22\x33\x44\x55", 6);
	assert_int_equal(virtio_restore(f->d, &s), 0);
	assert_int_equal(virtio_reopen(f->d, NULL), 0);
	virtio_save(f->d, &s);
	assert_int_equal(s.dev.net.offload_flags,
			 TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN);
	s.dev.net.mac[5] ^= 1;
	assert_int_equal(virtio_restore(f->d, &s), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_mac_in_config_space, setup_all, teardown),
	    cmocka_unit_test_setup_teardown(test_guest_transmit_reaches_tap, setup_plain, teardown),
	    cmocka_unit_test_setup_teardown(test_tap_frame_reaches_guest_receive_buffer,
					    setup_plain, teardown),
	    cmocka_unit_test_setup_teardown(test_offloads_follow_acked_features, setup_all,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_offloads_off_when_not_acked, setup_plain,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_short_transmit_chain_needs_reset, setup_plain,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_restore_reapplies_and_checks_mac, setup_all,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_mmds_configuration_survives_a_snapshot,
					    setup_plain, teardown),
	    cmocka_unit_test_setup_teardown(test_transmit_rate_limit_holds_frames_back, setup_plain,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_receive_rate_limit_leaves_frames_in_the_tap,
					    setup_plain, teardown),
	    cmocka_unit_test_setup_teardown(test_transmit_flood_gets_a_budget_per_notification,
					    setup_plain, teardown),
	};

	/* Our own namespace: the tap never appears on the host's network. */
	have_netns = unshare(CLONE_NEWNET) == 0 && access("/dev/net/tun", R_OK | W_OK) == 0;
	return cmocka_run_group_tests_name("virtio-net", tests, NULL, NULL);
}
