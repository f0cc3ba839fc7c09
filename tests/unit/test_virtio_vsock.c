/* virtio-vsock: the pure connection state machine (connect, accept, refuse, credit,
 * shutdown, reset), then the device end to end with real unix sockets on the host
 * side and hand-built rings on the guest side (hybrid CONNECT/OK protocol, data both
 * ways, guest-initiated connections, refusals, transport reset after restore, floods
 * served a budget per notification). */
#include "tests/unit/test_virtio_harness.h"
#include "vmm/virtio/vsock_conn.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>

#define GUEST_CID 3
#define BUF	  65536u

static struct virtio_vsock_hdr pkt(uint16_t op, uint32_t len)
{
	struct virtio_vsock_hdr h = {
	    .src_cid = GUEST_CID,
	    .dst_cid = 2,
	    .src_port = 1234,
	    .dst_port = 1u << 30,
	    .len = len,
	    .type = VIRTIO_VSOCK_TYPE_STREAM,
	    .op = op,
	    .buf_alloc = 4096,
	    .fwd_cnt = 0,
	};
	return h;
}

static struct vsock_conn host_conn(void)
{
	struct vsock_conn c;

	vsock_conn_host_connect(&c, GUEST_CID, 1u << 30, 1234, BUF);
	return c;
}

static struct vsock_conn established(void)
{
	struct vsock_conn c = host_conn();
	struct virtio_vsock_hdr h, r = pkt(VIRTIO_VSOCK_OP_RESPONSE, 0);

	assert_true(vsock_conn_next_ctrl(&c, &h));
	assert_int_equal(vsock_conn_recv(&c, &r, 0), VSOCK_A_CONNECTED | VSOCK_A_CREDIT);
	return c;
}

/* ---------------------------------------------------------------- state machine */

static void test_host_connect_sends_request(void **state)
{
	struct vsock_conn c = host_conn();
	struct virtio_vsock_hdr h;

	assert_int_equal(c.state, VSOCK_CONNECTING);
	assert_true(vsock_conn_next_ctrl(&c, &h));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_REQUEST);
	assert_int_equal(h.src_cid, 2);
	assert_int_equal(h.dst_cid, GUEST_CID);
	assert_int_equal(h.src_port, 1u << 30);
	assert_int_equal(h.dst_port, 1234);
	assert_int_equal(h.type, VIRTIO_VSOCK_TYPE_STREAM);
	assert_int_equal(h.buf_alloc, BUF);
	assert_false(vsock_conn_next_ctrl(&c, &h));
}

static void test_guest_accept_establishes(void **state)
{
	struct vsock_conn c = established();

	assert_int_equal(c.state, VSOCK_ESTABLISHED);
	assert_int_equal(vsock_conn_peer_credit(&c), 4096);
}

static void test_guest_refuse_with_rst(void **state)
{
	struct vsock_conn c = host_conn();
	struct virtio_vsock_hdr h, r = pkt(VIRTIO_VSOCK_OP_RST, 0);

	assert_true(vsock_conn_next_ctrl(&c, &h));
	assert_int_equal(vsock_conn_recv(&c, &r, 0), VSOCK_A_REFUSED);
	assert_true(vsock_conn_done(&c));
}

static void test_unexpected_packet_while_connecting_resets(void **state)
{
	struct vsock_conn c = host_conn();
	struct virtio_vsock_hdr h, r = pkt(VIRTIO_VSOCK_OP_RW, 10);

	assert_true(vsock_conn_next_ctrl(&c, &h));
	assert_true(vsock_conn_recv(&c, &r, 10) & VSOCK_A_REFUSED);
	assert_true(vsock_conn_next_ctrl(&c, &h));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	assert_true(vsock_conn_done(&c));
}

static void test_guest_connect_accepted_and_refused(void **state)
{
	struct vsock_conn c;
	struct virtio_vsock_hdr h, req = pkt(VIRTIO_VSOCK_OP_REQUEST, 0);

	vsock_conn_guest_connect(&c, &req, true, BUF);
	assert_int_equal(c.state, VSOCK_ESTABLISHED);
	assert_true(vsock_conn_next_ctrl(&c, &h));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RESPONSE);
	assert_int_equal(h.dst_port, 1234);
	assert_int_equal(h.src_port, 1u << 30);
	assert_int_equal(vsock_conn_peer_credit(&c), 4096);

	vsock_conn_guest_connect(&c, &req, false, BUF);
	assert_true(vsock_conn_next_ctrl(&c, &h));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	assert_true(vsock_conn_done(&c));
}

