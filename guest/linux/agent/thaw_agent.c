// SPDX-License-Identifier: GPL-2.0
/*
 * thaw_agent: the kernel-resident test agent of thaw's Linux guest.
 *
 * On the hosts thaw is developed on (KVM implemented by PVM), guest user
 * space cannot make system calls, so a test agent has to live in the kernel.
 * Booted with thaw_agent.hold_init=1, the kernel runs normally up to the point
 * where PID 1 would exec init (init memory freed, SYSTEM_RUNNING); our hook in
 * kernel_init (patches/0003) then starts the agent and keeps PID 1 asleep
 * forever, so the kernel never panics for lack of an init.  The protocol is
 * described in guest/linux/AGENT.md: one command per line in, one reply line
 * out, replies prefixed "THAW_AGENT ", unsolicited events "THAW_EVENT ".
 *
 * How the serial line is read: the agent opens the tty of ttyS<line> with
 * tty_kopen_shared() (console_on_rootfs() has already opened it for PID 1's
 * /dev/console) or tty_kopen_exclusive() when nobody has, and switches it to
 * our own line discipline (the N_DEVELOPMENT slot, reserved for out-of-tree
 * disciplines).  Chosen over a kthread reading a filp of /dev/ttyS0 because it
 * needs no device node or mounted devtmpfs (neither exists when no root
 * filesystem is mounted), is purely event driven (the UART interrupt pushes
 * bytes to receive_buf2(), no polling), bypasses N_TTY's echo and line
 * editing that would otherwise corrupt the protocol, and sees every byte.
 * Chosen over a hook inside the 8250 driver because it needs no change to
 * that driver and works for any tty.
 *
 * How replies are written: straight to the ttyS console's write method under
 * console_lock().  printk also takes that lock to print, so a reply line is
 * never split by a kernel message, is not hidden by "quiet" or loglevel=, and
 * carries no timestamp.  If ttyS<line> is not a console, replies go out
 * through the tty instead.
 */
#include <linux/acpi.h>
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/console.h>
#include <linux/crc32.h>
#include <linux/ctype.h>
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/inet.h>
#include <linux/inetdevice.h>
#include <linux/jiffies.h>
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/sched/mm.h>
#include <linux/uaccess.h>
#include <linux/moduleparam.h>
#include <linux/net.h>
#include <linux/panic_notifier.h>
#include <linux/random.h>
#include <linux/netdevice.h>
#include <linux/reboot.h>
#include <linux/rtnetlink.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/socket.h>
#include <linux/string.h>
#include <linux/tty.h>
#include <linux/tty_driver.h>
#include <linux/tty_ldisc.h>
#include <linux/utsname.h>
#include <linux/timekeeping.h>
#include <linux/vm_sockets.h>
#include <linux/vmalloc.h>
#include <net/sock.h>

#define AGENT_VERSION 1
#define AGENT_LINE_MAX 256	/* longest command line accepted, with NUL */
#define AGENT_PENDING 8		/* command lines queued while one runs */
#define AGENT_OUT_MAX 1400	/* longest reply line */
#define AGENT_MAX_ARGS 8
#define AGENT_SECTOR 512
#define AGENT_BLK_MAX_SECTORS 2048	/* 1 MiB per blk command */
#define AGENT_RNG_MAX 256
#define AGENT_NET_MAX 1024
#define AGENT_VSOCK_LISTENERS 4
#define AGENT_TIMEOUT_MS_DEFAULT 5000
#define AGENT_TIMEOUT_MS_MAX 60000

static bool hold_init;
module_param(hold_init, bool, 0444);
MODULE_PARM_DESC(hold_init, "keep PID 1 in the kernel and run the agent");

static unsigned int line;
module_param(line, uint, 0444);
MODULE_PARM_DESC(line, "serial line to serve (ttyS<line>), default 0 (COM1)");

struct agent_pending {
	char text[AGENT_LINE_MAX];
	bool overflow;		/* the line was longer than AGENT_LINE_MAX - 1 */
};

struct agent_listener {
	u32 port;
	struct task_struct *task;
	struct socket *sock;
	struct completion ready;
	int err;
};

struct agent {
	struct tty_struct *tty;
	struct task_struct *task;

	/* Receive side, filled by the line discipline. */
	spinlock_t rx_lock;
	char rx_line[AGENT_LINE_MAX];
	unsigned int rx_len;
	bool rx_overflow;
	struct agent_pending pending[AGENT_PENDING];
	unsigned int pending_head;	/* next to pop */
	unsigned int pending_count;
	unsigned int dropped;		/* lines lost because the queue was full */
	wait_queue_head_t rx_wait;

	/* Transmit side, shared by the agent and the vsock listener threads. */
	struct mutex out_lock;
	char out[AGENT_OUT_MAX + 2];

	/* Command state, only touched by the agent thread. */
	u64 requests;
	unsigned long start_jiffies;
	struct socket *udp;
	u16 udp_port;
	struct agent_listener listeners[AGENT_VSOCK_LISTENERS];
	u8 *mem_buf;
	size_t mem_len;
	u32 mem_seed;
};

static struct agent agent;

/* ------------------------------------------------------------------------ */
/* Output */

/* Writes through the tty when ttyS<line> is not a console. */
static void agent_tty_write(const char *buf, size_t len)
{
	struct tty_struct *tty = agent.tty;
	unsigned long deadline = jiffies + HZ;

	while (len && time_before(jiffies, deadline)) {
		unsigned int room = tty_write_room(tty);
		int n;

		if (!room) {
			msleep(1);
			continue;
		}
		n = tty->ops->write(tty, buf, min_t(size_t, len, room));
		if (n <= 0) {
			msleep(1);
			continue;
		}
		buf += n;
		len -= n;
	}
}

static void agent_write_line(const char *buf, size_t len)
{
	struct console *con;
	bool done = false;

	console_lock();
	for_each_console(con) {
		if ((con->flags & CON_ENABLED) && con->write &&
		    con->index == (short)line && !strcmp(con->name, "ttyS")) {
			con->write(con, buf, len);
			done = true;
			break;
		}
	}
	console_unlock();
	if (!done && agent.tty) {
		/* No console on our line: OPOST is not applied here, add CR. */
		agent_tty_write(buf, len - 1);
		agent_tty_write("\r\n", 2);
	}
}

/*
 * Formats one line "<prefix><text>\n" and writes it.  Control characters
 * (and anything non-ASCII) from guest-external data become '?', so a reply is
 * always exactly one printable line.
 */
static __printf(2, 0) void agent_vemit(const char *prefix, const char *fmt,
				       va_list ap)
{
	size_t plen = strlen(prefix), len, i;

	mutex_lock(&agent.out_lock);
	memcpy(agent.out, prefix, plen);
	len = plen + vscnprintf(agent.out + plen, AGENT_OUT_MAX - plen, fmt, ap);
	for (i = plen; i < len; i++) {
		if (agent.out[i] < 0x20 || agent.out[i] > 0x7e)
			agent.out[i] = '?';
	}
	agent.out[len++] = '\n';
	agent_write_line(agent.out, len);
	mutex_unlock(&agent.out_lock);
}

