/* virtio-net backed by a tap device with a 12-byte vnet header: the guest's
 * virtio_net_hdr passes through the tap unchanged, so checksum and segmentation
 * offloads cost nothing here. The tap gets offloads (TUNSETOFFLOAD) only for what the
 * guest acked; before that, and after a reset, it hands the guest plain packets. */
#include "vmm/virtio/virtio_int.h"
#include "api/api.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#define NET_QUEUE_MAX 256
#define RXQ	      0
#define TXQ	      1
#define VNET_HDR_LEN  12 /* struct virtio_net_hdr_v1: VERSION_1 always has num_buffers */
/* Packets moved per callback, so one busy device cannot starve the loop. */
#define NET_BUDGET 64
/* The largest frame to MMDS we look at (a request fits many times over); a larger one
 * for its address is dropped, never passed to the tap. */
#define MMDS_FRAME_MAX 9216

struct net {
	char tap[IFNAMSIZ];
	int fd;
	bool watched;
	bool rx_on; /* tap readable events wanted: the guest has rx buffers */
	uint8_t mac[6];
	uint32_t offload;
	struct virtq_elem e;
	struct virtio_net_config cfg;
	struct virtio_rl rx_rl, tx_rl;
	struct mmds_net *mmds; /* this interface reaches MMDS; NULL: it does not */
	/* What is saved of MMDS: set with it, or from a snapshot until it is set again. */
	uint32_t mmds_ipv4, mmds_version;
	bool mmds_compat;
	uint8_t scratch[VNET_HDR_LEN + MMDS_FRAME_MAX];
};

/* Firecracker's net metrics (the ones thaw counts), in d->cnt. */
enum {
	NET_RX_PACKETS,
	NET_RX_BYTES,
	NET_TX_PACKETS,
	NET_TX_BYTES,
	NET_TAP_READ_FAILS,
	NET_TAP_WRITE_FAILS,
	NET_TX_MALFORMED,
	NET_NO_RX_BUFFER,
	NET_RX_QUEUE_EVENTS,
	NET_TX_QUEUE_EVENTS,
	NET_RX_THROTTLED,
	NET_TX_THROTTLED,
};

static const char *const net_counters[] = {"rx_packets_count",
					   "rx_bytes_count",
					   "tx_packets_count",
					   "tx_bytes_count",
					   "tap_read_fails",
					   "tap_write_fails",
					   "tx_malformed_frames",
					   "no_rx_avail_buffer",
					   "rx_queue_event_count",
					   "tx_queue_event_count",
					   "rx_rate_limiter_throttled",
					   "tx_rate_limiter_throttled",
					   NULL};

static void set_rx_watch(struct virtio_dev *d, bool on)
{
	struct net *n = d->priv;

	if (!n->watched || n->rx_on == on)
		return;
	if (vmm_loop_mod(&d->vm->loop, n->fd, on ? EPOLLIN : 0) == 0)
		n->rx_on = on;
}

/* Hands the guest the frames MMDS answered with, while it has receive buffers. */
static bool rx_mmds(struct virtio_dev *d)
{
	struct net *n = d->priv;
	const uint8_t *f;
	size_t len;
	bool pushed = false;

	while (n->mmds && (f = mmds_net_peek(n->mmds, &len))) {
		struct virtio_net_hdr_v1 h = {.num_buffers = 1};

		if (virtio_pop(d, RXQ, &n->e) <= 0)
			break; /* they wait for buffers; the guest's notify brings us back */
		if (n->e.in_len < VNET_HDR_LEN + len) {
			/* A buffer too small for the frame: it is dropped, as a tap would. */
			virtq_push(&d->vq[RXQ], n->e.head, 0);
		} else {
			iov_from_buf(n->e.iov + n->e.nr_out, n->e.nr_in, 0, &h, VNET_HDR_LEN);
			iov_from_buf(n->e.iov + n->e.nr_out, n->e.nr_in, VNET_HDR_LEN, f, len);
			virtq_push(&d->vq[RXQ], n->e.head, (uint32_t)(VNET_HDR_LEN + len));
		}
		mmds_net_pop(n->mmds);
		pushed = true;
	}
	return pushed;
}

