/* MMDS on the wire: the few protocols a guest uses to reach the metadata service at its
 * IPv4 address (169.254.169.254 unless configured), answered from inside the VMM.
 *
 * Why our own and not a TCP/IP library: Debian's liblwip (the one packaged) is a shared
 * library only, built for the Hurd with NO_SYS=0 (its own tcpip thread, core locking,
 * IPv6 autoconfiguration and IP forwarding compiled in, options fixed at its build). thaw
 * is a static-pie (a jail holds no libraries; 0.9 ms less per clone start) whose threads
 * each run under their own seccomp filter, so neither the library nor its thread fits.
 * What MMDS needs is small and is written here, as Firecracker's own (dumbo) is: ARP
 * replies for the service's address, IPv4 without options or fragments, and a passive
 * TCP endpoint on port 80 that hands the byte stream to api_mmds_http (api/mmds.c).
 *
 * Everything the guest sends is untrusted: lengths are checked against the frame before
 * a byte is read, connections and queued output are capped, and a frame we do not
 * understand is dropped (if it was for the service) or left to the tap (if not).
 *
 * Our frames to the guest never get lost (they wait in `out` until the guest gives
 * receive buffers), so the endpoint keeps no retransmission timer: it sends again from
 * the first unacknowledged byte when the guest repeats an acknowledgement (its way of
 * saying it lost something) and answers repeated segments with the acknowledgement the
 * guest missed.
 */
#include "vmm/virtio/virtio_int.h"
#include "api/api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define ETH_HLEN      14
#define ETH_P_IPV4    0x0800
#define ETH_P_ARP     0x0806
#define IP_HLEN	      20
#define TCP_HLEN      20
#define TCP_FIN	      0x01
#define TCP_SYN	      0x02
#define TCP_RST	      0x04
#define TCP_PSH	      0x08
#define TCP_ACK	      0x10
#define MMDS_PORT     80
#define OUR_MSS	      1460
#define REQ_MAX	      8192	  /* a guest request's bytes before it must be complete */
#define OUT_MAX_BYTES (512 << 10) /* frames waiting for the guest's receive buffers */

/* The service's station address: locally administered, fixed, as Firecracker's is. */
static const uint8_t mmds_mac[6] = {0x06, 0x01, 0x23, 0x45, 0x67, 0x01};

enum tcp_state { T_FREE, T_SYN_RCVD, T_ESTABLISHED, T_LAST_ACK };

struct tcp_conn {
	enum tcp_state state;
	uint32_t peer_ip;   /* network order */
	uint16_t peer_port; /* network order */
	uint8_t peer_mac[6];
	uint32_t rcv_nxt;  /* next byte we expect */
	uint32_t iss;	   /* our initial sequence number */
	uint32_t snd_una;  /* oldest byte not acknowledged */
	uint32_t snd_nxt;  /* next byte to send */
	uint16_t peer_mss; /* largest segment the guest takes */
	uint32_t peer_wnd; /* its window, from its last segment */
	bool fin_wanted;   /* the guest closed: our FIN goes after the response */
	bool fin_sent;
	uint64_t last_ns; /* last segment from the guest: the oldest is evicted */
	char req[REQ_MAX];
	size_t req_len;
	char *resp; /* bytes [snd_una - iss - 1, ...) of our stream not acknowledged */
	size_t resp_len;
};

struct mmds_frame {
	struct mmds_frame *next;
	size_t len;
	uint8_t data[];
};

enum { RX_ACCEPTED, RX_BAD_ETH, TX_FRAMES, TX_BYTES, TX_ERRORS, CONN_CREATED, CONN_DESTROYED };

const char *const mmds_net_counter_names[MMDS_NET_COUNTERS + 1] = {"rx_accepted",
								   "rx_bad_eth",
								   "tx_frames",
								   "tx_bytes",
								   "tx_errors",
								   "connections_created",
								   "connections_destroyed",
								   NULL};

struct mmds_net {
	struct api_mmds *store;
	uint32_t ip; /* network order */
	struct tcp_conn conns[MMDS_NET_CONNS];
	struct mmds_frame *head, *tail;
	size_t out_bytes;
	uint64_t dropped; /* frames for the service we could not take */
	uint64_t cnt[MMDS_NET_COUNTERS], reported[MMDS_NET_COUNTERS];
};

