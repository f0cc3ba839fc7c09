/* The vsock connection state machine (virtio spec 5.10.6): connection set-up and
 * tear-down, and credit-based flow control in both directions. Pure, so every
 * transition is unit tested without sockets or a guest. */
#include "vmm/virtio/vsock_conn.h"

#include <string.h>

static void reset_counters(struct vsock_conn *c, uint32_t buf_alloc)
{
	c->buf_alloc = buf_alloc;
	c->fwd_cnt = c->rx_cnt = c->fwd_cnt_sent = 0;
	c->peer_buf_alloc = c->peer_fwd_cnt = 0;
	c->tx_cnt = 0;
	c->pending = 0;
	c->peer_shutdown = 0;
	c->shutdown_flags = 0;
	c->credit_asked = false;
}

static void peer_credit_from(struct vsock_conn *c, const struct virtio_vsock_hdr *h)
{
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
}

void vsock_conn_host_connect(struct vsock_conn *c, uint64_t guest_cid, uint32_t local_port,
			     uint32_t peer_port, uint32_t buf_alloc)
{
	memset(c, 0, sizeof(*c));
	reset_counters(c, buf_alloc);
	c->guest_cid = guest_cid;
	c->local_port = local_port;
	c->peer_port = peer_port;
	c->state = VSOCK_CONNECTING;
	c->pending = VSOCK_P_REQUEST;
}

void vsock_conn_guest_connect(struct vsock_conn *c, const struct virtio_vsock_hdr *h, bool accepted,
			      uint32_t buf_alloc)
{
	memset(c, 0, sizeof(*c));
	reset_counters(c, buf_alloc);
	c->guest_cid = h->src_cid;
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	peer_credit_from(c, h);
	if (accepted) {
		c->state = VSOCK_ESTABLISHED;
		c->pending = VSOCK_P_RESPONSE;
	} else {
		c->state = VSOCK_CLOSED;
		c->pending = VSOCK_P_RST;
	}
}

/* The guest broke the protocol: reset the connection. */
static uint32_t violation(struct vsock_conn *c)
{
	c->state = VSOCK_CLOSED;
	c->pending = VSOCK_P_RST;
	return VSOCK_A_CLOSE | VSOCK_A_KICK;
}

uint32_t vsock_conn_recv(struct vsock_conn *c, const struct virtio_vsock_hdr *h, uint32_t avail)
{
	uint32_t in_use;

	if (c->state == VSOCK_FREE || c->state == VSOCK_CLOSED)
		return 0;
	if (h->op != VIRTIO_VSOCK_OP_RST)
		peer_credit_from(c, h);
	c->credit_asked = false;

	if (c->state == VSOCK_CONNECTING) {
		switch (h->op) {
		case VIRTIO_VSOCK_OP_RESPONSE:
			c->state = VSOCK_ESTABLISHED;
			return VSOCK_A_CONNECTED | VSOCK_A_CREDIT;
		case VIRTIO_VSOCK_OP_RST:
			c->state = VSOCK_CLOSED;
			c->pending = 0;
			return VSOCK_A_REFUSED;
		default:
			violation(c);
			return VSOCK_A_REFUSED | VSOCK_A_KICK;
		}
	}

	switch (h->op) {
	case VIRTIO_VSOCK_OP_RW:
		in_use = c->rx_cnt - c->fwd_cnt;
		if (h->len > avail || h->len > c->buf_alloc - in_use ||
		    (c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_SEND))
			return violation(c); /* more than the chain holds or we granted */
		c->rx_cnt += h->len;
		return h->len ? VSOCK_A_DATA | VSOCK_A_CREDIT : VSOCK_A_CREDIT;
	case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
		return VSOCK_A_CREDIT;
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		c->pending |= VSOCK_P_CREDIT_UPDATE;
		return VSOCK_A_CREDIT | VSOCK_A_KICK;
	case VIRTIO_VSOCK_OP_SHUTDOWN: {
		uint32_t a = VSOCK_A_CREDIT;

		c->peer_shutdown |=
		    h->flags & (VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND);
		if (c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_SEND)
			a |= VSOCK_A_SHUT_WR;
		/* Both directions closed: the receiver answers with RST and forgets the
		 * connection, as Linux does. */
		if (c->peer_shutdown == (VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND)) {
			c->state = VSOCK_CLOSED;
			c->pending = VSOCK_P_RST;
			a |= VSOCK_A_CLOSE | VSOCK_A_KICK;
		}
		return a;
	}
	case VIRTIO_VSOCK_OP_RST:
		c->state = VSOCK_CLOSED;
		c->pending = 0;
		return VSOCK_A_CLOSE;
	default:
		return violation(c);
	}
}