static void rx(struct virtio_dev *d)
{
	struct net *n = d->priv;
	bool pushed = rx_mmds(d);

	for (unsigned i = 0; i < NET_BUDGET; i++) {
		uint16_t one = 1;
		ssize_t len;
		int ret;

		if (!virtio_rl_admit(&n->rx_rl)) {
			/* Packets wait in the tap; the limiter's timer requeues RXQ, which
			 * turns the watch back on (net_notify). */
			set_rx_watch(d, false);
			break;
		}
		ret = virtio_pop(d, RXQ, &n->e);
		if (ret == 0)
			virtio_count_add(d, NET_NO_RX_BUFFER, 1);
		if (ret <= 0) {
			/* No buffer: stop listening until the guest adds some. */
			set_rx_watch(d, false);
			break;
		}
		if (n->e.in_len < VNET_HDR_LEN) {
			virtio_set_needs_reset(d, "receive buffer shorter than the vnet header");
			break;
		}
		len = readv(n->fd, n->e.iov + n->e.nr_out, (int)n->e.nr_in);
		if (len < 0) {
			virtq_unpop(&d->vq[RXQ]);
			if (errno != EAGAIN && errno != EINTR) {
				log_ratelimited(LOG_WARN, "virtio %s: tap read: %s", d->id,
						strerror(errno));
				virtio_count_add(d, NET_TAP_READ_FAILS, 1);
			}
			break;
		}
		/* Without MRG_RXBUF each packet takes exactly one buffer. */
		iov_from_buf(n->e.iov + n->e.nr_out, n->e.nr_in,
			     offsetof(struct virtio_net_hdr_v1, num_buffers), &one, sizeof(one));
		virtq_push(&d->vq[RXQ], n->e.head, (uint32_t)len);
		virtio_rl_charge(&n->rx_rl, (uint64_t)len - VNET_HDR_LEN);
		virtio_count_add(d, NET_RX_PACKETS, 1);
		virtio_count_add(d, NET_RX_BYTES, (uint64_t)len - VNET_HDR_LEN);
		pushed = true;
	}
	if (pushed)
		virtio_notify(d, RXQ);
}

/* True when the frame in n->e is MMDS's (and was handed to it): its headers are read
 * first, so other traffic is copied only by the tap's writev. */
static bool tx_mmds(struct virtio_dev *d)
{
	struct net *n = d->priv;
	size_t len = n->e.out_len - VNET_HDR_LEN, head = len < 64 ? len : 64;
	uint8_t peek[64];

	iov_to_buf(n->e.iov, n->e.nr_out, VNET_HDR_LEN, peek, head);
	if (!mmds_net_wants(n->mmds, peek, head))
		return false;
	if (len <= MMDS_FRAME_MAX) {
		iov_to_buf(n->e.iov, n->e.nr_out, VNET_HDR_LEN, n->scratch, len);
		mmds_net_input(n->mmds, n->scratch, len, now_ns());
	}
	return true;
}