/* One reply line: "THAW_AGENT <text>". */
static __printf(1, 2) void agent_reply(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	agent_vemit("THAW_AGENT ", fmt, ap);
	va_end(ap);
}

/* One unsolicited line: "THAW_EVENT <text>" (never a reply to a command). */
static __printf(1, 2) void agent_event(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	agent_vemit("THAW_EVENT ", fmt, ap);
	va_end(ap);
}

static __printf(1, 2) void agent_raw_line(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	agent_vemit("", fmt, ap);
	va_end(ap);
}

static u32 agent_uptime_ms(void)
{
	return jiffies_to_msecs(jiffies - INITIAL_JIFFIES);
}

/* ------------------------------------------------------------------------ */
/* Input: our line discipline */

/* Called with rx_lock held; returns true when a line was queued. */
static bool agent_rx_byte(u8 c)
{
	struct agent_pending *p;

	if (c != '\n' && c != '\r') {
		if (agent.rx_len < AGENT_LINE_MAX - 1)
			agent.rx_line[agent.rx_len++] = c;
		else
			agent.rx_overflow = true;
		return false;
	}
	if (!agent.rx_len && !agent.rx_overflow)
		return false;	/* empty line, or the LF of a CRLF */
	if (agent.pending_count == AGENT_PENDING) {
		agent.dropped++;
	} else {
		p = &agent.pending[(agent.pending_head + agent.pending_count) %
				   AGENT_PENDING];
		memcpy(p->text, agent.rx_line, agent.rx_len);
		p->text[agent.rx_len] = '\0';
		p->overflow = agent.rx_overflow;
		agent.pending_count++;
	}
	agent.rx_len = 0;
	agent.rx_overflow = false;
	return true;
}

static int agent_ldisc_receive_buf2(struct tty_struct *tty,
				    const unsigned char *cp, const char *fp,
				    int count)
{
	unsigned long flags;
	bool queued = false;
	int i;

	spin_lock_irqsave(&agent.rx_lock, flags);
	for (i = 0; i < count; i++) {
		/* Bytes with framing/parity errors or breaks are noise. */
		if (fp && fp[i] != TTY_NORMAL)
			continue;
		queued |= agent_rx_byte(cp[i]);
	}
	spin_unlock_irqrestore(&agent.rx_lock, flags);
	if (queued)
		wake_up(&agent.rx_wait);
	return count;
}

static int agent_ldisc_open(struct tty_struct *tty)
{
	tty->receive_room = 65536;
	return 0;
}

static struct tty_ldisc_ops agent_ldisc = {
	.name = "thaw_agent",
	.num = N_DEVELOPMENT,
	.open = agent_ldisc_open,
	.receive_buf2 = agent_ldisc_receive_buf2,
};

static bool agent_pop(struct agent_pending *out, unsigned int *dropped)
{
	unsigned long flags;
	bool got = false;

	spin_lock_irqsave(&agent.rx_lock, flags);
	if (agent.pending_count) {
		*out = agent.pending[agent.pending_head];
		agent.pending_head = (agent.pending_head + 1) % AGENT_PENDING;
		agent.pending_count--;
		got = true;
	}
	*dropped = agent.dropped;
	agent.dropped = 0;
	spin_unlock_irqrestore(&agent.rx_lock, flags);
	return got;
}

static bool agent_has_line(void)
{
	unsigned long flags;
	bool has;

	spin_lock_irqsave(&agent.rx_lock, flags);
	has = agent.pending_count != 0;
	spin_unlock_irqrestore(&agent.rx_lock, flags);
	return has;
}

/* ------------------------------------------------------------------------ */
/* Commands */

struct agent_req {
	int argc;
	char *argv[AGENT_MAX_ARGS];
	/* rest[i]: the original line from argv[i] to its end, spaces kept */
	const char *rest[AGENT_MAX_ARGS];
};

struct agent_cmd {
	const char *name;
	const char *sub;	/* subcommand, or NULL */
	int min_args;		/* arguments after name (and sub) */
	int max_args;
	int (*fn)(struct agent_req *req, int a); /* a: index of first argument */
	const char *usage;
};

