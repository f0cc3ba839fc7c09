/* virtio-vsock (device id 19) in Firecracker's hybrid style: guest AF_VSOCK
 * connections appear on host unix sockets.
 *
 * Host-initiated: thaw listens on the unix socket PATH; a client writes
 * "CONNECT <port>\n" and gets "OK <hostport>\n" once the guest accepts (the socket is
 * closed if it refuses), then bytes flow. Guest-initiated to port P: thaw connects
 * to "PATH_P". The connection logic is vsock_conn.c; this file moves bytes between
 * the queues and the sockets. All sockets sit in one epoll set of the device, which
 * the main loop watches as one fd.
 */
#include "vmm/virtio/virtio_int.h"
#include "vmm/virtio/vsock_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_ids.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define RXQ		0
#define TXQ		1
#define EVQ		2
#define VSOCK_QUEUE_MAX 256
#define VSOCK_MAX_CONN	64
#define VSOCK_BUF_ALLOC (256 * 1024) /* what each connection advertises to the guest */
#define VSOCK_RST_MAX	32	     /* stray-packet RSTs waiting for an rx buffer */
#define HDR		sizeof(struct virtio_vsock_hdr)
#define LISTENER	UINT32_MAX /* epoll tag of the listening socket */
#define LINE_MAX_LEN	32	   /* "CONNECT 4294967295\n" fits */

struct vconn {
	bool used;
	bool handshake; /* host client still sending its CONNECT line */
	bool readable;	/* host socket may hold data for the guest */
	bool host_eof;
	bool shut_wr_pending; /* SHUT_WR once the buffer below drains */
	bool hup;	      /* peer gone: out of the epoll set (HUP cannot be masked) */
	bool added;	      /* counted in conns_added (past the handshake) */
	int fd;
	uint32_t events; /* current epoll interest */
	char line[LINE_MAX_LEN];
	unsigned line_len;
	/* Guest data the host socket could not take yet; never more than the credit
	 * we granted (buf_alloc), so it cannot overflow. */
	uint8_t *buf;
	uint32_t buf_head, buf_len;
	struct vsock_conn c;
};

/* Firecracker's vsock metrics that thaw counts (the group "vsock"). */
enum {
	VS_RX_QUEUE_EVENTS,
	VS_TX_QUEUE_EVENTS,
	VS_RX_BYTES,
	VS_TX_BYTES,
	VS_RX_PACKETS,
	VS_TX_PACKETS,
	VS_CONNS_ADDED,
	VS_CONNS_KILLED,
	VS_CONNS_REMOVED,
	VS_TX_FLUSH_FAILS,
	VS_TX_WRITE_FAILS,
	VS_RX_READ_FAILS,
};
static const char *const vsock_counters[] = {"rx_queue_event_count",
					     "tx_queue_event_count",
					     "rx_bytes_count",
					     "tx_bytes_count",
					     "rx_packets_count",
					     "tx_packets_count",
					     "conns_added",
					     "conns_killed",
					     "conns_removed",
					     "tx_flush_fails",
					     "tx_write_fails",
					     "rx_read_fails",
					     NULL};

struct vsock {
	struct virtio_dev *d; /* its device, for the counters */
	uint64_t cid;
	char uds[VIRTIO_PATH_MAX];
	int listen_fd;
	int ep;
	bool ep_watched;
	uint32_t next_port;
	bool reset_event; /* a TRANSPORT_RESET event is owed to the guest */
	struct virtio_vsock_hdr rst[VSOCK_RST_MAX];
	unsigned nr_rst;
	struct vconn conns[VSOCK_MAX_CONN];
	struct virtq_elem e;
};

static void set_events(struct vsock *v, unsigned i)
{
	struct vconn *vc = &v->conns[i];
	uint32_t ev = 0;
	struct epoll_event e;

	if (vc->fd < 0 || vc->hup)
		return;
	if (vc->handshake)
		ev = EPOLLIN;
	else if (vc->c.state == VSOCK_ESTABLISHED || vc->c.state == VSOCK_CLOSING) {
		if (!vc->readable && !vc->host_eof)
			ev |= EPOLLIN;
		if (vc->buf_len)
			ev |= EPOLLOUT;
	}
	if (ev == vc->events)
		return;
	e = (struct epoll_event){.events = ev, .data.u32 = i};
	if (epoll_ctl(v->ep, EPOLL_CTL_MOD, vc->fd, &e) == 0)
		vc->events = ev;
}