int mmds_net_create(struct api_mmds *store, uint32_t ipv4, struct mmds_net **out)
{
	struct mmds_net *n = calloc(1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	n->store = store;
	n->ip = htonl(ipv4);
	*out = n;
	return 0;
}

static void conn_free(struct tcp_conn *c)
{
	free(c->resp);
	memset(c, 0, sizeof(*c));
}

/* A live connection ends. */
static void conn_end(struct mmds_net *n, struct tcp_conn *c)
{
	n->cnt[CONN_DESTROYED]++;
	conn_free(c);
}

void mmds_net_destroy(struct mmds_net *n)
{
	if (!n)
		return;
	for (unsigned i = 0; i < MMDS_NET_CONNS; i++)
		conn_free(&n->conns[i]);
	while (n->head) {
		struct mmds_frame *f = n->head;

		n->head = f->next;
		free(f);
	}
	free(n);
}

const uint8_t *mmds_net_peek(struct mmds_net *n, size_t *len)
{
	if (!n->head)
		return NULL;
	*len = n->head->len;
	return n->head->data;
}

void mmds_net_pop(struct mmds_net *n)
{
	struct mmds_frame *f = n->head;

	if (!f)
		return;
	n->head = f->next;
	if (!n->head)
		n->tail = NULL;
	n->out_bytes -= f->len;
	free(f);
}

uint64_t mmds_net_dropped(const struct mmds_net *n)
{
	return n->dropped;
}

void mmds_net_take_counts(struct mmds_net *n, uint64_t sum[MMDS_NET_COUNTERS])
{
	for (unsigned i = 0; i < MMDS_NET_COUNTERS; i++) {
		sum[i] += n->cnt[i] - n->reported[i];
		n->reported[i] = n->cnt[i];
	}
}

/* ---------------------------------------------------------------- building frames */

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t sum16(const uint8_t *p, size_t len, uint32_t sum)
{
	for (; len > 1; p += 2, len -= 2)
		sum += get16(p);
	if (len)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* A frame of `len` bytes at the end of the queue, or NULL (counted) when the queue is
 * full: the guest is not taking its receive buffers back. */
static uint8_t *frame_new(struct mmds_net *n, size_t len)
{
	struct mmds_frame *f;

	if (n->out_bytes + len > OUT_MAX_BYTES || !(f = calloc(1, sizeof(*f) + len))) {
		n->dropped++;
		n->cnt[TX_ERRORS]++;
		return NULL;
	}
	n->cnt[TX_FRAMES]++;
	n->cnt[TX_BYTES] += len;
	f->len = len;
	if (n->tail)
		n->tail->next = f;
	else
		n->head = f;
	n->tail = f;
	n->out_bytes += len;
	return f->data;
}

static void eth_header(uint8_t *f, const uint8_t *dst, uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, mmds_mac, 6);
	put16(f + 12, type);
}

/* One TCP segment to the guest with `len` bytes of `data` at sequence `seq`. */
static void send_segment(struct mmds_net *n, struct tcp_conn *c, uint32_t seq, uint8_t flags,
			 const void *data, size_t len)
{
	size_t opt = flags & TCP_SYN ? 4 : 0;
	size_t tcp_len = TCP_HLEN + opt + len;
	uint8_t *f = frame_new(n, ETH_HLEN + IP_HLEN + tcp_len), *ip, *tcp;
	uint32_t sum;
	size_t space = REQ_MAX - c->req_len;

	if (!f)
		return;
	eth_header(f, c->peer_mac, ETH_P_IPV4);
	ip = f + ETH_HLEN;
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(IP_HLEN + tcp_len));
	put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = 6;
	memcpy(ip + 12, &n->ip, 4);
	memcpy(ip + 16, &c->peer_ip, 4);
	put16(ip + 10, fold(sum16(ip, IP_HLEN, 0)));
	tcp = ip + IP_HLEN;
	put16(tcp, MMDS_PORT);
	memcpy(tcp + 2, &c->peer_port, 2);
	put32(tcp + 4, seq);
	put32(tcp + 8, c->rcv_nxt);
	tcp[12] = (uint8_t)(((TCP_HLEN + opt) / 4) << 4);
	tcp[13] = flags;
	put16(tcp + 14, (uint16_t)(space > 0xffff ? 0xffff : space));
	if (opt) {
		tcp[20] = 2; /* MSS */
		tcp[21] = 4;
		put16(tcp + 22, OUR_MSS);
	}
	if (len)
		memcpy(tcp + TCP_HLEN + opt, data, len);
	/* pseudo header: addresses, protocol, TCP length */
	sum = sum16(ip + 12, 8, 0) + 6 + (uint32_t)tcp_len;
	put16(tcp + 16, fold(sum16(tcp, tcp_len, sum)));
}