static int agent_parse_u32(const char *s, u32 max, u32 *out)
{
	u32 v;
	int err = kstrtou32(s, 0, &v);

	if (err)
		return err;
	if (v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

static int agent_parse_timeout(struct agent_req *req, int i, u32 *ms)
{
	*ms = AGENT_TIMEOUT_MS_DEFAULT;
	if (i >= req->argc)
		return 0;
	return agent_parse_u32(req->argv[i], AGENT_TIMEOUT_MS_MAX, ms);
}

static int cmd_ping(struct agent_req *req, int a)
{
	agent_reply("pong");
	return 0;
}

static int cmd_count(struct agent_req *req, int a)
{
	agent_reply("count requests=%llu uptime_ms=%u agent_ms=%u jiffies=%lu",
		    agent.requests, agent_uptime_ms(),
		    jiffies_to_msecs(jiffies - agent.start_jiffies), jiffies);
	return 0;
}

/* The guest's wall clock, to compare with the host's (--clock-realtime). */
static int cmd_time(struct agent_req *req, int a)
{
	agent_reply("time realtime_ns=%llu", (unsigned long long)ktime_get_real_ns());
	return 0;
}

static int cmd_echo(struct agent_req *req, int a)
{
	agent_reply("echo %s", a < req->argc ? req->rest[a] : "");
	return 0;
}

static int cmd_info(struct agent_req *req, int a)
{
	agent_reply("info agent=%d kernel=%s cpus=%u mem_kib=%lu hz=%d tty=ttyS%u",
		    AGENT_VERSION, init_utsname()->release, num_online_cpus(),
		    totalram_pages() << (PAGE_SHIFT - 10), HZ, line);
	return 0;
}

static int cmd_help(struct agent_req *req, int a);

static int cmd_reboot(struct agent_req *req, int a)
{
	agent_reply("reboot");
	kernel_restart(NULL);
	return 0;
}

static int cmd_panic(struct agent_req *req, int a)
{
	agent_reply("panic");
	panic("thaw_agent: panic requested by the host");
	return 0;
}

/* --- memory: a checksummed buffer that survives snapshot/restore --------- */

/* xorshift32: a cheap, seedable fill the host can recompute. */
static u32 agent_mem_fill(u8 *buf, size_t len, u32 seed)
{
	u32 x = seed ? seed : 1;
	size_t i;

	for (i = 0; i + 4 <= len; i += 4) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		memcpy(buf + i, &x, 4);
	}
	return ~crc32_le(~0U, buf, len);
}

static int cmd_mem_fill(struct agent_req *req, int a)
{
	u32 mib, seed, crc;
	size_t len;
	int err;

	err = agent_parse_u32(req->argv[a], 1024, &mib);
	if (!err)
		err = agent_parse_u32(req->argv[a + 1], U32_MAX, &seed);
	if (err)
		return err;
	if (!mib || (u64)mib << (20 - PAGE_SHIFT) > totalram_pages() / 2)
		return -ENOMEM;
	len = (size_t)mib << 20;
	vfree(agent.mem_buf);
	agent.mem_buf = vmalloc(len);
	agent.mem_len = 0;
	if (!agent.mem_buf)
		return -ENOMEM;
	agent.mem_len = len;
	agent.mem_seed = seed;
	crc = agent_mem_fill(agent.mem_buf, len, seed);
	agent_reply("mem fill mib=%u seed=%u crc32=%08x", mib, seed, crc);
	return 0;
}

static int cmd_mem_check(struct agent_req *req, int a)
{
	u32 crc;

	if (!agent.mem_buf)
		return -ENOENT;
	crc = ~crc32_le(~0U, agent.mem_buf, agent.mem_len);
	agent_reply("mem check mib=%zu seed=%u crc32=%08x", agent.mem_len >> 20,
		    agent.mem_seed, crc);
	return 0;
}

/* --- blk: sectors of a virtio-blk disk, through bios (no page cache) ----- */

static int agent_blk_open(struct agent_req *req, int i, fmode_t mode,
			  struct block_device **out, const char **name)
{
	const char *n = i < req->argc ? req->argv[i] : "vda";
	struct block_device *bdev;
	dev_t devt;
	size_t k;

	if (strlen(n) > 16)
		return -EINVAL;
	for (k = 0; n[k]; k++) {
		if (!isalnum(n[k]))
			return -EINVAL;
	}
	devt = blk_lookup_devt(n, 0);
	if (!devt)
		return -ENODEV;
	bdev = blkdev_get_by_dev(devt, mode, NULL);
	if (IS_ERR(bdev))
		return PTR_ERR(bdev);
	*out = bdev;
	*name = n;
	return 0;
}

/*
 * Reads or writes nr sectors from sector through one bounce page; for a
 * write the page is filled with pat repeated.  Returns the zlib CRC-32 of the
 * data in *crc and its first bytes in head.
 */
static int agent_blk_io(struct block_device *bdev, enum req_op op, u64 sector,
			u32 nr, const char *pat, u32 *crc, u8 *head,
			size_t head_len)
{
	struct page *page = alloc_page(GFP_KERNEL);
	size_t patlen = pat ? strlen(pat) : 0;
	u64 off = 0;
	u32 c = ~0U;
	int err = 0;

	if (!page)
		return -ENOMEM;
	while (nr) {
		u32 chunk = min_t(u32, nr, PAGE_SIZE / AGENT_SECTOR);
		size_t bytes = (size_t)chunk * AGENT_SECTOR, k;
		u8 *data = page_address(page);
		struct bio *bio;

		if (op == REQ_OP_WRITE) {
			for (k = 0; k < bytes; k++)
				data[k] = pat[(off + k) % patlen];
		}
		bio = bio_alloc(bdev, 1, op | (op == REQ_OP_WRITE ? REQ_SYNC : 0),
				GFP_KERNEL);
		bio->bi_iter.bi_sector = sector;
		__bio_add_page(bio, page, bytes, 0);
		err = submit_bio_wait(bio);
		bio_put(bio);
		if (err)
			break;
		if (off < head_len)
			memcpy(head + off, data, min_t(size_t, head_len - off, bytes));
		c = crc32_le(c, data, bytes);
		off += bytes;
		sector += chunk;
		nr -= chunk;
	}
	__free_page(page);
	*crc = ~c;
	return err;
}

static int agent_blk_range(struct block_device *bdev, u64 sector, u32 nr)
{
	if (!nr || nr > AGENT_BLK_MAX_SECTORS)
		return -EINVAL;
	if (sector > bdev_nr_sectors(bdev) || nr > bdev_nr_sectors(bdev) - sector)
		return -ERANGE;
	return 0;
}

static int cmd_blk_info(struct agent_req *req, int a)
{
	struct block_device *bdev;
	const char *name;
	int err = agent_blk_open(req, a, FMODE_READ, &bdev, &name);

	if (err)
		return err;
	agent_reply("blk info disk=%s sectors=%llu ro=%d", name,
		    (unsigned long long)bdev_nr_sectors(bdev), bdev_read_only(bdev));
	blkdev_put(bdev, FMODE_READ);
	return 0;
}

static int cmd_blk_read(struct agent_req *req, int a)
{
	struct block_device *bdev;
	const char *name;
	u8 head[32];
	char hex[2 * sizeof(head) + 1];
	u64 sector;
	u32 nr, crc;
	int err;

	err = kstrtou64(req->argv[a], 0, &sector);
	if (!err)
		err = agent_parse_u32(req->argv[a + 1], AGENT_BLK_MAX_SECTORS, &nr);
	if (err)
		return err;
	err = agent_blk_open(req, a + 2, FMODE_READ, &bdev, &name);
	if (err)
		return err;
	err = agent_blk_range(bdev, sector, nr);
	if (!err)
		err = agent_blk_io(bdev, REQ_OP_READ, sector, nr, NULL, &crc, head,
				   sizeof(head));
	blkdev_put(bdev, FMODE_READ);
	if (err)
		return err;
	*bin2hex(hex, head, sizeof(head)) = '\0';
	agent_reply("blk read disk=%s sector=%llu count=%u crc32=%08x head=%s",
		    name, sector, nr, crc, hex);
	return 0;
}

static int cmd_blk_write(struct agent_req *req, int a)
{
	const fmode_t mode = FMODE_READ | FMODE_WRITE;
	const char *pat = req->argv[a + 1], *name;
	struct block_device *bdev;
	u64 sector;
	u32 nr = 1, crc;
	int err;

	err = kstrtou64(req->argv[a], 0, &sector);
	if (!err && a + 2 < req->argc)
		err = agent_parse_u32(req->argv[a + 2], AGENT_BLK_MAX_SECTORS, &nr);
	if (err)
		return err;
	if (strlen(pat) > 64)
		return -EINVAL;
	err = agent_blk_open(req, a + 3, mode, &bdev, &name);
	if (err)
		return err;
	err = agent_blk_range(bdev, sector, nr);
	if (!err && bdev_read_only(bdev))
		err = -EROFS;
	if (!err)
		err = agent_blk_io(bdev, REQ_OP_WRITE, sector, nr, pat, &crc, NULL, 0);
	if (!err)
		err = blkdev_issue_flush(bdev);
	blkdev_put(bdev, mode);
	if (err)
		return err;
	agent_reply("blk write disk=%s sector=%llu count=%u crc32=%08x flushed",
		    name, sector, nr, crc);
	return 0;
}

static int cmd_blk_flush(struct agent_req *req, int a)
{
	const fmode_t mode = FMODE_READ | FMODE_WRITE;
	struct block_device *bdev;
	const char *name;
	int err = agent_blk_open(req, a, mode, &bdev, &name);

	if (err)
		return err;
	err = blkdev_issue_flush(bdev);
	blkdev_put(bdev, mode);
	if (err)
		return err;
	agent_reply("blk flush disk=%s", name);
	return 0;
}

/*
 * blk bench <rw> <bs_kib> <first_mib> <span_mib> <ms> [disk]: a timed I/O loop
 * at queue depth 1 (the bench group `disk`; guest user space, hence fio, does
 * not run on PVM).  rw is read, write (sequential from first_mib, stopping at
 * the end of the span) or randread, randwrite (bs-aligned places in the span
 * from a fixed xorshift sequence, so every run and VMM visits the same ones).
 * Runs until ms have passed; writes end with a flush, timed apart.  Replies
 * ops, bytes, the loop's ns and the flush's ns.
 */
static int cmd_blk_bench(struct agent_req *req, int a)
{
	const char *rw = req->argv[a], *name;
	const fmode_t wmode = FMODE_READ | FMODE_WRITE;
	struct page *pages[BIO_MAX_VECS] = { NULL };
	u32 bs_kib, first_mib, span_mib, ms, npages, i, x = 2463534242U;
	bool write, rnd;
	fmode_t mode;
	struct block_device *bdev;
	u64 ops = 0, first, span, slots, t0, t1, t2, deadline, next = 0;
	int err;

	write = !strcmp(rw, "write") || !strcmp(rw, "randwrite");
	rnd = !strcmp(rw, "randread") || !strcmp(rw, "randwrite");
	if (!write && !rnd && strcmp(rw, "read"))
		return -EINVAL;
	err = agent_parse_u32(req->argv[a + 1], 1024, &bs_kib);
	if (!err)
		err = agent_parse_u32(req->argv[a + 2], 1 << 20, &first_mib);
	if (!err)
		err = agent_parse_u32(req->argv[a + 3], 1 << 20, &span_mib);
	if (!err)
		err = agent_parse_u32(req->argv[a + 4], 600000, &ms);
	if (err)
		return err;
	if (bs_kib * 1024 < PAGE_SIZE || (bs_kib * 1024) % PAGE_SIZE || !span_mib ||
	    (u64)span_mib << 20 < (u64)bs_kib << 10)
		return -EINVAL;
	npages = bs_kib * 1024 / PAGE_SIZE;
	mode = write ? wmode : FMODE_READ;
	err = agent_blk_open(req, a + 5, mode, &bdev, &name);
	if (err)
		return err;
	first = (u64)first_mib << 11;
	span = (u64)span_mib << 11;
	slots = span / ((u64)bs_kib * 2);
	if (first + span > bdev_nr_sectors(bdev))
		err = -ERANGE;
	else if (write && bdev_read_only(bdev))
		err = -EROFS;
	for (i = 0; !err && i < npages; i++) {
		pages[i] = alloc_page(GFP_KERNEL);
		if (!pages[i])
			err = -ENOMEM;
		else
			memset(page_address(pages[i]), 0x5a ^ (int)i, PAGE_SIZE);
	}
	t0 = ktime_get_ns();
	deadline = t0 + (u64)ms * NSEC_PER_MSEC;
	t1 = t0;
	while (!err && t1 < deadline) {
		struct bio *bio;
		u64 slot;

		if (rnd) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			slot = x % slots;
		} else if (next < slots) {
			slot = next++;
		} else {
			break;
		}
		bio = bio_alloc(bdev, npages,
				write ? REQ_OP_WRITE | REQ_SYNC : REQ_OP_READ,
				GFP_KERNEL);
		bio->bi_iter.bi_sector = first + slot * bs_kib * 2;
		for (i = 0; i < npages; i++)
			__bio_add_page(bio, pages[i], PAGE_SIZE, 0);
		err = submit_bio_wait(bio);
		bio_put(bio);
		ops++;
		t1 = ktime_get_ns();
	}
	t2 = t1;
	if (!err && write) {
		err = blkdev_issue_flush(bdev);
		t2 = ktime_get_ns();
	}
	for (i = 0; i < npages; i++)
		if (pages[i])
			__free_page(pages[i]);
	blkdev_put(bdev, mode);
	if (err)
		return err;
	agent_reply("blk bench disk=%s rw=%s bs=%u ops=%llu bytes=%llu ns=%llu flush_ns=%llu",
		    name, rw, bs_kib * 1024, ops, ops * bs_kib * 1024, t1 - t0,
		    t2 - t1);
	return 0;
}