void vsock_conn_forwarded(struct vsock_conn *c, uint32_t n)
{
	uint32_t guest_view_free;

	c->fwd_cnt += n;
	/* Tell the guest about freed space when its view of our buffer is less than
	 * half free: a sender that ran out of credit waits for exactly this. */
	guest_view_free = c->buf_alloc - (c->rx_cnt - c->fwd_cnt_sent);
	if (c->fwd_cnt != c->fwd_cnt_sent && guest_view_free < c->buf_alloc / 2 &&
	    c->state == VSOCK_ESTABLISHED)
		c->pending |= VSOCK_P_CREDIT_UPDATE;
}

uint32_t vsock_conn_peer_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	if (c->state != VSOCK_ESTABLISHED || in_flight >= c->peer_buf_alloc ||
	    (c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_RCV))
		return 0;
	return c->peer_buf_alloc - in_flight;
}

void vsock_conn_want_credit(struct vsock_conn *c)
{
	if (c->state == VSOCK_ESTABLISHED && !c->credit_asked) {
		c->pending |= VSOCK_P_CREDIT_REQUEST;
		c->credit_asked = true;
	}
}

void vsock_conn_host_eof(struct vsock_conn *c)
{
	if (c->state == VSOCK_CONNECTING) {
		/* The client left before the guest answered: cancel with RST. */
		c->state = VSOCK_CLOSED;
		c->pending = VSOCK_P_RST;
		return;
	}
	if (c->state != VSOCK_ESTABLISHED)
		return;
	c->shutdown_flags |= VIRTIO_VSOCK_SHUTDOWN_SEND;
	c->pending |= VSOCK_P_SHUTDOWN;
	if (c->peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) {
		/* Both sides done sending: nothing more can flow. */
		c->shutdown_flags |= VIRTIO_VSOCK_SHUTDOWN_RCV;
		c->state = VSOCK_CLOSING;
	}
}

void vsock_conn_host_error(struct vsock_conn *c)
{
	if (c->state == VSOCK_FREE || c->state == VSOCK_CLOSED)
		return;
	c->state = VSOCK_CLOSED;
	c->pending = VSOCK_P_RST;
}

static void fill(struct vsock_conn *c, struct virtio_vsock_hdr *h, uint16_t op, uint32_t len)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = VSOCK_HOST_CID;
	h->dst_cid = c->guest_cid;
	h->src_port = c->local_port;
	h->dst_port = c->peer_port;
	h->len = len;
	h->type = VIRTIO_VSOCK_TYPE_STREAM;
	h->op = op;
	h->buf_alloc = c->buf_alloc;
	h->fwd_cnt = c->fwd_cnt;
	c->fwd_cnt_sent = c->fwd_cnt; /* every packet carries our credit */
}

bool vsock_conn_next_ctrl(struct vsock_conn *c, struct virtio_vsock_hdr *h)
{
	static const struct {
		uint32_t bit;
		uint16_t op;
	} order[] = {
	    {VSOCK_P_RST, VIRTIO_VSOCK_OP_RST},
	    {VSOCK_P_REQUEST, VIRTIO_VSOCK_OP_REQUEST},
	    {VSOCK_P_RESPONSE, VIRTIO_VSOCK_OP_RESPONSE},
	    {VSOCK_P_CREDIT_UPDATE, VIRTIO_VSOCK_OP_CREDIT_UPDATE},
	    {VSOCK_P_CREDIT_REQUEST, VIRTIO_VSOCK_OP_CREDIT_REQUEST},
	    {VSOCK_P_SHUTDOWN, VIRTIO_VSOCK_OP_SHUTDOWN},
	};

	for (unsigned i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if (!(c->pending & order[i].bit))
			continue;
		fill(c, h, order[i].op, 0);
		if (order[i].bit == VSOCK_P_SHUTDOWN)
			h->flags = c->shutdown_flags;
		/* An RST ends everything: nothing else goes after it. */
		c->pending = order[i].bit == VSOCK_P_RST ? 0 : c->pending & ~order[i].bit;
		return true;
	}
	return false;
}

void vsock_conn_data_hdr(struct vsock_conn *c, struct virtio_vsock_hdr *h, uint32_t len)
{
	fill(c, h, VIRTIO_VSOCK_OP_RW, len);
	c->tx_cnt += len;
	/* The data packet carried our credit, so a pending update is redundant. */
	c->pending &= ~VSOCK_P_CREDIT_UPDATE;
}

bool vsock_conn_done(const struct vsock_conn *c)
{
	return c->state == VSOCK_CLOSED && !c->pending;
}

void vsock_rst_for(const struct virtio_vsock_hdr *h, struct virtio_vsock_hdr *out)
{
	memset(out, 0, sizeof(*out));
	out->src_cid = VSOCK_HOST_CID;
	out->dst_cid = h->src_cid;
	out->src_port = h->dst_port;
	out->dst_port = h->src_port;
	out->type = VIRTIO_VSOCK_TYPE_STREAM;
	out->op = VIRTIO_VSOCK_OP_RST;
}
