/* The vsock connection state machine, pure: no sockets, no guest memory. The device
 * (vsock.c) feeds it the guest's packet headers and the host socket's events and
 * sends the control packets it asks for. Private to vmm/virtio/. */
#ifndef THAW_VSOCK_CONN_H
#define THAW_VSOCK_CONN_H

#include <linux/virtio_vsock.h>
#include <stdbool.h>
#include <stdint.h>

#define VSOCK_HOST_CID 2

enum vsock_conn_state {
	VSOCK_FREE,
	VSOCK_CONNECTING, /* host-initiated: REQUEST (to be) sent, waiting for the guest */
	VSOCK_ESTABLISHED,
	VSOCK_CLOSING, /* the host side ended; SHUTDOWN sent, waiting for the guest's RST */
	VSOCK_CLOSED,  /* done; freed once no control packet is pending */
};

/* Control packets waiting to go to the guest (bits). */
#define VSOCK_P_REQUEST	       (1u << 0)
#define VSOCK_P_RESPONSE       (1u << 1)
#define VSOCK_P_RST	       (1u << 2)
#define VSOCK_P_SHUTDOWN       (1u << 3)
#define VSOCK_P_CREDIT_UPDATE  (1u << 4)
#define VSOCK_P_CREDIT_REQUEST (1u << 5)

/* What the device must do after vsock_conn_recv (bits). */
#define VSOCK_A_CONNECTED (1u << 0) /* host-initiated: tell the client "OK <port>" */
#define VSOCK_A_REFUSED	  (1u << 1) /* host-initiated: the guest said no; close the client */
#define VSOCK_A_DATA	  (1u << 2) /* forward hdr.len payload bytes to the host socket */
#define VSOCK_A_SHUT_WR	  (1u << 3) /* the guest sends no more: shutdown(SHUT_WR) the host */
#define VSOCK_A_CLOSE	  (1u << 4) /* the connection is over: close the host socket */
#define VSOCK_A_CREDIT	  (1u << 5) /* the guest's credit changed: host data may flow again */
#define VSOCK_A_KICK	  (1u << 6) /* control packets are pending for the guest */

struct vsock_conn {
	enum vsock_conn_state state;
	uint64_t guest_cid;
	uint32_t local_port; /* host side */
	uint32_t peer_port;  /* guest side */
	/* Our receive side (guest -> host): what we advertise and have passed on. */
	uint32_t buf_alloc;
	uint32_t fwd_cnt;
	uint32_t rx_cnt;       /* payload bytes received from the guest */
	uint32_t fwd_cnt_sent; /* fwd_cnt as last told to the guest */
	/* The guest's receive side (host -> guest). */
	uint32_t peer_buf_alloc;
	uint32_t peer_fwd_cnt;
	uint32_t tx_cnt;	 /* payload bytes sent to the guest */
	uint32_t pending;	 /* VSOCK_P_* */
	bool credit_asked;	 /* CREDIT_REQUEST sent, no packet from the guest since */
	uint32_t peer_shutdown;	 /* VIRTIO_VSOCK_SHUTDOWN_* received */
	uint32_t shutdown_flags; /* what our pending SHUTDOWN says */
};

/* A host client asked for guest port `peer_port`: CONNECTING, REQUEST pending. */
void vsock_conn_host_connect(struct vsock_conn *c, uint64_t guest_cid, uint32_t local_port,
			     uint32_t peer_port, uint32_t buf_alloc);

/* The guest's REQUEST `h` arrived; `accepted` says whether the host side connected.
 * ESTABLISHED with RESPONSE pending, or CLOSED with RST pending. */
void vsock_conn_guest_connect(struct vsock_conn *c, const struct virtio_vsock_hdr *h, bool accepted,
			      uint32_t buf_alloc);

/* A packet from the guest for this connection (its ports already matched). `avail`
 * is how many payload bytes the chain actually holds. Returns VSOCK_A_* bits. */
uint32_t vsock_conn_recv(struct vsock_conn *c, const struct virtio_vsock_hdr *h, uint32_t avail);

/* `n` bytes from the guest reached the host socket (our buffer freed up). */
void vsock_conn_forwarded(struct vsock_conn *c, uint32_t n);

/* Bytes the guest can take now (its credit to us), 0 when none. */
uint32_t vsock_conn_peer_credit(const struct vsock_conn *c);

/* No credit but data waiting: ask the guest for an update (once until it answers). */
void vsock_conn_want_credit(struct vsock_conn *c);

/* The host socket reached EOF (flags VIRTIO_VSOCK_SHUTDOWN_SEND) or failed (RST). */
void vsock_conn_host_eof(struct vsock_conn *c);
void vsock_conn_host_error(struct vsock_conn *c);

/* Fills `h` with the next pending control packet and clears it; false when none. */
bool vsock_conn_next_ctrl(struct vsock_conn *c, struct virtio_vsock_hdr *h);

/* Fills `h` for a data packet of `len` bytes and accounts them as sent. */
void vsock_conn_data_hdr(struct vsock_conn *c, struct virtio_vsock_hdr *h, uint32_t len);

/* True once the connection is closed and has nothing left to send. */
bool vsock_conn_done(const struct vsock_conn *c);

/* An RST answering a stray packet `h` from the guest (no connection matches). */
void vsock_rst_for(const struct virtio_vsock_hdr *h, struct virtio_vsock_hdr *out);

#endif