static void close_host(struct vsock *v, struct vconn *vc)
{
	if (vc->fd >= 0) {
		if (!vc->hup)
			epoll_ctl(v->ep, EPOLL_CTL_DEL, vc->fd, NULL);
		close(vc->fd);
	}
	vc->fd = -1;
	vc->events = 0;
}

static void free_conn(struct vsock *v, struct vconn *vc)
{
	if (vc->added)
		virtio_count_add(v->d, VS_CONNS_REMOVED, 1);
	close_host(v, vc);
	free(vc->buf);
	memset(vc, 0, sizeof(*vc));
	vc->fd = -1;
}

static struct vconn *alloc_conn(struct vsock *v, int fd, unsigned *idx)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONN; i++) {
		struct vconn *vc = &v->conns[i];
		struct epoll_event e = {.events = 0, .data.u32 = i};

		if (vc->used)
			continue;
		memset(vc, 0, sizeof(*vc));
		if (epoll_ctl(v->ep, EPOLL_CTL_ADD, fd, &e) < 0)
			return NULL;
		vc->used = true;
		vc->fd = fd;
		*idx = i;
		return vc;
	}
	return NULL;
}

static struct vconn *find_conn(struct vsock *v, uint32_t local, uint32_t peer)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONN; i++) {
		struct vconn *vc = &v->conns[i];

		if (vc->used && !vc->handshake && vc->c.state != VSOCK_FREE &&
		    vc->c.local_port == local && vc->c.peer_port == peer)
			return vc;
	}
	return NULL;
}

static bool port_in_use(struct vsock *v, uint32_t port)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONN; i++)
		if (v->conns[i].used && !v->conns[i].handshake && v->conns[i].c.local_port == port)
			return true;
	return false;
}

/* The host socket failed (`what` names the counter): the connection ends with a reset. */
static void kill_conn(struct vsock *v, struct vconn *vc, unsigned what)
{
	virtio_count_add(v->d, what, 1);
	virtio_count_add(v->d, VS_CONNS_KILLED, 1);
	vsock_conn_host_error(&vc->c);
	close_host(v, vc);
}

/* Writes guest payload to the host socket, keeping what it cannot take. */
static void to_host(struct virtio_dev *d, struct vconn *vc, const struct iovec *iov, unsigned n,
		    size_t skip, uint32_t len)
{
	struct vsock *v = d->priv;
	struct iovec sl[VIRTQ_MAX_CHAIN];
	unsigned k = iov_slice(iov, n, skip, len, sl, VIRTQ_MAX_CHAIN);
	ssize_t w = 0;

	if (vc->fd >= 0 && !vc->buf_len) {
		w = writev(vc->fd, sl, (int)k);
		if (w < 0) {
			if (errno != EAGAIN) {
				kill_conn(v, vc, VS_TX_WRITE_FAILS);
				return;
			}
			w = 0;
		}
		vsock_conn_forwarded(&vc->c, (uint32_t)w);
	}
	if ((uint32_t)w < len) {
		uint32_t rest = len - (uint32_t)w, tail;

		if (!vc->buf) {
			vc->buf = malloc(VSOCK_BUF_ALLOC);
			if (!vc->buf) {
				kill_conn(v, vc, VS_TX_WRITE_FAILS);
				return;
			}
		}
		/* vsock_conn_recv already refused more than the credit we granted. */
		tail = (vc->buf_head + vc->buf_len) % VSOCK_BUF_ALLOC;
		for (uint32_t off = (uint32_t)w; off < len;) {
			uint32_t room = VSOCK_BUF_ALLOC - tail, c = rest < room ? rest : room;

			iov_to_buf(iov, n, skip + off, vc->buf + tail, c);
			off += c;
			rest -= c;
			vc->buf_len += c;
			tail = (tail + c) % VSOCK_BUF_ALLOC;
		}
	}
}