/* A reset for a segment that belongs to no connection (RFC 793's rules). */
static void send_rst(struct mmds_net *n, const uint8_t *mac, uint32_t ip, uint16_t port,
		     uint32_t seq, uint32_t ack, bool ack_given, size_t seg_len)
{
	struct tcp_conn c = {.peer_ip = ip, .peer_port = port};

	memcpy(c.peer_mac, mac, 6);
	if (ack_given) {
		send_segment(n, &c, ack, TCP_RST, NULL, 0);
	} else {
		c.rcv_nxt = seq + (uint32_t)seg_len;
		send_segment(n, &c, 0, TCP_RST | TCP_ACK, NULL, 0);
	}
}

/* Sends what the window allows of the response, then our FIN when the guest closed. */
static void push(struct mmds_net *n, struct tcp_conn *c)
{
	for (;;) {
		size_t sent = c->snd_nxt - c->snd_una, left, len;
		uint32_t wnd = c->peer_wnd;

		if (sent >= c->resp_len)
			break;
		left = c->resp_len - sent;
		if (sent >= wnd)
			return; /* the guest's window is full: its ACKs bring us back */
		len = left < wnd - sent ? left : wnd - sent;
		if (len > c->peer_mss)
			len = c->peer_mss;
		send_segment(n, c, c->snd_nxt, TCP_ACK | (len == left ? TCP_PSH : 0),
			     c->resp + sent, len);
		c->snd_nxt += (uint32_t)len;
	}
	if (c->fin_wanted && !c->fin_sent) {
		send_segment(n, c, c->snd_nxt, TCP_FIN | TCP_ACK, NULL, 0);
		c->snd_nxt++;
		c->fin_sent = true;
		c->state = T_LAST_ACK;
	}
}

/* Answers what the guest's request bytes hold so far. */
static void serve(struct mmds_net *n, struct tcp_conn *c, uint64_t now_ns)
{
	while (c->req_len) {
		char *resp;
		size_t resp_len;
		ssize_t used =
		    api_mmds_http(n->store, c->req, c->req_len, now_ns, &resp, &resp_len);
		char *all;

		if (used <= 0)
			break;
		memmove(c->req, c->req + used, c->req_len - (size_t)used);
		c->req_len -= (size_t)used;
		all = realloc(c->resp, c->resp_len + resp_len);
		if (!all) {
			free(resp);
			n->dropped++;
			break;
		}
		memcpy(all + c->resp_len, resp, resp_len);
		free(resp);
		c->resp = all;
		c->resp_len += resp_len;
	}
}

/* ---------------------------------------------------------------- taking frames */

static bool arp(struct mmds_net *n, const uint8_t *f, size_t len)
{
	const uint8_t *a = f + ETH_HLEN;
	uint8_t *r;

	/* Ethernet/IPv4 ARP request for our address; anything else is not ours. */
	if (len < ETH_HLEN + 28 || get16(a) != 1 || get16(a + 2) != ETH_P_IPV4 || a[4] != 6 ||
	    a[5] != 4 || get16(a + 6) != 1 || memcmp(a + 24, &n->ip, 4) != 0)
		return false;
	r = frame_new(n, ETH_HLEN + 28);
	if (!r)
		return true;
	eth_header(r, a + 8, ETH_P_ARP);
	put16(r + 14, 1);
	put16(r + 16, ETH_P_IPV4);
	r[18] = 6;
	r[19] = 4;
	put16(r + 20, 2); /* reply */
	memcpy(r + 22, mmds_mac, 6);
	memcpy(r + 28, &n->ip, 4);
	memcpy(r + 32, a + 8, 10); /* the asker's MAC and IPv4 */
	return true;
}