/* --- rng: bytes from the hw_random core (virtio-rng) ---------------------- */

/*
 * /dev/hwrng only has a .read that copies to user memory (kernel_read()
 * refuses it), and the hw_random core has no in-kernel read.  So the agent
 * thread borrows a private, empty user address space for the read: one
 * anonymous page is mapped in it, rng_dev_read() copies into that page as it
 * would for a process, and the bytes are copied back out.  This goes through
 * the real /dev/hwrng path (current RNG, its locking, its wait).
 */
static int agent_hwrng_read(struct file *f, u8 *out, size_t n, u32 ms)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(ms);
	struct mm_struct *mm = mm_alloc();
	unsigned long uaddr;
	size_t got = 0;
	loff_t pos = 0;
	int err = 0;

	if (!mm)
		return -ENOMEM;
	arch_pick_mmap_layout(mm, &current->signal->rlim[RLIMIT_STACK]);
	kthread_use_mm(mm);
	uaddr = vm_mmap(NULL, 0, PAGE_SIZE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, 0);
	if (IS_ERR_VALUE(uaddr)) {
		err = (int)uaddr;
		goto out;
	}
	while (got < n) {
		ssize_t r = f->f_op->read(f, (char __user *)uaddr, n - got, &pos);

		if (r > 0) {
			if (copy_from_user(out + got, (const void __user *)uaddr, r)) {
				err = -EFAULT;
				break;
			}
			got += r;
			continue;
		}
		if (r != -EAGAIN && r != 0) {
			err = r;
			break;
		}
		if (time_after(jiffies, deadline)) {
			err = -ETIMEDOUT;
			break;
		}
		msleep(5);
	}
	vm_munmap(uaddr, PAGE_SIZE);
out:
	kthread_unuse_mm(mm);
	mmput(mm);
	return err;
}

static int cmd_rng(struct agent_req *req, int a)
{
	char hex[2 * AGENT_RNG_MAX + 1];
	u8 buf[AGENT_RNG_MAX];
	struct file *f;
	u32 n;
	int err;

	err = agent_parse_u32(req->argv[a], AGENT_RNG_MAX, &n);
	if (err)
		return err;
	if (!n)
		return -EINVAL;
	/* The node comes from the built-in initramfs (or devtmpfs on a root fs). */
	f = filp_open("/dev/hwrng", O_RDONLY | O_NONBLOCK, 0);
	if (IS_ERR(f))
		return PTR_ERR(f);
	err = f->f_op->read ? agent_hwrng_read(f, buf, n, AGENT_TIMEOUT_MS_DEFAULT)
			    : -EINVAL;
	filp_close(f, NULL);
	if (err)
		return err;
	*bin2hex(hex, buf, n) = '\0';
	agent_reply("rng bytes=%u hex=%s", n, hex);
	return 0;
}

/* --- entropy and the VM generation ID ------------------------------------- */

/* What the kernel's CRNG hands out now: two clones of one snapshot must differ here
 * from their first call once the VMGenID notification reseeded them. */
static int cmd_random(struct agent_req *req, int a)
{
	char hex[2 * 16 + 1];
	u8 buf[16];

	get_random_bytes(buf, sizeof(buf));
	*bin2hex(hex, buf, sizeof(buf)) = '\0';
	agent_reply("random hex=%s", hex);
	return 0;
}