static void test_data_within_credit_is_forwarded(void **state)
{
	struct vsock_conn c = established();
	struct virtio_vsock_hdr rw = pkt(VIRTIO_VSOCK_OP_RW, 1000);

	assert_int_equal(vsock_conn_recv(&c, &rw, 1000), VSOCK_A_DATA | VSOCK_A_CREDIT);
	assert_int_equal(c.rx_cnt, 1000);
}

static void test_data_beyond_credit_resets(void **state)
{
	struct vsock_conn c = established();
	struct virtio_vsock_hdr h, rw = pkt(VIRTIO_VSOCK_OP_RW, BUF - 10);

	assert_true(vsock_conn_recv(&c, &rw, BUF - 10) & VSOCK_A_DATA);
	rw.len = 11; /* only 10 bytes of our buffer are free */
	assert_true(vsock_conn_recv(&c, &rw, 11) & VSOCK_A_CLOSE);
	assert_true(vsock_conn_next_ctrl(&c, &h));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
}

static void test_data_len_beyond_chain_resets(void **state)
{
	struct vsock_conn c = established();
	struct virtio_vsock_hdr rw = pkt(VIRTIO_VSOCK_OP_RW, 100);

	assert_true(vsock_conn_recv(&c, &rw, 50) & VSOCK_A_CLOSE);
	assert_int_equal(c.state, VSOCK_CLOSED);
}

static void test_forwarding_sends_credit_update_when_guest_view_low(void **state)
{
	struct vsock_conn c = established();
	struct virtio_vsock_hdr h, rw = pkt(VIRTIO_VSOCK_OP_RW, BUF / 4);

	vsock_conn_recv(&c, &rw, BUF / 4);
	vsock_conn_forwarded(&c, BUF / 4);
	assert_false(c.pending & VSOCK_P_CREDIT_UPDATE); /* guest still sees 3/4 free */
	rw.len = BUF / 2;
	vsock_conn_recv(&c, &rw, BUF / 2);
	vsock_conn_forwarded(&c, BUF / 2);
	assert_true(c.pending & VSOCK_P_CREDIT_UPDATE);
	assert_true(vsock_conn_next_ctrl(&c, &h));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	assert_int_equal(h.fwd_cnt, 3 * BUF / 4);
	assert_int_equal(h.buf_alloc, BUF);
}

static void test_credit_request_answered(void **state)
{
	struct vsock_conn c = established();
	struct virtio_vsock_hdr h, rq = pkt(VIRTIO_VSOCK_OP_CREDIT_REQUEST, 0);

	assert_true(vsock_conn_recv(&c, &rq, 0) & VSOCK_A_KICK);
	assert_true(vsock_conn_next_ctrl(&c, &h));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
}

static void test_peer_credit_limits_host_to_guest(void **state)
{
	struct vsock_conn c = established();
	struct virtio_vsock_hdr h, up = pkt(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0);

	vsock_conn_data_hdr(&c, &h, 4000);
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(h.len, 4000);
	assert_int_equal(vsock_conn_peer_credit(&c), 96);
	vsock_conn_data_hdr(&c, &h, 96);
	assert_int_equal(vsock_conn_peer_credit(&c), 0);
	/* Out of credit: ask once, not again until the guest speaks. */
	vsock_conn_want_credit(&c);
	assert_true(vsock_conn_next_ctrl(&c, &h));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_CREDIT_REQUEST);
	vsock_conn_want_credit(&c);
	assert_false(vsock_conn_next_ctrl(&c, &h));
	up.fwd_cnt = 4096;
	assert_true(vsock_conn_recv(&c, &up, 0) & VSOCK_A_CREDIT);
	assert_int_equal(vsock_conn_peer_credit(&c), 4096);
}

static void test_bogus_peer_credit_is_zero_not_huge(void **state)
{
	struct vsock_conn c = established();
	struct virtio_vsock_hdr up = pkt(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0);
	struct virtio_vsock_hdr h;

	vsock_conn_data_hdr(&c, &h, 4096);
	up.buf_alloc = 100; /* shrank below what is in flight */
	vsock_conn_recv(&c, &up, 0);
	assert_int_equal(vsock_conn_peer_credit(&c), 0);
}

static void test_guest_shutdown_send_then_both(void **state)
{
	struct vsock_conn c = established();
	struct virtio_vsock_hdr h, sd = pkt(VIRTIO_VSOCK_OP_SHUTDOWN, 0);

	sd.flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
	assert_true(vsock_conn_recv(&c, &sd, 0) & VSOCK_A_SHUT_WR);
	assert_int_equal(c.state, VSOCK_ESTABLISHED);
	/* Data after the guest said it sends no more is a violation... checked below. */
	sd.flags = VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND;
	assert_true(vsock_conn_recv(&c, &sd, 0) & VSOCK_A_CLOSE);
	assert_true(vsock_conn_next_ctrl(&c, &h));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	assert_true(vsock_conn_done(&c));
}

