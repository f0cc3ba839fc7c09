/* i8042 keyboard controller, as much of it as Firecracker's: the data port (0x60) and the
 * status/command port (0x64), a 16-byte output buffer, the command byte, the reset line
 * (command 0xfe: the guest asks to reboot, which for a microVM is the end) and a keyboard
 * that can only press Ctrl+Alt+Del (`SendCtrlAltDel`), announced on IRQ 1. */
#include "vmm/vmm.h"
#include "restore/snapshot.h"

#include <errno.h>
#include <string.h>

#define I8042_DATA   0 /* offset of port 0x60 */
#define I8042_STATUS 4 /* offset of port 0x64: status on read, command on write */

/* status register */
#define SB_OUT_DATA_AVAIL 0x01
#define SB_I8042_CMD_DATA 0x08 /* the last write went to the command port */
#define SB_KBD_ENABLED	  0x10

/* command byte ("control register") */
#define CB_KBD_INT 0x01
#define CB_POST_OK 0x04

/* controller commands */
#define CMD_READ_CTR   0x20
#define CMD_WRITE_CTR  0x60
#define CMD_READ_OUTP  0xd0
#define CMD_WRITE_OUTP 0xd1
#define CMD_RESET_CPU  0xfe

#define KBD_ACK 0xfa

/* Ctrl, Alt, Del pressed, in scan code set 2 (Del is an extended key). */
static const uint8_t ctrl_alt_del[] = {0x14, 0x11, 0xe0, 0x71};

void i8042_init(struct i8042 *k, void (*reset)(void *), void (*irq)(void *), void *opaque)
{
	memset(&k->s, 0, sizeof(k->s));
	memset(&k->n, 0, sizeof(k->n));
	k->s.status = SB_KBD_ENABLED;
	k->s.control = CB_POST_OK | CB_KBD_INT;
	pthread_mutex_init(&k->lock, NULL);
	k->reset = reset;
	k->irq = irq;
	k->opaque = opaque;
}

/* Appends to the output buffer; false when it is full. */
static bool push(struct i8042_state *s, uint8_t b)
{
	if (s->len == I8042_BUF)
		return false;
	s->buf[(s->head + s->len) % I8042_BUF] = b;
	s->len++;
	s->status |= SB_OUT_DATA_AVAIL;
	return true;
}

static uint8_t pop(struct i8042_state *s)
{
	uint8_t b;

	if (!s->len)
		return 0;
	b = s->buf[s->head];
	s->head = (uint8_t)((s->head + 1) % I8042_BUF);
	if (!--s->len)
		s->status &= (uint8_t)~SB_OUT_DATA_AVAIL;
	return b;
}

/* The guest may have masked the keyboard interrupt in its command byte. */
static bool irq_enabled(const struct i8042_state *s)
{
	return s->control & CB_KBD_INT;
}

void i8042_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct i8042 *k = opaque;
	struct i8042_state *s = &k->s;
	bool reset = false, irq = false;

	if (len != 1 || (offset != I8042_DATA && offset != I8042_STATUS)) {
		pthread_mutex_lock(&k->lock);
		if (is_write)
			k->n.missed_write_count++;
		else
			k->n.missed_read_count++;
		pthread_mutex_unlock(&k->lock);
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&k->lock);
	if (is_write)
		k->n.write_count++;
	else
		k->n.read_count++;
	if (!is_write) {
		data[0] = offset == I8042_STATUS ? s->status : pop(s);
		/* More bytes waiting: announce the next one. */
		irq = offset == I8042_DATA && s->len && irq_enabled(s);
	} else if (offset == I8042_STATUS) {
		s->status |= SB_I8042_CMD_DATA;
		s->cmd = 0;
		switch (data[0]) {
		case CMD_READ_CTR:
			push(s, s->control);
			break;
		case CMD_READ_OUTP:
			push(s, s->outp);
			break;
		case CMD_WRITE_CTR:
		case CMD_WRITE_OUTP:
			s->cmd = data[0]; /* the byte comes through the data port */
			break;
		case CMD_RESET_CPU:
			reset = true;
			k->n.reset_count++;
			break;
		default:
			break; /* as Firecracker: other commands are ignored */
		}
	} else {
		s->status &= (uint8_t)~SB_I8042_CMD_DATA;
		if (s->cmd == CMD_WRITE_CTR)
			s->control = data[0];
		else if (s->cmd == CMD_WRITE_OUTP)
			s->outp = data[0];
		else
			irq = push(s, KBD_ACK) && irq_enabled(s); /* a keyboard command */
		s->cmd = 0;
	}
	pthread_mutex_unlock(&k->lock);
	if (irq && k->irq)
		k->irq(k->opaque);
	if (reset && k->reset)
		k->reset(k->opaque);
}