static void flush_buf(struct vsock *v, struct vconn *vc)
{
	while (vc->buf_len && vc->fd >= 0) {
		uint32_t c = VSOCK_BUF_ALLOC - vc->buf_head;
		ssize_t w;

		if (c > vc->buf_len)
			c = vc->buf_len;
		w = write(vc->fd, vc->buf + vc->buf_head, c);
		if (w < 0) {
			if (errno != EAGAIN)
				kill_conn(v, vc, VS_TX_FLUSH_FAILS);
			return;
		}
		vc->buf_head = (vc->buf_head + (uint32_t)w) % VSOCK_BUF_ALLOC;
		vc->buf_len -= (uint32_t)w;
		vsock_conn_forwarded(&vc->c, (uint32_t)w);
	}
	if (!vc->buf_len && vc->shut_wr_pending && vc->fd >= 0) {
		shutdown(vc->fd, SHUT_WR);
		vc->shut_wr_pending = false;
	}
}

/* Sends what is owed to the guest on the rx queue: stray RSTs, control packets,
 * then host data within each connection's credit; at most VIRTIO_BUDGET_CHAINS
 * buffers per call, the rest on a later loop round. */
static void rx_kick(struct virtio_dev *d)
{
	struct vsock *v = d->priv;
	unsigned pushed = 0;
	bool progress = true;

	if (!virtio_dev_live(d) || !d->vs.q[RXQ].ready)
		return;
	while (progress) {
		progress = false;
		while (v->nr_rst) {
			if (pushed == VIRTIO_BUDGET_CHAINS || virtio_pop(d, RXQ, &v->e) <= 0)
				goto out;
			if (v->e.in_len < HDR) {
				virtio_set_needs_reset(d, "rx buffer shorter than a packet header");
				goto out;
			}
			iov_from_buf(v->e.iov + v->e.nr_out, v->e.nr_in, 0, &v->rst[--v->nr_rst],
				     HDR);
			virtq_push(&d->vq[RXQ], v->e.head, HDR);
			virtio_count_add(d, VS_RX_PACKETS, 1);
			pushed++;
		}
		for (unsigned i = 0; i < VSOCK_MAX_CONN; i++) {
			struct vconn *vc = &v->conns[i];
			struct virtio_vsock_hdr h;
			uint32_t credit, room;
			struct iovec sl[VIRTQ_MAX_CHAIN];
			unsigned k;
			ssize_t r;

			if (!vc->used || vc->handshake)
				continue;
			if (vc->c.pending) {
				if (pushed == VIRTIO_BUDGET_CHAINS ||
				    virtio_pop(d, RXQ, &v->e) <= 0)
					goto out;
				if (v->e.in_len < HDR) {
					virtio_set_needs_reset(d,
							       "rx buffer shorter than a header");
					goto out;
				}
				vsock_conn_next_ctrl(&vc->c, &h);
				iov_from_buf(v->e.iov + v->e.nr_out, v->e.nr_in, 0, &h, HDR);
				virtq_push(&d->vq[RXQ], v->e.head, HDR);
				virtio_count_add(d, VS_RX_PACKETS, 1);
				pushed++;
				progress = true;
			}
			if (vsock_conn_done(&vc->c)) {
				free_conn(v, vc);
				continue;
			}
			if (!vc->readable || vc->host_eof || vc->fd < 0)
				continue;
			credit = vsock_conn_peer_credit(&vc->c);
			if (!credit) {
				if (vc->c.state == VSOCK_ESTABLISHED &&
				    !(vc->c.peer_shutdown & VIRTIO_VSOCK_SHUTDOWN_RCV))
					vsock_conn_want_credit(&vc->c);
				continue;
			}
			if (pushed == VIRTIO_BUDGET_CHAINS || virtio_pop(d, RXQ, &v->e) <= 0)
				goto out;
			if (v->e.in_len <= HDR) {
				virtio_set_needs_reset(d, "rx buffer without room for data");
				goto out;
			}
			room = (uint32_t)(v->e.in_len - HDR);
			if (room > credit)
				room = credit;
			k = iov_slice(v->e.iov + v->e.nr_out, v->e.nr_in, HDR, room, sl,
				      VIRTQ_MAX_CHAIN);
			r = readv(vc->fd, sl, (int)k);
			if (r <= 0) {
				virtq_unpop(&d->vq[RXQ]);
				if (r == 0) {
					vc->host_eof = true;
					vsock_conn_host_eof(&vc->c);
				} else if (errno == EAGAIN) {
					vc->readable = false;
				} else {
					kill_conn(v, vc, VS_RX_READ_FAILS);
				}
				set_events(v, i);
				progress = true;
				continue;
			}
			vsock_conn_data_hdr(&vc->c, &h, (uint32_t)r);
			iov_from_buf(v->e.iov + v->e.nr_out, v->e.nr_in, 0, &h, HDR);
			virtq_push(&d->vq[RXQ], v->e.head, (uint32_t)(HDR + (size_t)r));
			virtio_count_add(d, VS_RX_PACKETS, 1);
			virtio_count_add(d, VS_RX_BYTES, (uint64_t)r);
			pushed++;
			progress = true;
		}
	}
out:
	if (pushed)
		virtio_notify(d, RXQ);
	if (pushed == VIRTIO_BUDGET_CHAINS)
		virtio_requeue(d, RXQ);
}