static void test_data_after_guest_shutdown_send_resets(void **state)
{
	struct vsock_conn c = established();
	struct virtio_vsock_hdr sd = pkt(VIRTIO_VSOCK_OP_SHUTDOWN, 0),
				rw = pkt(VIRTIO_VSOCK_OP_RW, 1);

	sd.flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
	vsock_conn_recv(&c, &sd, 0);
	assert_true(vsock_conn_recv(&c, &rw, 1) & VSOCK_A_CLOSE);
}

static void test_guest_shutdown_rcv_stops_host_data(void **state)
{
	struct vsock_conn c = established();
	struct virtio_vsock_hdr sd = pkt(VIRTIO_VSOCK_OP_SHUTDOWN, 0);

	sd.flags = VIRTIO_VSOCK_SHUTDOWN_RCV;
	vsock_conn_recv(&c, &sd, 0);
	assert_int_equal(vsock_conn_peer_credit(&c), 0);
}

static void test_host_eof_sends_shutdown(void **state)
{
	struct vsock_conn c = established();
	struct virtio_vsock_hdr h, rst = pkt(VIRTIO_VSOCK_OP_RST, 0);

	vsock_conn_host_eof(&c);
	assert_true(vsock_conn_next_ctrl(&c, &h));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_SHUTDOWN);
	assert_int_equal(h.flags, VIRTIO_VSOCK_SHUTDOWN_SEND);
	assert_false(vsock_conn_done(&c));
	assert_int_equal(vsock_conn_recv(&c, &rst, 0), VSOCK_A_CLOSE);
	assert_true(vsock_conn_done(&c));
}

static void test_host_eof_while_connecting_cancels(void **state)
{
	struct vsock_conn c = host_conn();
	struct virtio_vsock_hdr h;

	vsock_conn_host_eof(&c);
	assert_true(vsock_conn_next_ctrl(&c, &h));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST); /* RST wins over the pending REQUEST */
	assert_false(vsock_conn_next_ctrl(&c, &h));
	assert_true(vsock_conn_done(&c));
}

static void test_host_error_resets(void **state)
{
	struct vsock_conn c = established();
	struct virtio_vsock_hdr h;

	vsock_conn_host_error(&c);
	assert_true(vsock_conn_next_ctrl(&c, &h));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	assert_true(vsock_conn_done(&c));
}

static void test_guest_rst_closes_established(void **state)
{
	struct vsock_conn c = established();
	struct virtio_vsock_hdr rst = pkt(VIRTIO_VSOCK_OP_RST, 0);

	assert_int_equal(vsock_conn_recv(&c, &rst, 0), VSOCK_A_CLOSE);
	assert_true(vsock_conn_done(&c));
	/* Nothing more happens on a closed connection. */
	assert_int_equal(vsock_conn_recv(&c, &rst, 0), 0);
}

static void test_unknown_op_resets(void **state)
{
	struct vsock_conn c = established();
	struct virtio_vsock_hdr bad = pkt(99, 0);

	assert_true(vsock_conn_recv(&c, &bad, 0) & VSOCK_A_CLOSE);
	assert_int_equal(c.state, VSOCK_CLOSED);
}

static void test_rst_for_stray_packet_swaps_addresses(void **state)
{
	struct virtio_vsock_hdr in = pkt(VIRTIO_VSOCK_OP_RW, 5), out;

	vsock_rst_for(&in, &out);
	assert_int_equal(out.op, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(out.src_cid, 2);
	assert_int_equal(out.dst_cid, GUEST_CID);
	assert_int_equal(out.src_port, in.dst_port);
	assert_int_equal(out.dst_port, in.src_port);
	assert_int_equal(out.len, 0);
}

/* ---------------------------------------------------------------- the device */

struct dfx {
	struct vm *vm;
	struct virtio_dev *d;
	struct h_queue q[3]; /* rx, tx, event */
	char dir[64], uds[96];
	unsigned next_rx; /* next rx buffer slot */
	unsigned next_tx;
};

#define RX_BUF(i) (H_DATA + (uint64_t)(i)*0x2000)
#define TX_BUF(i) (H_DATA + 0x100000 + (uint64_t)((i) % 32) * 0x2000)
#define EV_BUF	  (H_DATA + 0x200000)

static void add_rx(struct dfx *f, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t a[] = {RX_BUF(f->next_rx++ % 64)};
		uint32_t l[] = {0x2000};
		bool w[] = {true};

		h_publish(&f->q[0], h_add_chain(&f->q[0], 1, a, l, w));
	}
	h_kick(f->d, 0);
}