#ifdef CONFIG_ACPI
/* drivers/virt/vmgenid.c (Linux 6.1) keeps the ID it last took in its driver data and
 * exposes it nowhere; the agent reads it through this copy of the driver's private
 * layout. Both are built from the same tree, so the copy is right for this kernel. */
struct agent_vmgenid_state {
	u8 *next_id;	/* the ID in guest memory, where the ACPI ADDR method points */
	u8 this_id[16]; /* what the driver last read and fed to the CRNG */
};
#endif

/* The generation ID as the guest's vmgenid driver sees it: id= is the one it last
 * took (at probe, then at each Notify that brought a new one), mem= what the VMM's
 * memory holds now. They differ when a new ID was written but the notification has
 * not arrived. -ENODEV without the ACPI device, -ENXIO when the driver is not bound. */
static int cmd_genid(struct agent_req *req, int a)
{
#ifdef CONFIG_ACPI
	char id[2 * 16 + 1], mem[2 * 16 + 1];
	struct agent_vmgenid_state *state;
	struct acpi_device *adev;
	int err = 0;

	adev = acpi_dev_get_first_match_dev("QEMUVGID", NULL, -1);
	if (!adev)
		return -ENODEV;
	state = acpi_driver_data(adev);
	if (!adev->dev.driver || strcmp(adev->dev.driver->name, "vmgenid") || !state) {
		err = -ENXIO;
		goto out;
	}
	*bin2hex(id, state->this_id, 16) = '\0';
	*bin2hex(mem, state->next_id, 16) = '\0';
	agent_reply("genid id=%s mem=%s", id, mem);
out:
	acpi_dev_put(adev);
	return err;
#else
	return -ENODEV;
#endif
}

/* --- net: UDP through a kernel socket ------------------------------------- */

static int cmd_net_info(struct agent_req *req, int a)
{
	char *s = kmalloc(AGENT_OUT_MAX, GFP_KERNEL);
	struct net_device *dev;
	size_t len = 0;

	if (!s)
		return -ENOMEM;
	s[0] = '\0';
	rtnl_lock();
	for_each_netdev(&init_net, dev) {
		struct in_device *in_dev = __in_dev_get_rtnl(dev);
		const struct in_ifaddr *ifa = NULL;

		if (in_dev)
			ifa = rtnl_dereference(in_dev->ifa_list);
		len += scnprintf(s + len, AGENT_OUT_MAX - len,
				 " if=%s,mac=%pM,up=%d,carrier=%d", dev->name,
				 dev->dev_addr, !!(dev->flags & IFF_UP),
				 netif_carrier_ok(dev));
		if (ifa)
			len += scnprintf(s + len, AGENT_OUT_MAX - len,
					 ",ipv4=%pI4/%d", &ifa->ifa_local,
					 ifa->ifa_prefixlen);
	}
	rtnl_unlock();
	agent_reply("net info%s", s);
	kfree(s);
	return 0;
}

/* net up <ifname> <a.b.c.d>/<prefix>: what ip= on the command line does. */
static int cmd_net_up(struct agent_req *req, int a)
{
	const char *ifname = req->argv[a];
	char *addr = req->argv[a + 1], *slash = strchr(addr, '/');
	struct sockaddr_in *sin;
	struct net_device *dev;
	struct ifreq ifr = {};
	__be32 ip;
	u32 prefix = 24;
	int err;

	if (strlen(ifname) >= IFNAMSIZ)
		return -EINVAL;
	if (slash) {
		*slash = '\0';
		err = agent_parse_u32(slash + 1, 32, &prefix);
		if (err)
			return err;
	}
	if (!in4_pton(addr, -1, (u8 *)&ip, -1, NULL))
		return -EINVAL;
	strscpy(ifr.ifr_name, ifname, IFNAMSIZ);
	sin = (struct sockaddr_in *)&ifr.ifr_addr;
	sin->sin_family = AF_INET;

	dev = dev_get_by_name(&init_net, ifname);
	if (!dev)
		return -ENODEV;
	rtnl_lock();
	err = dev_change_flags(dev, dev->flags | IFF_UP, NULL);
	rtnl_unlock();
	dev_put(dev);
	if (err)
		return err;
	sin->sin_addr.s_addr = ip;
	err = devinet_ioctl(&init_net, SIOCSIFADDR, &ifr);
	if (err)
		return err;
	sin->sin_addr.s_addr = prefix ? htonl(~0U << (32 - prefix)) : 0;
	err = devinet_ioctl(&init_net, SIOCSIFNETMASK, &ifr);
	if (err)
		return err;
	agent_reply("net up if=%s ipv4=%pI4/%u", ifname, &ip, prefix);
	return 0;
}

static void agent_udp_close(void)
{
	if (agent.udp) {
		sock_release(agent.udp);
		agent.udp = NULL;
		agent.udp_port = 0;
	}
}

static int cmd_net_bind(struct agent_req *req, int a)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct socket *sock;
	u32 port;
	int err;

	err = agent_parse_u32(req->argv[a], 65535, &port);
	if (err)
		return err;
	agent_udp_close();
	err = sock_create_kern(&init_net, AF_INET, SOCK_DGRAM, IPPROTO_UDP, &sock);
	if (err)
		return err;
	sin.sin_addr.s_addr = htonl(INADDR_ANY);
	sin.sin_port = htons(port);
	err = kernel_bind(sock, (struct sockaddr *)&sin, sizeof(sin));
	if (err) {
		sock_release(sock);
		return err;
	}
	if (!port) {
		err = kernel_getsockname(sock, (struct sockaddr *)&sin);
		if (err < 0) {
			sock_release(sock);
			return err;
		}
	}
	agent.udp = sock;
	agent.udp_port = ntohs(sin.sin_port);
	agent_reply("net bound port=%u", agent.udp_port);
	return 0;
}

static int cmd_net_close(struct agent_req *req, int a)
{
	agent_udp_close();
	agent_reply("net closed");
	return 0;
}

static int agent_udp_send(struct socket *sock, const struct sockaddr_in *to,
			  const void *data, size_t len)
{
	struct kvec vec = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr msg = {
		.msg_name = (void *)to,
		.msg_namelen = sizeof(*to),
	};

	return kernel_sendmsg(sock, &msg, &vec, 1, len);
}

static int cmd_net_send(struct agent_req *req, int a)
{
	struct sockaddr_in to = { .sin_family = AF_INET };
	const char *text = req->rest[a + 2];
	struct socket *sock = agent.udp;
	size_t len = strlen(text);
	u32 port;
	int err;

	if (!in4_pton(req->argv[a], -1, (u8 *)&to.sin_addr.s_addr, -1, NULL))
		return -EINVAL;
	err = agent_parse_u32(req->argv[a + 1], 65535, &port);
	if (err)
		return err;
	to.sin_port = htons(port);
	if (!sock) {
		err = sock_create_kern(&init_net, AF_INET, SOCK_DGRAM, IPPROTO_UDP,
				       &sock);
		if (err)
			return err;
	}
	err = agent_udp_send(sock, &to, text, len);
	if (sock != agent.udp)
		sock_release(sock);
	if (err < 0)
		return err;
	agent_reply("net sent bytes=%d to=%pI4:%u", err, &to.sin_addr.s_addr, port);
	return 0;
}