static void send_event(struct virtio_dev *d)
{
	struct vsock *v = d->priv;
	struct virtio_vsock_event ev = {.id = VIRTIO_VSOCK_EVENT_TRANSPORT_RESET};

	if (!v->reset_event || !virtio_dev_live(d) || !d->vs.q[EVQ].ready)
		return;
	if (virtio_pop(d, EVQ, &v->e) <= 0)
		return;
	if (v->e.in_len < sizeof(ev)) {
		virtio_set_needs_reset(d, "event buffer too short");
		return;
	}
	iov_from_buf(v->e.iov + v->e.nr_out, v->e.nr_in, 0, &ev, sizeof(ev));
	virtio_push(d, EVQ, v->e.head, sizeof(ev));
	v->reset_event = false;
}

static void queue_rst(struct vsock *v, const struct virtio_vsock_hdr *h)
{
	if (h->op == VIRTIO_VSOCK_OP_RST || v->nr_rst == VSOCK_RST_MAX)
		return;
	vsock_rst_for(h, &v->rst[v->nr_rst++]);
}

/* The guest connects to host port P: thaw connects to "<uds>_<P>". */
static void guest_connect(struct virtio_dev *d, const struct virtio_vsock_hdr *h)
{
	struct vsock *v = d->priv;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct vconn *vc;
	unsigned idx;
	int fd, n;

	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", v->uds, h->dst_port);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
		queue_rst(v, h);
		return;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		log_ratelimited(LOG_INFO, "vsock: guest port %u -> %s: %s", h->src_port,
				sa.sun_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		queue_rst(v, h);
		return;
	}
	vc = alloc_conn(v, fd, &idx);
	if (!vc) {
		log_ratelimited(LOG_WARN, "vsock: more than %d connections", VSOCK_MAX_CONN);
		close(fd);
		queue_rst(v, h);
		return;
	}
	vsock_conn_guest_connect(&vc->c, h, true, VSOCK_BUF_ALLOC);
	vc->added = true;
	virtio_count_add(d, VS_CONNS_ADDED, 1);
	set_events(v, idx);
}

static void tx(struct virtio_dev *d)
{
	struct vsock *v = d->priv;
	unsigned taken = 0;

	while (taken < VIRTIO_BUDGET_CHAINS) {
		struct virtio_vsock_hdr h;
		struct vconn *vc;
		uint32_t a;

		if (virtio_pop(d, TXQ, &v->e) <= 0)
			break;
		if (v->e.out_len < HDR) {
			virtio_set_needs_reset(d, "tx packet shorter than its header");
			break;
		}
		iov_to_buf(v->e.iov, v->e.nr_out, 0, &h, HDR);
		virtio_count_add(d, VS_TX_PACKETS, 1);
		if (h.src_cid != v->cid || h.dst_cid != VSOCK_HOST_CID ||
		    h.type != VIRTIO_VSOCK_TYPE_STREAM) {
			queue_rst(v, &h);
			goto done;
		}
		vc = find_conn(v, h.dst_port, h.src_port);
		if (!vc) {
			if (h.op == VIRTIO_VSOCK_OP_REQUEST)
				guest_connect(d, &h);
			else
				queue_rst(v, &h);
			goto done;
		}
		a = vsock_conn_recv(&vc->c, &h, (uint32_t)(v->e.out_len - HDR));
		if (a & VSOCK_A_DATA) {
			virtio_count_add(d, VS_TX_BYTES, h.len);
			to_host(d, vc, v->e.iov, v->e.nr_out, HDR, h.len);
		}
		if ((a & VSOCK_A_CONNECTED) && vc->fd >= 0) {
			char ok[24];
			int n = snprintf(ok, sizeof(ok), "OK %u\n", vc->c.local_port);

			/* A fresh socket takes a few bytes; a client that filled its own
			 * receive buffer before the answer is broken. */
			if (write(vc->fd, ok, (size_t)n) != n)
				kill_conn(v, vc, VS_TX_WRITE_FAILS);
		}
		if (a & (VSOCK_A_REFUSED | VSOCK_A_CLOSE))
			close_host(v, vc);
		if ((a & VSOCK_A_SHUT_WR) && vc->fd >= 0) {
			vc->shut_wr_pending = true;
			flush_buf(v, vc);
		}
		if (a & VSOCK_A_CREDIT)
			vc->readable = vc->readable || vc->fd >= 0;
		for (unsigned i = 0; i < VSOCK_MAX_CONN; i++)
			if (&v->conns[i] == vc)
				set_events(v, i);
	done:
		virtq_push(&d->vq[TXQ], v->e.head, 0);
		taken++;
	}
	if (taken)
		virtio_notify(d, TXQ);
	if (taken == VIRTIO_BUDGET_CHAINS)
		virtio_requeue(d, TXQ);
}