static int dsetup(void **state)
{
	struct dfx *f = calloc(1, sizeof(*f));
	char spec[160];
	struct vm_config cfg = {0};

	snprintf(f->dir, sizeof(f->dir), "/tmp/thaw-test-vsock-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->uds, sizeof(f->uds), "%s/v.sock", f->dir);
	snprintf(spec, sizeof(spec), "cid=%d,uds=%s", GUEST_CID, f->uds);
	assert_int_equal(h_parse_vsock(spec, &cfg.vsock), 0);
	f->vm = h_vm_new(H_MEM_SIZE);
	assert_int_equal(vmm_devices_attach(f->vm, &cfg, NULL, 0), 0);
	f->d = virtio_get(f->vm, 0);
	h_driver_up(f->d, ~0ull, f->q, 3, 64, 0);
	add_rx(f, 16);
	*state = f;
	return 0;
}

static int dteardown(void **state)
{
	struct dfx *f = *state;
	char cmd[128];

	h_vm_free(f->vm);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void stop_loop(void *opaque)
{
	vmm_loop_stop(opaque, 0);
}

/* Runs the main loop until it has been idle for 50 ms. */
static void pump(struct dfx *f)
{
	f->vm->loop.stop = false;
	f->vm->loop.timeout_ms = 50;
	f->vm->loop.idle = stop_loop;
	f->vm->loop.idle_opaque = &f->vm->loop;
	vmm_loop_run(&f->vm->loop);
}

/* Takes the next packet the device put on the rx queue; false when none. */
static bool rx_pkt(struct dfx *f, struct virtio_vsock_hdr *h, void *payload, size_t cap)
{
	uint32_t id, len;
	uint8_t *buf;

	if (!h_take_used(&f->q[0], &id, &len))
		return false;
	buf = h_ptr(f->vm, h_desc(&f->q[0])[id].addr);
	assert_true(len >= sizeof(*h));
	memcpy(h, buf, sizeof(*h));
	assert_int_equal(len, sizeof(*h) + h->len);
	if (payload)
		memcpy(payload, buf + sizeof(*h), h->len < cap ? h->len : cap);
	add_rx(f, 1);
	return true;
}

/* The guest sends one packet. */
static void tx_pkt(struct dfx *f, struct virtio_vsock_hdr h, const void *payload)
{
	uint64_t gpa = TX_BUF(f->next_tx++);
	uint64_t a[] = {gpa};
	uint32_t l[] = {(uint32_t)sizeof(h) + h.len}, id, len;
	bool w[] = {false};

	memcpy(h_ptr(f->vm, gpa), &h, sizeof(h));
	if (h.len)
		memcpy(h_ptr(f->vm, gpa + sizeof(h)), payload, h.len);
	h_publish(&f->q[1], h_add_chain(&f->q[1], 1, a, l, w));
	h_kick(f->d, 1);
	assert_true(h_take_used(&f->q[1], &id, &len));
}

static int client(struct dfx *f, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static ssize_t read_timeout(int fd, void *buf, size_t len)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	if (poll(&p, 1, 1000) != 1)
		return -1;
	return read(fd, buf, len);
}

static struct virtio_vsock_hdr from_guest(uint16_t op, uint32_t src_port, uint32_t dst_port,
					  uint32_t len)
{
	struct virtio_vsock_hdr h = {.src_cid = GUEST_CID,
				     .dst_cid = 2,
				     .src_port = src_port,
				     .dst_port = dst_port,
				     .len = len,
				     .type = VIRTIO_VSOCK_TYPE_STREAM,
				     .op = op,
				     .buf_alloc = 65536};
	return h;
}

/* Host client connects to guest port 1234 and the guest accepts. */
static int host_connect(struct dfx *f, uint32_t *local)
{
	struct virtio_vsock_hdr h;
	char line[64] = {0};
	int fd = client(f, f->uds);

	assert_int_equal(write(fd, "CONNECT 1234\n", 13), 13);
	pump(f);
	assert_true(rx_pkt(f, &h, NULL, 0));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_REQUEST);
	assert_int_equal(h.dst_port, 1234);
	assert_int_equal(h.dst_cid, GUEST_CID);
	*local = h.src_port;
	tx_pkt(f, from_guest(VIRTIO_VSOCK_OP_RESPONSE, 1234, *local, 0), NULL);
	assert_true(read_timeout(fd, line, sizeof(line) - 1) > 0);
	snprintf(line + 32, 32, "OK %u\n", *local);
	assert_string_equal(line, line + 32);
	return fd;
}

static void test_device_host_initiated_connection_and_data(void **state)
{
	struct dfx *f = *state;
	struct virtio_vsock_hdr h;
	uint32_t local;
	char buf[16] = {0};
	int fd = host_connect(f, &local);

	assert_int_equal(write(fd, "ping", 4), 4);
	pump(f);
	assert_true(rx_pkt(f, &h, buf, sizeof(buf)));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(h.len, 4);
	assert_memory_equal(buf, "ping", 4);

	tx_pkt(f, from_guest(VIRTIO_VSOCK_OP_RW, 1234, local, 4), "pong");
	memset(buf, 0, sizeof(buf));
	assert_int_equal(read_timeout(fd, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "pong", 4);

	/* The client hangs up: the guest is told the host sends no more. */
	close(fd);
	pump(f);
	assert_true(rx_pkt(f, &h, NULL, 0));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_SHUTDOWN);
	tx_pkt(f, from_guest(VIRTIO_VSOCK_OP_RST, 1234, local, 0), NULL);
	pump(f);
	assert_false(rx_pkt(f, &h, NULL, 0));
	assert_false(h_needs_reset(f->d));
}

static void test_device_guest_refusal_closes_client(void **state)
{
	struct dfx *f = *state;
	struct virtio_vsock_hdr h;
	char c;
	int fd = client(f, f->uds);

	assert_int_equal(write(fd, "CONNECT 99\n", 11), 11);
	pump(f);
	assert_true(rx_pkt(f, &h, NULL, 0));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_REQUEST);
	tx_pkt(f, from_guest(VIRTIO_VSOCK_OP_RST, 99, h.src_port, 0), NULL);
	assert_int_equal(read_timeout(fd, &c, 1), 0); /* EOF, no OK */
	close(fd);
}