static struct tcp_conn *conn_find(struct mmds_net *n, uint32_t ip, uint16_t port)
{
	for (unsigned i = 0; i < MMDS_NET_CONNS; i++)
		if (n->conns[i].state != T_FREE && n->conns[i].peer_ip == ip &&
		    n->conns[i].peer_port == port)
			return &n->conns[i];
	return NULL;
}

/* A free slot, else the connection the guest has been quiet on the longest. */
static struct tcp_conn *conn_slot(struct mmds_net *n)
{
	struct tcp_conn *old = &n->conns[0];

	for (unsigned i = 0; i < MMDS_NET_CONNS; i++) {
		if (n->conns[i].state == T_FREE)
			return &n->conns[i];
		if (n->conns[i].last_ns < old->last_ns)
			old = &n->conns[i];
	}
	conn_end(n, old);
	return old;
}

static uint16_t parse_mss(const uint8_t *opt, size_t len)
{
	for (size_t i = 0; i < len;) {
		if (opt[i] == 0)
			break;
		if (opt[i] == 1) {
			i++;
			continue;
		}
		if (i + 1 >= len || opt[i + 1] < 2 || opt[i + 1] > len - i)
			break;
		if (opt[i] == 2 && opt[i + 1] == 4)
			return get16(opt + i + 2);
		i += opt[i + 1];
	}
	return 536; /* RFC 879's default */
}

static void tcp(struct mmds_net *n, const uint8_t *mac, const uint8_t *ip, const uint8_t *t,
		size_t tlen, uint64_t now_ns)
{
	size_t hl = (size_t)(t[12] >> 4) * 4, plen;
	uint32_t src, seq = get32(t + 4), ack = get32(t + 8);
	uint16_t sport, dport = get16(t + 2), wnd;
	uint8_t flags = t[13];
	bool dup;
	struct tcp_conn *c;
	const uint8_t *payload;

	if (hl < TCP_HLEN || hl > tlen)
		return;
	memcpy(&src, ip + 12, 4);
	memcpy(&sport, t, 2);
	payload = t + hl;
	plen = tlen - hl;
	c = conn_find(n, src, sport);
	if (flags & TCP_RST) {
		if (c)
			conn_end(n, c);
		return;
	}
	if (!c) {
		if (dport != MMDS_PORT || (flags & (TCP_SYN | TCP_ACK)) != TCP_SYN) {
			send_rst(n, mac, src, sport, seq, ack, flags & TCP_ACK,
				 plen + !!(flags & TCP_SYN) + !!(flags & TCP_FIN));
			return;
		}
		c = conn_slot(n);
		n->cnt[CONN_CREATED]++;
		c->state = T_SYN_RCVD;
		c->peer_ip = src;
		c->peer_port = sport;
		memcpy(c->peer_mac, mac, 6);
		c->rcv_nxt = seq + 1;
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
		c->iss = 0x1000; /* the fuzzer must be able to acknowledge our SYN */
#else
		if (getrandom(&c->iss, sizeof(c->iss), 0) != sizeof(c->iss))
			c->iss = (uint32_t)now_ns;
#endif
		c->snd_una = c->iss;
		c->snd_nxt = c->iss + 1;
		c->peer_mss = parse_mss(t + TCP_HLEN, hl - TCP_HLEN);
		if (c->peer_mss < 64)
			c->peer_mss = 64;
		if (c->peer_mss > OUR_MSS)
			c->peer_mss = OUR_MSS;
		c->peer_wnd = get16(t + 14);
		c->last_ns = now_ns;
		send_segment(n, c, c->iss, TCP_SYN | TCP_ACK, NULL, 0);
		return;
	}
	c->last_ns = now_ns;
	if (flags & TCP_SYN) {
		/* The guest did not see our SYN-ACK: once more. */
		if (c->state == T_SYN_RCVD && seq + 1 == c->rcv_nxt)
			send_segment(n, c, c->iss, TCP_SYN | TCP_ACK, NULL, 0);
		return;
	}
	if (!(flags & TCP_ACK))
		return;
	/* An acknowledgement of what we never sent is not this connection's. */
	if ((int32_t)(ack - c->snd_nxt) > 0 || (int32_t)(ack - c->snd_una) < 0) {
		if ((int32_t)(ack - c->snd_nxt) > 0)
			send_segment(n, c, c->snd_nxt, TCP_ACK, NULL, 0);
		return;
	}
	wnd = get16(t + 14);
	dup = wnd == c->peer_wnd; /* RFC 5681: a window update is no duplicate */
	c->peer_wnd = wnd;
	if (c->state == T_SYN_RCVD)
		c->state = T_ESTABLISHED;
	if (ack != c->snd_una) {
		/* Drop the acknowledged bytes of the response (our SYN and FIN take a
		 * sequence number each but no byte of it). */
		uint32_t acked = ack - c->snd_una;
		size_t from_resp = c->snd_una == c->iss ? acked - 1 : acked;

		if (c->fin_sent && ack == c->snd_nxt) {
			conn_end(n, c); /* our FIN is acknowledged: done */
			return;
		}
		if (from_resp > c->resp_len)
			from_resp = c->resp_len;
		if (from_resp) {
			memmove(c->resp, c->resp + from_resp, c->resp_len - from_resp);
			c->resp_len -= from_resp;
		}
		c->snd_una = ack;
	} else if (dup && !plen && !(flags & TCP_FIN) && c->snd_nxt != c->snd_una &&
		   c->state == T_ESTABLISHED) {
		/* A repeated acknowledgement: the guest lost what followed. */
		c->snd_nxt = c->snd_una;
	}
	if (plen || (flags & TCP_FIN)) {
		if (seq != c->rcv_nxt) {
			/* Out of order or repeated: say what we expect. */
			send_segment(n, c, c->snd_nxt, TCP_ACK, NULL, 0);
			return;
		}
		if (plen > REQ_MAX - c->req_len) {
			send_segment(n, c, c->snd_nxt, TCP_RST | TCP_ACK, NULL, 0);
			conn_end(n, c);
			return;
		}
		memcpy(c->req + c->req_len, payload, plen);
		c->req_len += plen;
		c->rcv_nxt += (uint32_t)plen;
		if (flags & TCP_FIN) {
			c->rcv_nxt++;
			c->fin_wanted = true;
		}
		serve(n, c, now_ns);
		if (c->snd_nxt - c->snd_una >= c->resp_len && !c->fin_wanted)
			send_segment(n, c, c->snd_nxt, TCP_ACK, NULL, 0);
	}
	push(n, c);
}