/* A host client sent bytes of its CONNECT line. */
static void handshake(struct virtio_dev *d, unsigned i)
{
	struct vsock *v = d->priv;
	struct vconn *vc = &v->conns[i];
	unsigned long port;
	char *end;

	/* Byte by byte: whatever follows the line is payload for the guest and must stay
	 * in the socket until the connection exists. */
	while (vc->line_len < LINE_MAX_LEN - 1) {
		char ch;
		ssize_t r = read(vc->fd, &ch, 1);

		if (r == 0 || (r < 0 && errno != EAGAIN)) {
			free_conn(v, vc);
			return;
		}
		if (r < 0)
			return;
		if (ch == '\n')
			break;
		vc->line[vc->line_len++] = ch;
	}
	vc->line[vc->line_len] = 0;
	if (vc->line_len >= LINE_MAX_LEN - 1 || strncmp(vc->line, "CONNECT ", 8) != 0) {
		log_ratelimited(LOG_INFO, "vsock: client sent no CONNECT line");
		free_conn(v, vc);
		return;
	}
	errno = 0;
	port = strtoul(vc->line + 8, &end, 10);
	if (errno || end == vc->line + 8 || *end || port > UINT32_MAX) {
		log_ratelimited(LOG_INFO, "vsock: bad port in '%s'", vc->line);
		free_conn(v, vc);
		return;
	}
	if (!virtio_dev_live(d)) {
		free_conn(v, vc);
		return;
	}
	do {
		v->next_port = v->next_port < (1u << 30) ? (1u << 30) : v->next_port + 1;
	} while (port_in_use(v, v->next_port));
	vc->handshake = false;
	vc->added = true;
	virtio_count_add(d, VS_CONNS_ADDED, 1);
	vsock_conn_host_connect(&vc->c, v->cid, v->next_port, (uint32_t)port, VSOCK_BUF_ALLOC);
	set_events(v, i);
}