struct i8042_counts i8042_counts(struct i8042 *k)
{
	struct i8042_counts n;

	pthread_mutex_lock(&k->lock);
	n = k->n;
	pthread_mutex_unlock(&k->lock);
	return n;
}

int i8042_send_ctrl_alt_del(struct i8042 *k)
{
	struct i8042_state *s = &k->s;
	bool irq;

	pthread_mutex_lock(&k->lock);
	if ((size_t)(I8042_BUF - s->len) < sizeof(ctrl_alt_del)) {
		pthread_mutex_unlock(&k->lock);
		return -ENOSPC;
	}
	for (size_t i = 0; i < sizeof(ctrl_alt_del); i++)
		push(s, ctrl_alt_del[i]);
	irq = irq_enabled(s);
	pthread_mutex_unlock(&k->lock);
	if (irq && k->irq)
		k->irq(k->opaque);
	return 0;
}

/* ---------------------------------------------------------------- snapshot */

/* Section `i8042` (docs/snapshot-format.md): optional, so a thaw from before it loads the
 * snapshot with a controller in its reset state, as this one does a snapshot without it.
 * Not a `device.*` section: those are the virtio devices' and COM1's, each required. The
 * controller's place is fixed (ports 0x60-0x64, IRQ 1) and not saved. */
enum {
	I8042_TAG_REGS = 1, /* bytes: status control outp cmd */
	I8042_TAG_BUF = 2,  /* bytes: the output buffer's contents, in order */
};
#define I8042_SECTION_MAJOR 1
#define I8042_NR_REGS	    4

int i8042_save_section(struct i8042 *k, struct snap_writer *w)
{
	uint8_t regs[I8042_NR_REGS], buf[I8042_BUF];
	struct snap_sec *sec;
	int ret;

	ret = snap_writer_section(w, "i8042", I8042_SECTION_MAJOR, 0, 0, &sec);
	if (ret)
		return ret;
	pthread_mutex_lock(&k->lock);
	regs[0] = k->s.status, regs[1] = k->s.control, regs[2] = k->s.outp, regs[3] = k->s.cmd;
	for (unsigned i = 0; i < k->s.len; i++)
		buf[i] = k->s.buf[(k->s.head + i) % I8042_BUF];
	snap_put_bytes(sec, I8042_TAG_REGS, regs, sizeof(regs));
	snap_put_bytes(sec, I8042_TAG_BUF, buf, k->s.len);
	pthread_mutex_unlock(&k->lock);
	return sec->err;
}

int i8042_decode_section(const struct snap_section *sec, struct i8042_state *st, char *err,
			 size_t errlen)
{
	const uint8_t *r;
	const void *p;
	size_t len;
	int ret;

	memset(st, 0, sizeof(*st));
	ret = snap_section_check_version(sec, I8042_SECTION_MAJOR, err, errlen);
	if (ret)
		return ret;
	if (snap_get_bytes(sec, I8042_TAG_REGS, &p, &len) || len != I8042_NR_REGS)
		return errf(err, errlen, -EBADMSG, "%s: no %d register bytes", sec->name,
			    I8042_NR_REGS);
	r = p;
	st->status = r[0], st->control = r[1], st->outp = r[2];
	/* Only the two commands that wait for a data byte can be pending. */
	st->cmd = (r[3] == CMD_WRITE_CTR || r[3] == CMD_WRITE_OUTP) ? r[3] : 0;
	ret = snap_get_bytes(sec, I8042_TAG_BUF, &p, &len);
	if (ret == 0) {
		if (len > I8042_BUF)
			return errf(err, errlen, -EBADMSG,
				    "%s: output buffer of %zu bytes (at most %d)", sec->name, len,
				    I8042_BUF);
		memcpy(st->buf, p, len);
		st->len = (uint8_t)len;
	} else if (ret != -ENOENT) {
		return errf(err, errlen, -EBADMSG, "%s: malformed output buffer", sec->name);
	}
	/* The status bit follows the buffer, whatever the file says. */
	st->status =
	    (uint8_t)((st->status & ~SB_OUT_DATA_AVAIL) | (st->len ? SB_OUT_DATA_AVAIL : 0));
	return 0;
}

void i8042_restore(struct i8042 *k, const struct i8042_state *st)
{
	pthread_mutex_lock(&k->lock);
	k->s = *st;
	pthread_mutex_unlock(&k->lock);
}