static void tx(struct virtio_dev *d)
{
	struct net *n = d->priv;
	unsigned sent = 0;
	bool answered = false;

	while (sent < VIRTIO_BUDGET_CHAINS && virtio_rl_admit(&n->tx_rl)) {
		int ret = virtio_pop(d, TXQ, &n->e);

		if (ret <= 0)
			break;
		if (n->e.out_len < VNET_HDR_LEN) {
			virtio_count_add(d, NET_TX_MALFORMED, 1);
			virtio_set_needs_reset(d, "transmit chain shorter than the vnet header");
			break;
		}
		if (n->mmds && tx_mmds(d))
			answered = true;
		else if (n->fd >= 0 && writev(n->fd, n->e.iov, (int)n->e.nr_out) < 0) {
			log_ratelimited(LOG_WARN, "virtio %s: tap write of %llu bytes: %s", d->id,
					(unsigned long long)n->e.out_len, strerror(errno));
			virtio_count_add(d, NET_TAP_WRITE_FAILS, 1);
		}
		virtio_count_add(d, NET_TX_PACKETS, 1);
		virtio_count_add(d, NET_TX_BYTES, n->e.out_len - VNET_HDR_LEN);
		virtq_push(&d->vq[TXQ], n->e.head, 0);
		virtio_rl_charge(&n->tx_rl, n->e.out_len - VNET_HDR_LEN);
		sent++;
	}
	if (sent)
		virtio_notify(d, TXQ);
	if (sent == VIRTIO_BUDGET_CHAINS)
		virtio_requeue(d, TXQ);
	if (answered && rx_mmds(d))
		virtio_notify(d, RXQ);
}

static void on_tap(void *opaque, uint32_t events)
{
	struct virtio_dev *d = opaque;

	__atomic_add_fetch(&d->vm->device_events, 1, __ATOMIC_RELAXED);

	pthread_mutex_lock(&d->lock);
	if (virtio_dev_live(d))
		rx(d);
	else
		set_rx_watch(d, false);
	pthread_mutex_unlock(&d->lock);
}

static void net_notify(struct virtio_dev *d, unsigned q)
{
	virtio_count_add(d, q == TXQ ? NET_TX_QUEUE_EVENTS : NET_RX_QUEUE_EVENTS, 1);
	if (q == TXQ)
		tx(d);
	else if (q == RXQ) {
		if (rx_mmds(d))
			virtio_notify(d, RXQ);
		set_rx_watch(d, true); /* new buffers: packets waiting in the tap can go */
	}
}

/* TUN_F_* for what the driver acked: a tap must never hand the guest a packet with a
 * partial checksum or a GSO type it did not ask for. */
static uint32_t offload_for(const struct virtio_dev *d)
{
	uint32_t f = 0;

	if (virtio_has_feature(d, VIRTIO_NET_F_GUEST_CSUM)) {
		f |= TUN_F_CSUM;
		if (virtio_has_feature(d, VIRTIO_NET_F_GUEST_TSO4))
			f |= TUN_F_TSO4;
		if (virtio_has_feature(d, VIRTIO_NET_F_GUEST_TSO6))
			f |= TUN_F_TSO6;
		if ((f & (TUN_F_TSO4 | TUN_F_TSO6)) &&
		    virtio_has_feature(d, VIRTIO_NET_F_GUEST_ECN))
			f |= TUN_F_TSO_ECN;
	}
	return f;
}

static int apply_offload(struct virtio_dev *d, uint32_t f)
{
	struct net *n = d->priv;

	if (n->fd < 0)
		return 0;
	if (ioctl(n->fd, TUNSETOFFLOAD, (unsigned long)f) < 0) {
		int e = errno;

		log_err("virtio %s: TUNSETOFFLOAD %#x on %s: %s", d->id, f, n->tap, strerror(e));
		return -e;
	}
	n->offload = f;
	return 0;
}

static int net_activate(struct virtio_dev *d)
{
	int ret = apply_offload(d, offload_for(d));

	if (!ret)
		set_rx_watch(d, true);
	return ret;
}

static void net_reset(struct virtio_dev *d)
{
	set_rx_watch(d, false);
	apply_offload(d, 0);
}

static void net_config_read(struct virtio_dev *d, uint32_t off, uint8_t *data, uint32_t len)
{
	struct net *n = d->priv;

	memcpy(data, (uint8_t *)&n->cfg + off, len);
}

static void close_tap(struct virtio_dev *d)
{
	struct net *n = d->priv;

	if (n->watched)
		vmm_loop_del(&d->vm->loop, n->fd);
	n->watched = n->rx_on = false;
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}