static void accept_clients(struct vsock *v)
{
	for (;;) {
		int fd = accept4(v->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct vconn *vc;
		unsigned idx;

		if (fd < 0)
			return;
		vc = alloc_conn(v, fd, &idx);
		if (!vc) {
			log_ratelimited(LOG_WARN, "vsock: more than %d connections",
					VSOCK_MAX_CONN);
			close(fd);
			continue;
		}
		vc->handshake = true;
		set_events(v, idx);
	}
}

static void on_sockets(void *opaque, uint32_t events)
{
	struct virtio_dev *d = opaque;
	struct vsock *v = d->priv;
	struct epoll_event evs[32];
	int n;

	__atomic_add_fetch(&d->vm->device_events, 1, __ATOMIC_RELAXED);

	pthread_mutex_lock(&d->lock);
	n = epoll_wait(v->ep, evs, 32, 0);
	for (int k = 0; k < n; k++) {
		uint32_t i = evs[k].data.u32;
		struct vconn *vc;

		if (i == LISTENER) {
			accept_clients(v);
			continue;
		}
		if (i >= VSOCK_MAX_CONN || !v->conns[i].used)
			continue;
		vc = &v->conns[i];
		if (vc->handshake) {
			handshake(d, i);
			continue;
		}
		if (evs[k].events & EPOLLOUT)
			flush_buf(v, vc);
		if (evs[k].events & (EPOLLHUP | EPOLLERR)) {
			/* Level-triggered HUP would fire forever: stop watching, and read
			 * what is left (then EOF) as credit allows. */
			epoll_ctl(v->ep, EPOLL_CTL_DEL, vc->fd, NULL);
			vc->hup = true;
			if (vc->c.state == VSOCK_CONNECTING) {
				vsock_conn_host_eof(&vc->c);
				close_host(v, vc);
				continue;
			}
		}
		if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			vc->readable = true;
		set_events(v, i);
	}
	rx_kick(d);
	pthread_mutex_unlock(&d->lock);
}

static void vsock_notify(struct virtio_dev *d, unsigned q)
{
	if (q == TXQ || q == RXQ)
		virtio_count_add(d, q == TXQ ? VS_TX_QUEUE_EVENTS : VS_RX_QUEUE_EVENTS, 1);
	if (q == TXQ)
		tx(d);
	if (q == EVQ)
		send_event(d);
	rx_kick(d);
}

static int vsock_activate(struct virtio_dev *d)
{
	send_event(d);
	rx_kick(d);
	return 0;
}

static void drop_all(struct vsock *v)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONN; i++)
		if (v->conns[i].used)
			free_conn(v, &v->conns[i]);
	v->nr_rst = 0;
}

static void vsock_reset(struct virtio_dev *d)
{
	struct vsock *v = d->priv;

	drop_all(v);
}

static void vsock_config_read(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len)
{
	struct vsock *v = d->priv;
	struct virtio_vsock_config cfg = {.guest_cid = v->cid};

	memcpy(data, (uint8_t *)&cfg + off, len);
}

/* Removes the socket at `path` (a stale one from an earlier run, or the snapshotted
 * VM's) and nothing else: -EEXIST when something other than a socket is there. */