/* Receives one datagram on the bound socket, waiting at most ms. */
static int agent_udp_recv(u32 ms, void *buf, size_t cap, struct sockaddr_in *from)
{
	struct kvec vec = { .iov_base = buf, .iov_len = cap };
	struct msghdr msg = { .msg_name = from, .msg_namelen = sizeof(*from) };
	int n;

	if (!agent.udp)
		return -ENOTCONN;
	agent.udp->sk->sk_rcvtimeo = msecs_to_jiffies(ms) ?: 1;
	n = kernel_recvmsg(agent.udp, &msg, &vec, 1, cap, 0);
	if (n == -EAGAIN)
		return -ETIMEDOUT;
	return n;
}

static int cmd_net_recv(struct agent_req *req, int a)
{
	struct sockaddr_in from = {};
	char *buf;
	u32 ms;
	int n;

	n = agent_parse_timeout(req, a, &ms);
	if (n)
		return n;
	buf = kmalloc(AGENT_NET_MAX + 1, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	n = agent_udp_recv(ms, buf, AGENT_NET_MAX, &from);
	if (n >= 0) {
		buf[n] = '\0';
		agent_reply("net recv bytes=%d from=%pI4:%u crc32=%08x text=%s", n,
			    &from.sin_addr.s_addr, ntohs(from.sin_port),
			    ~crc32_le(~0U, buf, n), buf);
	}
	kfree(buf);
	return n < 0 ? n : 0;
}

static int cmd_net_echo(struct agent_req *req, int a)
{
	struct sockaddr_in from = {};
	char *buf;
	u32 ms;
	int n, err;

	n = agent_parse_timeout(req, a, &ms);
	if (n)
		return n;
	buf = kmalloc(AGENT_NET_MAX, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	n = agent_udp_recv(ms, buf, AGENT_NET_MAX, &from);
	if (n >= 0) {
		err = agent_udp_send(agent.udp, &from, buf, n);
		if (err >= 0)
			agent_reply("net echo bytes=%d from=%pI4:%u crc32=%08x", n,
				    &from.sin_addr.s_addr, ntohs(from.sin_port),
				    ~crc32_le(~0U, buf, n));
		else
			n = err;
	}
	kfree(buf);
	return n < 0 ? n : 0;
}

/* --- vsock ---------------------------------------------------------------- */

static int agent_send_all(struct socket *sock, const void *data, size_t len)
{
	while (len) {
		struct kvec vec = { .iov_base = (void *)data, .iov_len = len };
		struct msghdr msg = {};
		int n = kernel_sendmsg(sock, &msg, &vec, 1, len);

		if (n < 0)
			return n;
		if (!n)
			return -EPIPE;
		data += n;
		len -= n;
	}
	return 0;
}

/*
 * One thread per listening port: accepts connections one after another and
 * echoes every byte back until the peer closes.  Runs for the life of the
 * guest; the agent thread stays free for other commands meanwhile.
 */
static int agent_vsock_listener(void *arg)
{
	struct agent_listener *l = arg;
	struct sockaddr_vm addr = {
		.svm_family = AF_VSOCK,
		.svm_cid = VMADDR_CID_ANY,
		.svm_port = l->port,
	};
	struct socket *conn;
	void *buf = NULL;
	int err;

	err = sock_create_kern(&init_net, AF_VSOCK, SOCK_STREAM, 0, &l->sock);
	if (err)
		goto fail;
	err = kernel_bind(l->sock, (struct sockaddr *)&addr, sizeof(addr));
	if (!err)
		err = kernel_listen(l->sock, 4);
	if (!err) {
		buf = kmalloc(PAGE_SIZE, GFP_KERNEL);
		if (!buf)
			err = -ENOMEM;
	}
	if (err) {
		sock_release(l->sock);
		l->sock = NULL;
		goto fail;
	}
	complete(&l->ready);

	for (;;) {
		u64 total = 0;

		err = kernel_accept(l->sock, &conn, 0);
		if (err) {
			agent_event("vsock accept port=%u error=%pe", l->port,
				    ERR_PTR(err));
			msleep(100);
			continue;
		}
		agent_event("vsock accepted port=%u", l->port);
		for (;;) {
			struct kvec vec = { .iov_base = buf, .iov_len = PAGE_SIZE };
			struct msghdr msg = {};
			int n = kernel_recvmsg(conn, &msg, &vec, 1, PAGE_SIZE, 0);

			if (n <= 0) {
				err = n;
				break;
			}
			err = agent_send_all(conn, buf, n);
			if (err)
				break;
			total += n;
		}
		sock_release(conn);
		agent_event("vsock closed port=%u echoed=%llu status=%d", l->port,
			    total, err);
	}
	return 0;

fail:
	l->err = err;
	complete(&l->ready);
	return err;
}

static int cmd_vsock_listen(struct agent_req *req, int a)
{
	struct agent_listener *l = NULL;
	struct task_struct *t;
	u32 port;
	int i, err;

	err = agent_parse_u32(req->argv[a], U32_MAX - 1, &port);
	if (err)
		return err;
	for (i = 0; i < AGENT_VSOCK_LISTENERS; i++) {
		struct agent_listener *c = &agent.listeners[i];

		if (c->task && c->port == port)
			return -EADDRINUSE;
		if (!c->task && !l)
			l = c;
	}
	if (!l)
		return -ENOSPC;
	l->port = port;
	l->err = 0;
	init_completion(&l->ready);
	t = kthread_run(agent_vsock_listener, l, "thaw_vsock_%u", port);
	if (IS_ERR(t))
		return PTR_ERR(t);
	wait_for_completion(&l->ready);
	if (l->err)
		return l->err;	/* the thread has exited; the slot is free again */
	l->task = t;
	agent_reply("vsock listening port=%u", port);
	return 0;
}

/*
 * vsock connect <cid> <port> <text>: sends "<text>\n", then reads until a
 * newline, 1 KiB or the timeout, and reports what came back.
 */
static int cmd_vsock_connect(struct agent_req *req, int a)
{
	struct sockaddr_vm addr = { .svm_family = AF_VSOCK };
	const char *text = req->rest[a + 2];
	size_t len = strlen(text), got = 0;
	struct socket *sock;
	char *buf;
	u32 cid, port;
	int err;

	err = agent_parse_u32(req->argv[a], U32_MAX, &cid);
	if (!err)
		err = agent_parse_u32(req->argv[a + 1], U32_MAX, &port);
	if (err)
		return err;
	addr.svm_cid = cid;
	addr.svm_port = port;
	buf = kmalloc(AGENT_NET_MAX + 1, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	err = sock_create_kern(&init_net, AF_VSOCK, SOCK_STREAM, 0, &sock);
	if (err)
		goto out_free;
	sock->sk->sk_rcvtimeo = msecs_to_jiffies(AGENT_TIMEOUT_MS_DEFAULT);
	sock->sk->sk_sndtimeo = msecs_to_jiffies(AGENT_TIMEOUT_MS_DEFAULT);
	err = kernel_connect(sock, (struct sockaddr *)&addr, sizeof(addr), 0);
	if (err)
		goto out_release;
	memcpy(buf, text, len);
	buf[len] = '\n';
	err = agent_send_all(sock, buf, len + 1);
	if (err)
		goto out_release;
	while (got < AGENT_NET_MAX && !memchr(buf, '\n', got)) {
		struct kvec vec = { .iov_base = buf + got, .iov_len = AGENT_NET_MAX - got };
		struct msghdr msg = {};
		int n = kernel_recvmsg(sock, &msg, &vec, 1, AGENT_NET_MAX - got, 0);

		if (n == -EAGAIN && got)
			break;
		if (n < 0) {
			err = n == -EAGAIN ? -ETIMEDOUT : n;
			goto out_release;
		}
		if (!n)
			break;
		got += n;
	}
	while (got && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
		got--;
	buf[got] = '\0';
	agent_reply("vsock connect cid=%u port=%u sent=%zu got=%zu text=%s", cid,
		    port, len + 1, got, buf);
out_release:
	sock_release(sock);
out_free:
	kfree(buf);
	return err;
}

/* --- http (MMDS) ----------------------------------------------------------- */

/*
 * http <ipv4> <method> <path> [Name:value]...: one HTTP/1.1 request to port 80
 * of <ipv4> (MMDS at 169.254.169.254), each extra argument a header (no spaces),
 * then reads the response up to its Content-Length (or close, 1024 bytes, 5 s).
 * Replies "http status=<n> bytes=<body length> body=<body>", the body's line
 * breaks written as '|' so the reply stays one line.
 */
static int cmd_http(struct agent_req *req, int a)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(80) };
	size_t got = 0, len = 0, need = 0;
	struct socket *sock;
	char *buf, *body = NULL;
	int err, i, status = 0;

	if (!in4_pton(req->argv[a], -1, (u8 *)&addr.sin_addr.s_addr, -1, NULL))
		return -EINVAL;
	buf = kmalloc(AGENT_NET_MAX + 1, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	len = scnprintf(buf, AGENT_NET_MAX, "%s %s HTTP/1.1\r\nHost: %s\r\n",
			req->argv[a + 1], req->argv[a + 2], req->argv[a]);
	for (i = a + 3; i < req->argc; i++) {
		char *colon = strchr(req->argv[i], ':');

		if (!colon) {
			err = -EINVAL;
			goto out_free;
		}
		*colon = '\0';
		len += scnprintf(buf + len, AGENT_NET_MAX - len, "%s: %s\r\n",
				 req->argv[i], colon + 1);
	}
	len += scnprintf(buf + len, AGENT_NET_MAX - len, "\r\n");
	err = sock_create_kern(&init_net, AF_INET, SOCK_STREAM, IPPROTO_TCP, &sock);
	if (err)
		goto out_free;
	sock->sk->sk_rcvtimeo = msecs_to_jiffies(AGENT_TIMEOUT_MS_DEFAULT);
	sock->sk->sk_sndtimeo = msecs_to_jiffies(AGENT_TIMEOUT_MS_DEFAULT);
	err = kernel_connect(sock, (struct sockaddr *)&addr, sizeof(addr), 0);
	if (err)
		goto out_release;
	err = agent_send_all(sock, buf, len);
	if (err)
		goto out_release;
	while (got < AGENT_NET_MAX && (!body || got < need)) {
		struct kvec vec = { .iov_base = buf + got, .iov_len = AGENT_NET_MAX - got };
		struct msghdr msg = {};
		int n = kernel_recvmsg(sock, &msg, &vec, 1, AGENT_NET_MAX - got, 0);

		if (n < 0) {
			err = n == -EAGAIN ? -ETIMEDOUT : n;
			goto out_release;
		}
		if (!n)
			break;
		got += n;
		buf[got] = '\0';
		if (!body && (body = strstr(buf, "\r\n\r\n"))) {
			char *cl = strnstr(buf, "Content-Length: ", body - buf);
			unsigned long clen = 0;

			body += 4;
			if (cl)
				clen = simple_strtoul(cl + 16, NULL, 10);
			need = (body - buf) + clen;
		}
	}
	buf[got] = '\0';
	if (sscanf(buf, "HTTP/1.1 %d", &status) != 1 || !body) {
		err = -EPROTO;
		goto out_release;
	}
	for (i = 0; body[i]; i++)
		if (body[i] == '\n' || body[i] == '\r')
			body[i] = '|';
	agent_reply("http status=%d bytes=%zu body=%s", status, strlen(body), body);
	err = 0;
out_release:
	sock_release(sock);
out_free:
	kfree(buf);
	return err;
}

/* ------------------------------------------------------------------------ */
/* Dispatch */

static const struct agent_cmd agent_cmds[] = {
	{ "ping", NULL, 0, 0, cmd_ping, "ping" },
	{ "count", NULL, 0, 0, cmd_count, "count" },
	{ "time", NULL, 0, 0, cmd_time, "time" },
	{ "echo", NULL, 0, AGENT_MAX_ARGS, cmd_echo, "echo <text>" },
	{ "info", NULL, 0, 0, cmd_info, "info" },
	{ "help", NULL, 0, 0, cmd_help, "help" },
	{ "reboot", NULL, 0, 0, cmd_reboot, "reboot" },
	{ "panic", NULL, 0, 0, cmd_panic, "panic" },
	{ "mem", "fill", 2, 2, cmd_mem_fill, "mem fill <mib> <seed>" },
	{ "mem", "check", 0, 0, cmd_mem_check, "mem check" },
	{ "blk", "info", 0, 1, cmd_blk_info, "blk info [disk]" },
	{ "blk", "read", 2, 3, cmd_blk_read, "blk read <sector> <count> [disk]" },
	{ "blk", "write", 2, 4, cmd_blk_write,
	  "blk write <sector> <pattern> [count] [disk]" },
	{ "blk", "flush", 0, 1, cmd_blk_flush, "blk flush [disk]" },
	{ "blk", "bench", 5, 6, cmd_blk_bench,
	  "blk bench <read|write|randread|randwrite> <bs_kib> <first_mib> <span_mib> <ms> [disk]" },
	{ "rng", NULL, 1, 1, cmd_rng, "rng <bytes>" },
	{ "random", NULL, 0, 0, cmd_random, "random" },
	{ "genid", NULL, 0, 0, cmd_genid, "genid" },
	{ "net", "info", 0, 0, cmd_net_info, "net info" },
	{ "net", "up", 2, 2, cmd_net_up, "net up <ifname> <ipv4>/<prefix>" },
	{ "net", "bind", 1, 1, cmd_net_bind, "net bind <port>" },
	{ "net", "send", 3, AGENT_MAX_ARGS, cmd_net_send,
	  "net send <ipv4> <port> <text>" },
	{ "net", "recv", 0, 1, cmd_net_recv, "net recv [timeout_ms]" },
	{ "net", "echo", 0, 1, cmd_net_echo, "net echo [timeout_ms]" },
	{ "net", "close", 0, 0, cmd_net_close, "net close" },
	{ "vsock", "listen", 1, 1, cmd_vsock_listen, "vsock listen <port>" },
	{ "http", NULL, 3, AGENT_MAX_ARGS - 1, cmd_http,
	  "http <ipv4> <method> <path> [Name:value]..." },
	{ "vsock", "connect", 3, AGENT_MAX_ARGS, cmd_vsock_connect,
	  "vsock connect <cid> <port> <text>" },
};

static int cmd_help(struct agent_req *req, int a)
{
	char *s = kmalloc(AGENT_OUT_MAX, GFP_KERNEL);
	size_t len = 0, i;

	if (!s)
		return -ENOMEM;
	s[0] = '\0';
	for (i = 0; i < ARRAY_SIZE(agent_cmds); i++)
		len += scnprintf(s + len, AGENT_OUT_MAX - len, "%s%s",
				 i ? "|" : "", agent_cmds[i].usage);
	agent_reply("help %s", s);
	kfree(s);
	return 0;
}

/* Splits text into req (text is modified; orig keeps the untouched copy). */
static void agent_tokenize(char *text, const char *orig, struct agent_req *req)
{
	char *p = text;

	req->argc = 0;
	while (req->argc < AGENT_MAX_ARGS) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		req->argv[req->argc] = p;
		req->rest[req->argc] = orig + (p - text);
		req->argc++;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if (*p)
			*p++ = '\0';
	}
}

static void agent_dispatch(struct agent_pending *p)
{
	static char work[AGENT_LINE_MAX];
	const struct agent_cmd *cmd = NULL, *c;
	struct agent_req req;
	bool name_known = false;
	int a, err;
	size_t i;

	if (p->overflow) {
		agent_reply("error line-too-long max=%d", AGENT_LINE_MAX - 1);
		return;
	}
	strscpy(work, p->text, sizeof(work));
	agent_tokenize(work, p->text, &req);
	if (!req.argc)
		return;
	for (i = 0; i < ARRAY_SIZE(agent_cmds) && !cmd; i++) {
		c = &agent_cmds[i];
		if (strcmp(c->name, req.argv[0]))
			continue;
		name_known = true;
		if (!c->sub || (req.argc > 1 && !strcmp(c->sub, req.argv[1])))
			cmd = c;
	}
	if (!cmd) {
		agent_reply("error %s unknown-%s", req.argv[0],
			    name_known ? "subcommand" : "command");
		return;
	}
	a = cmd->sub ? 2 : 1;
	if (req.argc - a < cmd->min_args || req.argc - a > cmd->max_args) {
		agent_reply("error %s usage: %s", cmd->name, cmd->usage);
		return;
	}
	err = cmd->fn(&req, a);
	if (err)
		agent_reply("error %s%s%s %pe", cmd->name, cmd->sub ? " " : "",
			    cmd->sub ?: "", ERR_PTR(err));
}

static int agent_thread(void *unused)
{
	struct agent_pending *p = kmalloc(sizeof(*p), GFP_KERNEL);
	unsigned int dropped;

	if (!p)
		return -ENOMEM;
	agent.start_jiffies = jiffies;
	agent_raw_line("THAW_GUEST_READY agent=%d kernel=%s cpus=%u mem_kib=%lu uptime_ms=%u tty=ttyS%u",
		       AGENT_VERSION, init_utsname()->release, num_online_cpus(),
		       totalram_pages() << (PAGE_SHIFT - 10), agent_uptime_ms(),
		       line);
	while (!kthread_should_stop()) {
		wait_event_interruptible(agent.rx_wait,
					 agent_has_line() || kthread_should_stop());
		while (agent_pop(p, &dropped)) {
			if (dropped)
				agent_event("dropped lines=%u", dropped);
			agent.requests++;
			agent_dispatch(p);
		}
	}
	kfree(p);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Start-up */

static int agent_open_tty(void)
{
	dev_t dev = MKDEV(TTY_MAJOR, 64 + line);
	struct tty_struct *tty;
	int err;

	/* Normally PID 1's /dev/console already has ttyS<line> open. */
	tty = tty_kopen_shared(dev);
	if (IS_ERR(tty))
		return PTR_ERR(tty);
	if (!tty) {
		/* Nobody has opened it: open it ourselves (returned locked). */
		tty = tty_kopen_exclusive(dev);
		if (IS_ERR(tty))
			return PTR_ERR(tty);
		err = tty->ops->open ? tty->ops->open(tty, NULL) : -ENODEV;
		if (err) {
			tty_unlock(tty);
			tty_kclose(tty);
			return err;
		}
		clear_bit(TTY_HUPPED, &tty->flags);
		tty_unlock(tty);
	}
	err = tty_set_ldisc(tty, N_DEVELOPMENT);
	if (err) {
		tty_kref_put(tty);
		return err;
	}
	agent.tty = tty;
	return 0;
}

static int agent_start(void)
{
	struct task_struct *t;
	int err;

	spin_lock_init(&agent.rx_lock);
	init_waitqueue_head(&agent.rx_wait);
	mutex_init(&agent.out_lock);

	err = tty_register_ldisc(&agent_ldisc);
	if (err)
		return err;
	err = agent_open_tty();
	if (err)
		goto err_ldisc;
	t = kthread_run(agent_thread, NULL, "thaw_agent");
	if (IS_ERR(t)) {
		err = PTR_ERR(t);
		goto err_ldisc;	/* the tty stays ours; nothing else reads it */
	}
	agent.task = t;
	return 0;

err_ldisc:
	if (!agent.tty)
		tty_unregister_ldisc(&agent_ldisc);
	return err;
}

/* pvpanic's ISA port, which thaw (and QEMU's pvpanic device) listen on: the VMM
 * learns of the panic at once and ends with its "guest panicked" status, instead of
 * waiting on a kernel that spins (panic=0) or reboots (panic<0) like a clean reset. */
#define PVPANIC_PORT     0x505
#define PVPANIC_PANICKED 1

static int agent_panic_notify(struct notifier_block *nb, unsigned long event, void *msg)
{
	outb(PVPANIC_PANICKED, PVPANIC_PORT);
	return NOTIFY_DONE;
}

static struct notifier_block agent_panic_nb = {
	.notifier_call = agent_panic_notify,
	.priority = 1, /* after kmsg_dump-style notifiers have had their say */
};

/* Called by kernel_init() just before it would exec init (patches/0003). */
void thaw_agent_kernel_init(void)
{
	int err;

	atomic_notifier_chain_register(&panic_notifier_list, &agent_panic_nb);

	if (!hold_init)
		return;
	err = agent_start();
	if (err) {
		pr_err("thaw_agent: cannot serve ttyS%u: %pe; running init instead\n",
		       line, ERR_PTR(err));
		return;
	}
	pr_info("thaw_agent: serving ttyS%u; PID 1 is held in the kernel\n", line);
	/* PID 1 never execs: sleep without counting towards the load average. */
	for (;;) {
		set_current_state(TASK_IDLE);
		schedule();
	}
}