static int open_tap(struct virtio_dev *d, const char *name)
{
	struct net *n = d->priv;
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
	int hdr = VNET_HDR_LEN, fd, ret;

	if (strlen(name) >= IFNAMSIZ) {
		log_err("net %s: tap name '%s' longer than %d", d->id, name, IFNAMSIZ - 1);
		return -EINVAL;
	}
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		log_err("net %s: open /dev/net/tun: %s", d->id, strerror(-ret));
		return ret;
	}
	memcpy(ifr.ifr_name, name, strlen(name) + 1);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		ret = -errno;
		log_err("net %s: TUNSETIFF %s: %s", d->id, name, strerror(-ret));
		goto fail;
	}
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		ret = -errno;
		log_err("net %s: TUNSETVNETHDRSZ: %s", d->id, strerror(-ret));
		goto fail;
	}
	close_tap(d);
	n->fd = fd;
	snprintf(n->tap, sizeof(n->tap), "%s", name);
	ret = vmm_loop_add(&d->vm->loop, fd, 0, on_tap, d);
	if (ret)
		return ret;
	n->watched = true;
	/* Offloads off until the driver acks them. */
	return apply_offload(d, 0);
fail:
	close(fd);
	return ret;
}

static int net_reopen(struct virtio_dev *d, const char *name)
{
	struct net *n = d->priv;
	char cur[IFNAMSIZ];
	int ret;

	snprintf(cur, sizeof(cur), "%s", name ? name : n->tap);
	close_tap(d);
	ret = open_tap(d, cur);
	if (ret)
		return ret;
	if (virtio_dev_live(d))
		return net_activate(d);
	return 0;
}

static void net_save(struct virtio_dev *d, struct virtio_saved *out)
{
	struct net *n = d->priv;

	snprintf(out->dev.net.tap, sizeof(out->dev.net.tap), "%s", n->tap);
	memcpy(out->dev.net.mac, n->mac, 6);
	out->dev.net.offload_flags = n->offload;
	virtio_rl_get(&n->rx_rl, &out->dev.net.rx_rl);
	virtio_rl_get(&n->tx_rl, &out->dev.net.tx_rl);
	out->dev.net.mmds_ipv4 = n->mmds_ipv4;
	out->dev.net.mmds_version = n->mmds_version;
	out->dev.net.mmds_imds_compat = n->mmds_compat;
}

static int net_restore(struct virtio_dev *d, const struct virtio_saved *in)
{
	struct net *n = d->priv;

	if (memcmp(in->dev.net.mac, n->mac, 6)) {
		log_err("net %s: saved MAC differs from the configured one", d->id);
		return -EINVAL;
	}
	n->mmds_ipv4 = in->dev.net.mmds_ipv4;
	n->mmds_version = in->dev.net.mmds_version;
	n->mmds_compat = in->dev.net.mmds_imds_compat;
	if (!virtio_dev_live(d))
		return 0;
	return net_activate(d);
}

/* The interface's own fields in its snapshot section (docs/snapshot-format.md). */
enum {
	NET_TAG_TAP = SNAP_DEV_OWN + 3, /* str: the tap when saved */
	NET_TAG_MAC,			/* bytes[6] */
	NET_TAG_OFFLOAD,		/* u64: TUN_F_* set on the tap */
	/* 0x1010-0x101b: the rate limits (VIRTIO_TAG_RL, VIRTIO_TAG_RL_TX) */
	NET_TAG_MMDS_IPV4 = SNAP_DEV_OWN + 0x20, /* u64: MMDS address, host order; 0 none */
	NET_TAG_MMDS_VERSION,			 /* u64: 0 V1, 1 V2 */
	NET_TAG_MMDS_IMDS_COMPAT,		 /* u64: 0 or 1 */
};