static void test_device_bad_connect_line_closes_client(void **state)
{
	struct dfx *f = *state;
	struct virtio_vsock_hdr h;
	char c;
	int fd = client(f, f->uds);

	assert_int_equal(write(fd, "HELLO there\n", 12), 12);
	pump(f);
	assert_int_equal(read_timeout(fd, &c, 1), 0);
	assert_false(rx_pkt(f, &h, NULL, 0));
	close(fd);
}

static void test_device_guest_initiated_connection(void **state)
{
	struct dfx *f = *state;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct virtio_vsock_hdr h;
	char buf[16] = {0};
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_5000", f->uds);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);

	tx_pkt(f, from_guest(VIRTIO_VSOCK_OP_REQUEST, 777, 5000, 0), NULL);
	assert_true(rx_pkt(f, &h, NULL, 0));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RESPONSE);
	assert_int_equal(h.src_port, 5000);
	assert_int_equal(h.dst_port, 777);
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);

	tx_pkt(f, from_guest(VIRTIO_VSOCK_OP_RW, 777, 5000, 5), "hello");
	assert_int_equal(read_timeout(fd, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(write(fd, "world", 5), 5);
	pump(f);
	assert_true(rx_pkt(f, &h, buf, sizeof(buf)));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
	assert_memory_equal(buf, "world", 5);

	/* The guest closes both directions: thaw answers RST and closes the socket. */
	h = from_guest(VIRTIO_VSOCK_OP_SHUTDOWN, 777, 5000, 0);
	h.flags = VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND;
	tx_pkt(f, h, NULL);
	assert_true(rx_pkt(f, &h, NULL, 0));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(read_timeout(fd, buf, 1), 0);
	close(fd);
	close(lfd);
}

static void test_device_guest_connect_to_nothing_gets_rst(void **state)
{
	struct dfx *f = *state;
	struct virtio_vsock_hdr h;

	tx_pkt(f, from_guest(VIRTIO_VSOCK_OP_REQUEST, 778, 6000, 0), NULL);
	assert_true(rx_pkt(f, &h, NULL, 0));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(h.dst_port, 778);
	/* A packet for no connection gets an RST too; an RST gets nothing. */
	tx_pkt(f, from_guest(VIRTIO_VSOCK_OP_RW, 779, 6001, 3), "abc");
	assert_true(rx_pkt(f, &h, NULL, 0));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
	tx_pkt(f, from_guest(VIRTIO_VSOCK_OP_RST, 779, 6001, 0), NULL);
	assert_false(rx_pkt(f, &h, NULL, 0));
}

static void test_device_spoofed_source_cid_gets_rst(void **state)
{
	struct dfx *f = *state;
	struct virtio_vsock_hdr h = from_guest(VIRTIO_VSOCK_OP_REQUEST, 1, 5000, 0);

	h.src_cid = 42;
	tx_pkt(f, h, NULL);
	assert_true(rx_pkt(f, &h, NULL, 0));
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RST);
}