static int unlink_socket(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

static int listen_on(struct virtio_dev *d, const char *path)
{
	struct vsock *v = d->priv;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct epoll_event e = {.events = EPOLLIN, .data.u32 = LISTENER};
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path) - 12) {
		/* room for "_<port>" of guest-initiated connections */
		log_err("vsock: uds path '%s' is too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ret = unlink_socket(path);
	if (ret) {
		log_err("vsock: uds %s: %s", path,
			ret == -EEXIST ? "exists and is not a socket: not replaced"
				       : strerror(-ret));
		return ret;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0 ||
	    epoll_ctl(v->ep, EPOLL_CTL_ADD, fd, &e) < 0) {
		ret = -errno;
		log_err("vsock: listen on %s: %s", path, strerror(-ret));
		close(fd);
		return ret;
	}
	if (v->listen_fd >= 0) {
		epoll_ctl(v->ep, EPOLL_CTL_DEL, v->listen_fd, NULL);
		close(v->listen_fd);
	}
	v->listen_fd = fd;
	snprintf(v->uds, sizeof(v->uds), "%s", path);
	return 0;
}

static int vsock_reopen(struct virtio_dev *d, const char *path)
{
	struct vsock *v = d->priv;
	char cur[VIRTIO_PATH_MAX];

	snprintf(cur, sizeof(cur), "%s", path ? path : v->uds);
	drop_all(v);
	return listen_on(d, cur);
}

static void vsock_save(struct virtio_dev *d, struct virtio_saved *out)
{
	struct vsock *v = d->priv;

	out->dev.vsock.guest_cid = v->cid;
	snprintf(out->dev.vsock.uds_path, sizeof(out->dev.vsock.uds_path), "%s", v->uds);
}

static int vsock_restore(struct virtio_dev *d, const struct virtio_saved *in)
{
	struct vsock *v = d->priv;

	if (in->dev.vsock.guest_cid != v->cid) {
		log_err("vsock: saved guest CID %llu, configured %llu",
			(unsigned long long)in->dev.vsock.guest_cid, (unsigned long long)v->cid);
		return -EINVAL;
	}
	/* The guest's connections died with the old process: tell it. */
	drop_all(v);
	v->reset_event = true;
	send_event(d);
	return 0;
}

/* The device's own fields in its snapshot section (docs/snapshot-format.md). */
enum {
	VSOCK_TAG_UDS = SNAP_DEV_OWN,		/* str: the host socket when saved */
	VSOCK_TAG_GUEST_CID = SNAP_DEV_OWN + 6, /* u64 */
};

static void vsock_encode(struct snap_sec *sec, const struct virtio_saved *s)
{
	snap_put_u64(sec, VSOCK_TAG_GUEST_CID, s->dev.vsock.guest_cid);
	snap_put_str(sec, VSOCK_TAG_UDS, s->dev.vsock.uds_path);
}

static int vsock_decode(const struct snap_section *sec, struct virtio_saved *s, char *err,
			size_t errlen)
{
	int ret = virtio_get_u64(sec, VSOCK_TAG_GUEST_CID, UINT32_MAX - 1, true,
				 &s->dev.vsock.guest_cid, err, errlen);

	if (ret)
		return ret;
	if (s->dev.vsock.guest_cid < 3)
		return errf(err, errlen, -EBADMSG, "%s: guest CID %llu is reserved", sec->name,
			    (unsigned long long)s->dev.vsock.guest_cid);
	if (snap_get_strbuf(sec, VSOCK_TAG_UDS, s->dev.vsock.uds_path,
			    sizeof(s->dev.vsock.uds_path)) ||
	    !s->dev.vsock.uds_path[0])
		return errf(err, errlen, -EBADMSG, "%s: socket path missing or longer than %d",
			    sec->name, VIRTIO_PATH_MAX - 1);
	return 0;
}

static void vsock_destroy(struct virtio_dev *d)
{
	struct vsock *v = d->priv;

	drop_all(v);
	if (v->ep_watched)
		vmm_loop_del(&d->vm->loop, v->ep);
	if (v->listen_fd >= 0) {
		close(v->listen_fd);
		unlink_socket(v->uds);
	}
	if (v->ep >= 0)
		close(v->ep);
	free(v);
}

const struct virtio_dev_ops virtio_vsock_ops = {
    .name = "vsock",
    .kind = "virtio-vsock",
    .device_id = VIRTIO_ID_VSOCK,
    .nr_queues = 3,
    .queue_max = VSOCK_QUEUE_MAX,
    .config_len = sizeof(struct virtio_vsock_config),
    .config_read = vsock_config_read,
    .notify = vsock_notify,
    .activate = vsock_activate,
    .reset = vsock_reset,
    .save = vsock_save,
    .restore = vsock_restore,
    .encode = vsock_encode,
    .decode = vsock_decode,
    .reopen = vsock_reopen,
    .destroy = vsock_destroy,
    .metrics_group = "vsock",
    .counter_names = vsock_counters,
};

int virtio_vsock_create(struct vm *vm, const struct vmm_vsock_cfg *c,
			const struct vmm_dev_place *place, struct virtio_dev **out)
{
	struct virtio_dev *d;
	struct vsock *v;
	int ret;

	/* 0-2 are reserved (hypervisor, local, host); -1U is VMADDR_CID_ANY. */
	if (c->guest_cid < 3 || c->guest_cid == UINT32_MAX || !c->uds[0]) {
		log_err("vsock: needs a guest CID from 3 to %u and a uds path", UINT32_MAX - 1);
		return -EINVAL;
	}
	d = calloc(1, sizeof(*d));
	v = calloc(1, sizeof(*v));
	if (!d || !v) {
		free(d);
		free(v);
		return -ENOMEM;
	}
	virtio_dev_init(d, &virtio_vsock_ops, vm, "vsock", place,
			(1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC));
	d->priv = v;
	v->d = d;
	v->cid = c->guest_cid;
	v->listen_fd = -1;
	for (unsigned i = 0; i < VSOCK_MAX_CONN; i++)
		v->conns[i].fd = -1;
	*out = d;
	v->ep = epoll_create1(EPOLL_CLOEXEC);
	if (v->ep < 0) {
		ret = -errno;
		log_err("vsock: epoll_create1: %s", strerror(-ret));
		return ret;
	}
	ret = listen_on(d, c->uds);
	if (ret)
		return ret;
	ret = vmm_loop_add(&vm->loop, v->ep, EPOLLIN, on_sockets, d);
	if (ret)
		return ret;
	v->ep_watched = true;
	return 0;
}