static void net_encode(struct snap_sec *sec, const struct virtio_saved *s)
{
	snap_put_str(sec, NET_TAG_TAP, s->dev.net.tap);
	snap_put_bytes(sec, NET_TAG_MAC, s->dev.net.mac, 6);
	snap_put_u64(sec, NET_TAG_OFFLOAD, s->dev.net.offload_flags);
	virtio_rl_encode(sec, VIRTIO_TAG_RL, &s->dev.net.rx_rl);
	virtio_rl_encode(sec, VIRTIO_TAG_RL_TX, &s->dev.net.tx_rl);
	if (s->dev.net.mmds_ipv4) {
		snap_put_u64(sec, NET_TAG_MMDS_IPV4, s->dev.net.mmds_ipv4);
		snap_put_u64(sec, NET_TAG_MMDS_VERSION, s->dev.net.mmds_version);
		snap_put_u64(sec, NET_TAG_MMDS_IMDS_COMPAT, s->dev.net.mmds_imds_compat);
	}
}

static int net_decode(const struct snap_section *sec, struct virtio_saved *s, char *err,
		      size_t errlen)
{
	const void *p;
	size_t len;
	uint64_t off, v = 0;
	int ret;

	if (snap_get_strbuf(sec, NET_TAG_TAP, s->dev.net.tap, sizeof(s->dev.net.tap)))
		return errf(err, errlen, -EBADMSG, "%s: tap name missing or longer than %zu",
			    sec->name, sizeof(s->dev.net.tap) - 1);
	if (snap_get_bytes(sec, NET_TAG_MAC, &p, &len) || len != 6)
		return errf(err, errlen, -EBADMSG, "%s: no 6-byte MAC", sec->name);
	memcpy(s->dev.net.mac, p, 6);
	if (s->dev.net.mac[0] & 1)
		return errf(err, errlen, -EBADMSG, "%s: a multicast MAC", sec->name);
	ret = virtio_get_u64(sec, NET_TAG_OFFLOAD,
			     TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO,
			     false, &off, err, errlen);
	s->dev.net.offload_flags = (uint32_t)off;
	if (!ret)
		ret = virtio_rl_decode(sec, VIRTIO_TAG_RL, &s->dev.net.rx_rl, err, errlen);
	if (!ret)
		ret = virtio_rl_decode(sec, VIRTIO_TAG_RL_TX, &s->dev.net.tx_rl, err, errlen);
	if (!ret)
		ret = virtio_get_u64(sec, NET_TAG_MMDS_IPV4, UINT32_MAX, false, &v, err, errlen);
	s->dev.net.mmds_ipv4 = (uint32_t)v;
	if (!ret)
		ret = virtio_get_u64(sec, NET_TAG_MMDS_VERSION, 1, false, &v, err, errlen);
	s->dev.net.mmds_version = (uint32_t)v;
	if (!ret)
		ret = virtio_get_u64(sec, NET_TAG_MMDS_IMDS_COMPAT, 1, false, &v, err, errlen);
	s->dev.net.mmds_imds_compat = v != 0;
	return ret;
}

static struct virtio_rl *net_rate_limiter(struct virtio_dev *d, unsigned which)
{
	struct net *n = d->priv;

	return which == 0 ? &n->rx_rl : which == 1 ? &n->tx_rl : NULL;
}

static void net_destroy(struct virtio_dev *d)
{
	struct net *n = d->priv;

	close_tap(d);
	mmds_net_destroy(n->mmds);
	virtio_rl_destroy(&n->rx_rl);
	virtio_rl_destroy(&n->tx_rl);
	free(n);
}

const struct virtio_dev_ops virtio_net_ops = {
    .name = "net",
    .kind = "virtio-net",
    .device_id = VIRTIO_ID_NET,
    .nr_queues = 2,
    .queue_max = NET_QUEUE_MAX,
    .config_len = offsetof(struct virtio_net_config, status),
    .config_read = net_config_read,
    .notify = net_notify,
    .activate = net_activate,
    .reset = net_reset,
    .save = net_save,
    .restore = net_restore,
    .encode = net_encode,
    .decode = net_decode,
    .reopen = net_reopen,
    .metrics_group = "net",
    .counter_names = net_counters,
    .rate_limiter = net_rate_limiter,
    .destroy = net_destroy,
};