bool mmds_net_wants(const struct mmds_net *n, const uint8_t *f, size_t len)
{
	if (len < ETH_HLEN)
		return false;
	if (get16(f + 12) == ETH_P_ARP)
		return len >= ETH_HLEN + 28 && memcmp(f + ETH_HLEN + 24, &n->ip, 4) == 0;
	return get16(f + 12) == ETH_P_IPV4 && len >= ETH_HLEN + IP_HLEN &&
	       memcmp(f + ETH_HLEN + 16, &n->ip, 4) == 0;
}

bool mmds_net_input(struct mmds_net *n, const uint8_t *f, size_t len, uint64_t now_ns)
{
	const uint8_t *ip;
	size_t ihl, tot;

	if (len < ETH_HLEN)
		return false;
	if (get16(f + 12) == ETH_P_ARP) {
		if (!arp(n, f, len))
			return false;
		n->cnt[RX_ACCEPTED]++;
		return true;
	}
	if (get16(f + 12) != ETH_P_IPV4 || len < ETH_HLEN + IP_HLEN)
		return false;
	ip = f + ETH_HLEN;
	if (memcmp(ip + 16, &n->ip, 4) != 0)
		return false;
	n->cnt[RX_ACCEPTED]++;
	/* From here the frame is the service's: taken, answered or dropped. */
	ihl = (size_t)(ip[0] & 0xf) * 4;
	tot = get16(ip + 2);
	if ((ip[0] >> 4) != 4 || ihl < IP_HLEN || tot < ihl || tot > len - ETH_HLEN ||
	    (get16(ip + 6) & 0x3fff) != 0 || ip[9] != 6 || tot - ihl < TCP_HLEN) {
		n->dropped++;
		n->cnt[RX_BAD_ETH]++;
		return true;
	}
	tcp(n, f + 6, ip, ip + ihl, tot - ihl, now_ns);
	return true;
}