static void test_device_host_data_waits_for_credit(void **state)
{
	struct dfx *f = *state;
	struct virtio_vsock_hdr h, up;
	static char big[8192];
	uint32_t local, total = 0;
	int fd = host_connect(f, &local);

	/* The guest granted 65536 bytes (from_guest's buf_alloc): shrink it. */
	up = from_guest(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 1234, local, 0);
	up.buf_alloc = 1000;
	tx_pkt(f, up, NULL);
	memset(big, 'z', sizeof(big));
	assert_int_equal(write(fd, big, sizeof(big)), sizeof(big));
	pump(f);
	while (rx_pkt(f, &h, NULL, 0)) {
		if (h.op == VIRTIO_VSOCK_OP_RW)
			total += h.len;
		else
			assert_int_equal(h.op, VIRTIO_VSOCK_OP_CREDIT_REQUEST);
	}
	assert_int_equal(total, 1000);
	/* The guest read it all: more flows. */
	up.fwd_cnt = 1000;
	tx_pkt(f, up, NULL);
	pump(f);
	while (rx_pkt(f, &h, NULL, 0))
		if (h.op == VIRTIO_VSOCK_OP_RW)
			total += h.len;
	assert_int_equal(total, 2000);
	close(fd);
}

/* The host does not read for a while: guest data beyond what the socket takes is
 * kept (within the credit granted), arrives complete and in order once the host
 * reads, and the guest is told about the freed space. */