int virtio_net_set_mmds(struct virtio_dev *d, struct api_mmds *store)
{
	struct net *n = d->priv;
	const struct api_mmds_config *cfg = store ? api_mmds_get_config(store) : NULL;
	struct mmds_net *m = NULL;
	int ret;

	if (d->ops != &virtio_net_ops)
		return -ENOTSUP;
	if (store) {
		ret = mmds_net_create(store, cfg->ipv4, &m);
		if (ret)
			return ret;
	}
	pthread_mutex_lock(&d->lock);
	mmds_net_destroy(n->mmds);
	n->mmds = m;
	n->mmds_ipv4 = cfg ? cfg->ipv4 : 0;
	n->mmds_version = cfg ? (uint32_t)cfg->version : 0;
	n->mmds_compat = cfg && cfg->imds_compat;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

struct mmds_net *virtio_net_mmds(struct virtio_dev *d)
{
	return d->ops == &virtio_net_ops ? ((struct net *)d->priv)->mmds : NULL;
}

uint32_t virtio_net_saved_mmds(const struct virtio_dev *d, uint32_t *version, bool *imds_compat)
{
	const struct net *n = d->priv;

	if (d->ops != &virtio_net_ops)
		return 0;
	*version = n->mmds_version;
	*imds_compat = n->mmds_compat;
	return n->mmds_ipv4;
}

int virtio_net_create(struct vm *vm, const struct vmm_net_cfg *c, const struct vmm_dev_place *place,
		      struct virtio_dev **out)
{
	uint64_t features = (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_CSUM) |
			    (1ull << VIRTIO_NET_F_GUEST_CSUM) | (1ull << VIRTIO_NET_F_GUEST_TSO4) |
			    (1ull << VIRTIO_NET_F_GUEST_TSO6) | (1ull << VIRTIO_NET_F_GUEST_ECN) |
			    (1ull << VIRTIO_NET_F_HOST_TSO4) | (1ull << VIRTIO_NET_F_HOST_TSO6) |
			    (1ull << VIRTIO_NET_F_HOST_ECN) | (1ull << VIRTIO_RING_F_EVENT_IDX) |
			    (1ull << VIRTIO_RING_F_INDIRECT_DESC);
	struct virtio_dev *d;
	struct net *n;
	int ret;

	if (!c->id[0] || !c->tap[0]) {
		log_err("net: needs an id and a tap");
		return -EINVAL;
	}
	if (c->has_mac && (c->mac[0] & 1)) {
		log_err("net %s: a multicast MAC is no station's", c->id);
		return -EINVAL;
	}
	d = calloc(1, sizeof(*d));
	n = calloc(1, sizeof(*n));
	if (!d || !n) {
		free(d);
		free(n);
		return -ENOMEM;
	}
	virtio_dev_init(d, &virtio_net_ops, vm, c->id, place, features);
	d->priv = n;
	n->fd = -1;
	*out = d;
	if (c->has_mac) {
		memcpy(n->mac, c->mac, 6);
	} else {
		/* A locally administered address from the device's place: stable across
		 * restores and distinct per device. */
		const uint8_t def[6] = {0x06, 0x74, 0x68, 0x61, 0x77, (uint8_t)place->index};

		memcpy(n->mac, def, 6);
	}
	memcpy(n->cfg.mac, n->mac, 6);
	n->rx_rl.cnt = NET_RX_THROTTLED;
	n->tx_rl.cnt = NET_TX_THROTTLED;
	ret = virtio_rl_set(&n->rx_rl, d, RXQ, &c->rx_rl, 0);
	if (!ret)
		ret = virtio_rl_set(&n->tx_rl, d, TXQ, &c->tx_rl, 0);
	return ret ? ret : open_tap(d, c->tap);
}