static void test_device_guest_data_buffered_when_host_slow(void **state)
{
	struct dfx *f = *state;
	struct virtio_vsock_hdr h;
	static uint8_t chunk[4096], got[256 * 1024];
	uint32_t local, sent = 0, got_n = 0, updates = 0, last_fwd = 0;
	int fd = host_connect(f, &local);

	/* 256 KiB: exactly the credit the device advertises, more than a unix socket
	 * buffers by default. */
	while (sent < sizeof(got)) {
		for (unsigned i = 0; i < sizeof(chunk); i++)
			chunk[i] = (uint8_t)((sent + i) * 31 + 7);
		tx_pkt(f, from_guest(VIRTIO_VSOCK_OP_RW, 1234, local, sizeof(chunk)), chunk);
		sent += sizeof(chunk);
		while (rx_pkt(f, &h, NULL, 0)) {
			assert_int_equal(h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
			last_fwd = h.fwd_cnt;
			updates++;
		}
	}
	assert_false(h_needs_reset(f->d));
	while (got_n < sizeof(got)) {
		ssize_t n = read_timeout(fd, got + got_n, sizeof(got) - got_n);

		assert_true(n > 0);
		got_n += (uint32_t)n;
		pump(f); /* the device flushes its buffer as the socket drains */
	}
	for (uint32_t i = 0; i < sizeof(got); i++)
		if (got[i] != (uint8_t)(i * 31 + 7))
			fail_msg("byte %u differs", i);
	while (rx_pkt(f, &h, NULL, 0)) {
		assert_int_equal(h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
		last_fwd = h.fwd_cnt;
		updates++;
	}
	assert_true(updates > 0);
	/* The guest's view of our free space is back above half: it can go on. */
	assert_true(last_fwd >= sizeof(got) / 2);
	close(fd);
}

static void test_device_config_and_restore_sends_transport_reset(void **state)
{
	struct dfx *f = *state;
	struct virtio_saved s;
	uint64_t a[] = {EV_BUF};
	uint32_t l[] = {4}, id, len, cid;
	bool w[] = {true};

	cid = h_rd(f->d, VIRTIO_MMIO_CONFIG);
	assert_int_equal(cid, GUEST_CID);
	assert_int_equal(h_rd(f->d, VIRTIO_MMIO_CONFIG + 4), 0);
	h_publish(&f->q[2], h_add_chain(&f->q[2], 1, a, l, w));
	h_kick(f->d, 2);
	assert_false(h_take_used(&f->q[2], &id, &len)); /* no event without a reason */

	h_file_roundtrip(f->d, &s);
	assert_int_equal(s.dev.vsock.guest_cid, GUEST_CID);
	assert_string_equal(s.dev.vsock.uds_path, f->uds);
	*(uint32_t *)h_ptr(f->vm, EV_BUF) = 0xffffffff;
	assert_int_equal(virtio_restore(f->d, &s), 0);
	assert_true(h_take_used(&f->q[2], &id, &len));
	assert_int_equal(len, 4);
	assert_int_equal(*(uint32_t *)h_ptr(f->vm, EV_BUF), VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);

	virtio_save(f->d, &s);
	s.dev.vsock.guest_cid = 4;
	assert_int_equal(virtio_restore(f->d, &s), -EINVAL);
}

static void test_device_reopen_listens_on_new_path(void **state)
{
	struct dfx *f = *state;
	char other[128];
	int fd;

	snprintf(other, sizeof(other), "%s/w.sock", f->dir);
	assert_int_equal(virtio_reopen(f->d, other), 0);
	fd = client(f, other);
	close(fd);
}

/* A guest republishing one transmit packet as fast as it is used gets
 * VIRTIO_BUDGET_CHAINS packets per notification; the rest goes on the next loop round. */
static void test_device_tx_flood_gets_a_budget_per_notification(void **state)
{
	struct dfx *f = *state;
	struct virtio_vsock_hdr h = from_guest(VIRTIO_VSOCK_OP_RST, 779, 6001, 0);
	uint64_t a[] = {TX_BUF(0)};
	uint32_t l[] = {sizeof(h)};
	bool w[] = {false};
	struct h_flood fl;
	uint16_t first, second;

	/* A ring four budgets long, so even a guest slower than the device has more
	 * published than one notification may take. */
	h_driver_up(f->d, ~0ull, f->q, 3, 4 * VIRTIO_BUDGET_CHAINS, 0);
	/* An RST for no connection: the device takes it and answers nothing. */
	memcpy(h_ptr(f->vm, TX_BUF(0)), &h, sizeof(h));
	/* Below 65536 so the 16-bit used index cannot wrap past what it measures. */
	h_flood_start(&fl, &f->q[1], h_add_chain(&f->q[1], 1, a, l, w), 60000);
	h_kick(f->d, 1);
	first = h_used_idx(&f->q[1]);
	h_flood_stop(&fl);
	assert_int_equal(first, VIRTIO_BUDGET_CHAINS);
	h_loop_round(f->d);
	second = h_used_idx(&f->q[1]);
	assert_int_equal((uint16_t)(second - first), VIRTIO_BUDGET_CHAINS);
	assert_false(h_needs_reset(f->d));
}

/* More packets owed to the guest than the budget (32 stray RSTs and 40 connection
 * requests) and a guest that republishes one receive buffer: one notification pushes
 * VIRTIO_BUDGET_CHAINS, the next loop round the rest. */
static void test_device_rx_backlog_gets_a_budget_per_notification(void **state)
{
	struct dfx *f = *state;
	uint64_t a[] = {EV_BUF + 0x1000};
	uint32_t l[] = {64};
	bool w[] = {true};
	struct h_flood fl;
	int fds[40];
	uint16_t base, first, second;

	/* Stray packets: the first 16 RSTs use the receive buffers dsetup gave, the
	 * next 32 wait (VSOCK_RST_MAX). */
	for (unsigned i = 0; i < 16 + 32; i++)
		tx_pkt(f, from_guest(VIRTIO_VSOCK_OP_RW, 700 + i, 6000, 0), NULL);
	base = h_used_idx(&f->q[0]);
	assert_int_equal(base, 16);
	for (unsigned i = 0; i < 40; i++) {
		fds[i] = client(f, f->uds);
		assert_int_equal(write(fds[i], "CONNECT 1234\n", 13), 13);
	}
	pump(f);
	assert_int_equal(h_used_idx(&f->q[0]), base);
	h_flood_start(&fl, &f->q[0], h_add_chain(&f->q[0], 1, a, l, w), 60000);
	h_kick(f->d, 0);
	first = (uint16_t)(h_used_idx(&f->q[0]) - base);
	h_flood_stop(&fl);
	assert_int_equal(first, VIRTIO_BUDGET_CHAINS);
	h_loop_round(f->d);
	second = (uint16_t)(h_used_idx(&f->q[0]) - base);
	assert_int_equal(second, 32 + 40);
	assert_false(h_needs_reset(f->d));
	for (unsigned i = 0; i < 40; i++)
		close(fds[i]);
}

/* Firecracker's "vsock" metrics group: one line's counters after a host-initiated
 * connection carries "ping" to the guest and "pong" back and is closed, then the changes
 * since that line (none). The one device is the group: no per-device entry. */
static int64_t vsock_metric(json_object *m, const char *name)
{
	json_object *g, *v;

	if (!json_object_object_get_ex(m, "vsock", &g) || !json_object_object_get_ex(g, name, &v))
		fail_msg("no vsock.%s in %s", name, json_object_to_json_string(m));
	return json_object_get_int64(v);
}

static void test_device_metrics_count_connections_packets_and_bytes(void **state)
{
	struct dfx *f = *state;
	struct virtio_vsock_hdr h;
	uint32_t local;
	char buf[16];
	int fd = host_connect(f, &local);
	json_object *m;

	assert_int_equal(write(fd, "ping", 4), 4);
	pump(f);
	assert_true(rx_pkt(f, &h, buf, sizeof(buf)));
	tx_pkt(f, from_guest(VIRTIO_VSOCK_OP_RW, 1234, local, 4), "pong");
	assert_int_equal(read_timeout(fd, buf, sizeof(buf)), 4);
	close(fd);
	pump(f);
	assert_true(rx_pkt(f, &h, NULL, 0)); /* SHUTDOWN */
	tx_pkt(f, from_guest(VIRTIO_VSOCK_OP_RST, 1234, local, 0), NULL);
	pump(f);

	m = json_object_new_object();
	virtio_metrics(f->vm, m);
	assert_int_equal(vsock_metric(m, "conns_added"), 1);
	assert_int_equal(vsock_metric(m, "conns_removed"), 1);
	assert_int_equal(vsock_metric(m, "conns_killed"), 0);
	/* to the guest: REQUEST, "ping", SHUTDOWN; from it: RESPONSE, "pong", RST */
	assert_int_equal(vsock_metric(m, "rx_packets_count"), 3);
	assert_int_equal(vsock_metric(m, "rx_bytes_count"), 4);
	assert_int_equal(vsock_metric(m, "tx_packets_count"), 3);
	assert_int_equal(vsock_metric(m, "tx_bytes_count"), 4);
	assert_int_equal(vsock_metric(m, "tx_queue_event_count"), 3);
	assert_true(vsock_metric(m, "rx_queue_event_count") >= 1); /* the buffers given */
	assert_int_equal(vsock_metric(m, "tx_write_fails"), 0);
	assert_false(json_object_object_get_ex(m, "vsock_vsock", NULL));
	json_object_put(m);

	m = json_object_new_object();
	virtio_metrics(f->vm, m);
	assert_int_equal(vsock_metric(m, "conns_added"), 0);
	assert_int_equal(vsock_metric(m, "rx_bytes_count"), 0);
	json_object_put(m);
}

int main(void)
{
#define D(fn) cmocka_unit_test_setup_teardown(fn, dsetup, dteardown)
	const struct CMUnitTest conn[] = {
	    cmocka_unit_test(test_host_connect_sends_request),
	    cmocka_unit_test(test_guest_accept_establishes),
	    cmocka_unit_test(test_guest_refuse_with_rst),
	    cmocka_unit_test(test_unexpected_packet_while_connecting_resets),
	    cmocka_unit_test(test_guest_connect_accepted_and_refused),
	    cmocka_unit_test(test_data_within_credit_is_forwarded),
	    cmocka_unit_test(test_data_beyond_credit_resets),
	    cmocka_unit_test(test_data_len_beyond_chain_resets),
	    cmocka_unit_test(test_forwarding_sends_credit_update_when_guest_view_low),
	    cmocka_unit_test(test_credit_request_answered),
	    cmocka_unit_test(test_peer_credit_limits_host_to_guest),
	    cmocka_unit_test(test_bogus_peer_credit_is_zero_not_huge),
	    cmocka_unit_test(test_guest_shutdown_send_then_both),
	    cmocka_unit_test(test_data_after_guest_shutdown_send_resets),
	    cmocka_unit_test(test_guest_shutdown_rcv_stops_host_data),
	    cmocka_unit_test(test_host_eof_sends_shutdown),
	    cmocka_unit_test(test_host_eof_while_connecting_cancels),
	    cmocka_unit_test(test_host_error_resets),
	    cmocka_unit_test(test_guest_rst_closes_established),
	    cmocka_unit_test(test_unknown_op_resets),
	    cmocka_unit_test(test_rst_for_stray_packet_swaps_addresses),
	};
	const struct CMUnitTest dev[] = {
	    D(test_device_host_initiated_connection_and_data),
	    D(test_device_guest_refusal_closes_client),
	    D(test_device_bad_connect_line_closes_client),
	    D(test_device_guest_initiated_connection),
	    D(test_device_guest_connect_to_nothing_gets_rst),
	    D(test_device_spoofed_source_cid_gets_rst),
	    D(test_device_host_data_waits_for_credit),
	    D(test_device_guest_data_buffered_when_host_slow),
	    D(test_device_config_and_restore_sends_transport_reset),
	    D(test_device_reopen_listens_on_new_path),
	    D(test_device_tx_flood_gets_a_budget_per_notification),
	    D(test_device_rx_backlog_gets_a_budget_per_notification),
	    D(test_device_metrics_count_connections_packets_and_bytes),
	};
	int failed = cmocka_run_group_tests_name("vsock connection", conn, NULL, NULL);

	return failed + cmocka_run_group_tests_name("vsock device", dev, NULL, NULL);
}
