/* Snapshots, VMM side: taking KVM state out of a paused VM into the file format of
 * restore/, and putting it back into a new VM. The restore path is the hot path:
 * nothing is read that need not be, guest memory is mapped, never copied, and every
 * phase is timed (USDT probe + vm->restore_times). */
#include "vmm/vmm.h"
#include "restore/snapshot.h"
#include "vmm/virtio/virtio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sdt.h>
#include <sys/stat.h>
#include <unistd.h>

#define PHASE(vm, name)                                                                            \
	do {                                                                                       \
		DTRACE_PROBE(thaw, name);                                                          \
		(vm)->times.name##_ns = now_ns();                                                  \
	} while (0)

static int ioctl_err(const char *what, unsigned vcpu)
{
	int e = errno;

	if (vcpu == ~0u)
		log_err("%s: %s", what, strerror(e));
	else
		log_err("vcpu%u: %s: %s", vcpu, what, strerror(e));
	return -e;
}

/* ---------------------------------------------------------------- MSRs */

/* The MSRs we save: every one KVM lists, minus those this host cannot read back
 * (found once per VM by reading each on vCPU 0). */
static int msr_list(struct vm *vm)
{
	struct kvm_msr_list probe = {.nmsrs = 0}, *list;
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} one;
	unsigned n = 0;

	if (vm->msr_indices)
		return 0;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return ioctl_err("KVM_GET_MSR_INDEX_LIST", ~0u);
	list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
	vm->msr_indices = calloc(probe.nmsrs ? probe.nmsrs : 1, sizeof(uint32_t));
	if (!list || !vm->msr_indices) {
		free(list);
		return -ENOMEM;
	}
	list->nmsrs = probe.nmsrs;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		free(list);
		return ioctl_err("KVM_GET_MSR_INDEX_LIST", ~0u);
	}
	for (unsigned i = 0; i < list->nmsrs && n < SNAP_MAX_MSRS; i++) {
		memset(&one, 0, sizeof(one));
		one.hdr.nmsrs = 1;
		one.e.index = list->indices[i];
		if (ioctl(vm->vcpus[0].fd, KVM_GET_MSRS, &one) == 1)
			vm->msr_indices[n++] = list->indices[i];
	}
	vm->nr_msr_indices = n;
	free(list);
	return 0;
}

/* ---------------------------------------------------------------- save */

static int save_vcpu(struct vm *vm, struct vcpu *v, struct snap_vcpu_state *s)
{
	struct kvm_msrs *msrs;
	unsigned i = v->index;
	int ret;

	memset(s, 0, sizeof(*s));
	if (ioctl(v->fd, KVM_GET_MP_STATE, &s->mp_state) < 0)
		return ioctl_err("KVM_GET_MP_STATE", i);
	if (ioctl(v->fd, KVM_GET_REGS, &s->regs) < 0)
		return ioctl_err("KVM_GET_REGS", i);
	if (ioctl(v->fd, KVM_GET_SREGS, &s->sregs) < 0)
		return ioctl_err("KVM_GET_SREGS", i);
	if (ioctl(v->fd, KVM_GET_XSAVE, &s->xsave) < 0)
		return ioctl_err("KVM_GET_XSAVE", i);
	if (ioctl(v->fd, KVM_GET_XCRS, &s->xcrs) < 0)
		return ioctl_err("KVM_GET_XCRS", i);
	if (ioctl(v->fd, KVM_GET_DEBUGREGS, &s->debugregs) < 0)
		return ioctl_err("KVM_GET_DEBUGREGS", i);
	if (ioctl(v->fd, KVM_GET_LAPIC, &s->lapic) < 0)
		return ioctl_err("KVM_GET_LAPIC", i);

	msrs = calloc(1, sizeof(*msrs) + vm->nr_msr_indices * sizeof(msrs->entries[0]));
	if (!msrs)
		return -ENOMEM;
	msrs->nmsrs = vm->nr_msr_indices;
	for (unsigned k = 0; k < vm->nr_msr_indices; k++)
		msrs->entries[k].index = vm->msr_indices[k];
	ret = ioctl(v->fd, KVM_GET_MSRS, msrs);
	if (ret != (int)vm->nr_msr_indices) {
		log_err("vcpu%u: KVM_GET_MSRS read %d of %u MSRs", i, ret, vm->nr_msr_indices);
		free(msrs);
		return -EIO;
	}
	s->nmsrs = msrs->nmsrs;
	memcpy(s->msrs, msrs->entries, s->nmsrs * sizeof(s->msrs[0]));
	free(msrs);

	/* Events last: the others do not change pending exceptions or NMIs. */
	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &s->events) < 0)
		return ioctl_err("KVM_GET_VCPU_EVENTS", i);
	return 0;
}

static int save_vm_state(struct vm *vm, struct snap_vm_state *s)
{
	struct kvm_irqchip chip;

	memset(s, 0, sizeof(*s));
	for (unsigned id = 0; id < 3; id++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = id;
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
			return ioctl_err("KVM_GET_IRQCHIP", ~0u);
		if (id == KVM_IRQCHIP_IOAPIC)
			s->ioapic = chip.chip.ioapic;
		else
			s->pic[id] = chip.chip.pic;
	}
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &s->pit) < 0)
		return ioctl_err("KVM_GET_PIT2", ~0u);
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &s->clock) < 0)
		return ioctl_err("KVM_GET_CLOCK", ~0u);
	return 0;
}

/* The UART is the one legacy device with state worth keeping (its FIFO, IER, LCR). */
enum {
	UART_TAG_REGS = SNAP_DEV_OWN, /* bytes: ier iir fcr lcr mcr lsr msr scr dll dlm */
	UART_TAG_RX,		      /* bytes: pending receive FIFO contents, in order */
	UART_TAG_THR_IPENDING,	      /* u64 */
};

static int save_uart(struct snap_writer *w, struct uart *u)
{
	struct snap_device_place place = {COM1_BASE, 8, COM1_IRQ};
	struct snap_sec *sec;
	uint8_t regs[10], rx[UART_FIFO];
	int ret;

	ret = snap_device_begin(w, "com1", "serial", 1, 0, &place, &sec);
	if (ret)
		return ret;
	pthread_mutex_lock(&u->lock);
	regs[0] = u->s.ier, regs[1] = u->s.iir, regs[2] = u->s.fcr, regs[3] = u->s.lcr;
	regs[4] = u->s.mcr, regs[5] = u->s.lsr, regs[6] = u->s.msr, regs[7] = u->s.scr;
	regs[8] = u->s.dll, regs[9] = u->s.dlm;
	for (unsigned k = 0; k < u->s.rx_len; k++)
		rx[k] = u->s.rx[(u->s.rx_head + k) % UART_FIFO];
	snap_put_bytes(sec, UART_TAG_REGS, regs, sizeof(regs));
	snap_put_bytes(sec, UART_TAG_RX, rx, u->s.rx_len);
	snap_put_u64(sec, UART_TAG_THR_IPENDING, u->s.thr_ipending);
	pthread_mutex_unlock(&u->lock);
	return sec->err;
}

static int restore_uart(const struct snap *s, struct uart *u, char *err, size_t errlen)
{
	const struct snap_section *sec = snap_section_find(s, "device.com1");
	const void *p;
	size_t len;
	uint64_t v;

	if (!sec)
		return 0; /* older writers: a fresh UART */
	if (snap_get_bytes(sec, UART_TAG_REGS, &p, &len) == 0 && len == 10) {
		const uint8_t *r = p;

		u->s.ier = r[0] & 0x0f, u->s.iir = r[1], u->s.fcr = r[2], u->s.lcr = r[3];
		u->s.mcr = r[4] & 0x1f, u->s.lsr = r[5], u->s.msr = r[6], u->s.scr = r[7];
		u->s.dll = r[8], u->s.dlm = r[9];
	}
	if (snap_get_bytes(sec, UART_TAG_RX, &p, &len) == 0) {
		if (len > UART_FIFO) {
			snprintf(err, errlen, "device.com1: receive FIFO of %zu bytes (max %d)",
				 len, UART_FIFO);
			return -EBADMSG;
		}
		memcpy(u->s.rx, p, len);
		u->s.rx_head = 0;
		u->s.rx_len = (uint8_t)len;
	}
	if (snap_get_u64(sec, UART_TAG_THR_IPENDING, &v) == 0)
		u->s.thr_ipending = v != 0;
	return 0;
}

static void fill_machine(struct vm *vm, struct snap_machine *m)
{
	memset(m, 0, sizeof(*m));
	m->mem_size = vm->mem.size;
	m->nr_vcpus = vm->nr_vcpus;
	m->nr_regions = vm->mem.nr_regions;
	for (unsigned i = 0; i < vm->mem.nr_regions; i++) {
		m->regions[i].gpa = vm->mem.regions[i].gpa;
		m->regions[i].size = vm->mem.regions[i].size;
		m->regions[i].offset = vm->mem.regions[i].offset;
	}
	snprintf(m->cpu_template, sizeof(m->cpu_template), "%s", vm->tmpl ? vm->tmpl->name : "");
	snprintf(m->cmdline, sizeof(m->cmdline), "%s", vm->cmdline);
}

static int write_config(struct snap_writer *w, struct vm *vm)
{
	char json[BOOT_CMDLINE_MAX * 2 + 512], esc[BOOT_CMDLINE_MAX * 2];
	size_t k = 0;

	/* The command line is the only free text in it: escape it for JSON. */
	for (const char *c = vm->cmdline; *c && k + 7 < sizeof(esc); c++) {
		if (*c == '"' || *c == '\\')
			esc[k++] = '\\', esc[k++] = *c;
		else if ((unsigned char)*c < 0x20)
			k += (size_t)snprintf(esc + k, 7, "\\u%04x", *c);
		else
			esc[k++] = *c;
	}
	esc[k] = 0;
	snprintf(json, sizeof(json),
		 "{\"machine-config\":{\"vcpu_count\":%u,\"mem_size_mib\":%llu,"
		 "\"cpu_template\":\"%s\"},\"boot-source\":{\"boot_args\":\"%s\"}}",
		 vm->nr_vcpus, (unsigned long long)(vm->mem.size >> 20),
		 vm->tmpl ? vm->tmpl->name : "", esc);
	return snap_put_config(w, json, strlen(json));
}

int vm_snapshot_create(struct vm *vm, const struct vm_snapshot_opts *opts)
{
	struct snap_writer_opts wo = {.mem_file_path = opts->mem_file_path,
				      .no_fsync = opts->no_fsync};
	struct snap_vcpu_state *vs = NULL;
	struct snap_vm_state vms;
	struct snap_machine m;
	struct snap_writer *w = NULL;
	struct snap_write_stats st;
	struct kvm_cpuid2 *cpuid = NULL;
	uint64_t t0 = now_ns();
	bool was_paused = vm->paused;
	int ret;

	if (!was_paused)
		vm_pause(vm);
	if (vm->exiting) {
		ret = -ESHUTDOWN;
		log_err("snapshot: the VM is stopping");
		goto out;
	}
	ret = vm_devices_quiesce(vm);
	if (ret)
		goto out;
	ret = msr_list(vm);
	if (ret)
		goto out;
	ret = snap_writer_create(opts->path, &wo, &w);
	if (ret) {
		log_err("snapshot %s: %s", opts->path, strerror(-ret));
		goto out;
	}
	fill_machine(vm, &m);
	ret = snap_put_machine(w, &m);
	if (ret)
		goto out;

	cpuid = calloc(1, sizeof(*cpuid) + SNAP_MAX_CPUID * sizeof(cpuid->entries[0]));
	vs = malloc(sizeof(*vs));
	if (!cpuid || !vs) {
		ret = -ENOMEM;
		goto out;
	}
	cpuid->nent = SNAP_MAX_CPUID;
	if (ioctl(vm->vcpus[0].fd, KVM_GET_CPUID2, cpuid) < 0) {
		ret = ioctl_err("KVM_GET_CPUID2", 0);
		goto out;
	}
	ret = snap_put_cpuid(w, cpuid->entries, cpuid->nent);
	if (ret)
		goto out;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		ret = save_vcpu(vm, &vm->vcpus[i], vs);
		if (!ret)
			ret = snap_put_vcpu(w, i, vs);
		if (ret)
			goto out;
	}
	ret = save_vm_state(vm, &vms);
	if (!ret)
		ret = snap_put_vm(w, &vms);
	if (!ret)
		ret = save_uart(w, &vm->com1);
	if (!ret)
		ret = vm_devices_save(vm, w);
	if (!ret)
		ret = write_config(w, vm);
	if (!ret)
		ret = snap_writer_set_memory(w, vm->mem.host, vm->mem.size);
	if (ret)
		goto out;
	ret = snap_writer_commit(w, &st);
	w = NULL; /* commit frees the writer whatever the outcome */
	if (ret) {
		log_err("snapshot %s: %s", opts->path, strerror(-ret));
		goto out;
	}
	vm->last_create_us = (now_ns() - t0) / 1000;
	log_info("snapshot %s: %llu MiB, %llu pages written, %llu zero pages skipped, %llu us",
		 opts->path, (unsigned long long)(vm->mem.size >> 20),
		 (unsigned long long)st.data_pages, (unsigned long long)st.zero_pages,
		 (unsigned long long)vm->last_create_us);
out:
	snap_writer_abort(w);
	free(cpuid);
	free(vs);
	if (!was_paused && !opts->stay_paused)
		vm_resume(vm);
	else
		vm->paused = true;
	return ret;
}

/* ---------------------------------------------------------------- devices */

/* virtio devices live in sections `device.virtio<k>` (k: placement index), tagged in
 * the three layers of docs/snapshot-format.md: transport registers at 0x100, generic
 * virtio state at 0x200 (one u64 array per queue), the device's own at 0x1000. */
enum {
	VT_INDEX = 5,	  /* u64: placement index k */
	VT_DEVICE_ID = 6, /* u64: VIRTIO_ID_* */
	VT_NAME = 7,	  /* str: the device's id= */
	VT_STATUS = SNAP_DEV_TRANSPORT,
	VT_DEV_FEATURES_SEL,
	VT_DRV_FEATURES_SEL,
	VT_QUEUE_SEL,
	VT_INTERRUPT_STATUS,
	VT_CONFIG_GENERATION,
	VT_DEVICE_FEATURES = SNAP_DEV_VIRTIO,
	VT_DRIVER_FEATURES,
	VT_NR_QUEUES,
	VT_QUEUE0 = SNAP_DEV_VIRTIO + 0x10, /* u64a: size ready desc avail used next_avail
					       next_used signalled_used signalled_valid */
	VT_PATH = SNAP_DEV_OWN,		    /* str: blk backing file, vsock uds path */
	VT_READ_ONLY,			    /* u64 */
	VT_CAPACITY,			    /* u64: sectors */
	VT_TAP,				    /* str */
	VT_MAC,				    /* bytes[6] */
	VT_OFFLOAD,			    /* u64 */
	VT_GUEST_CID,			    /* u64 */
};

#define VIRTQ_FIELDS 9

static const char *virtio_kind(uint32_t device_id)
{
	switch (device_id) {
	case 1:
		return "virtio-net";
	case 2:
		return "virtio-blk";
	case 4:
		return "virtio-rng";
	case 19:
		return "virtio-vsock";
	default:
		return "virtio";
	}
}

int vm_devices_quiesce(struct vm *vm)
{
	return vm->devices ? virtio_quiesce(vm) : 0;
}

static int save_virtio(struct snap_writer *w, struct virtio_dev *dev)
{
	struct virtio_saved v;
	struct snap_device_place place;
	struct snap_sec *sec;
	char name[24];
	int ret;

	virtio_save(dev, &v);
	place = (struct snap_device_place){v.place.base, VIRTIO_MMIO_SIZE, v.place.irq};
	snprintf(name, sizeof(name), "virtio%u", v.place.index);
	ret = snap_device_begin(w, name, virtio_kind(v.place.device_id), 1, 0, &place, &sec);
	if (ret)
		return ret;
	snap_put_u64(sec, VT_INDEX, v.place.index);
	snap_put_u64(sec, VT_DEVICE_ID, v.place.device_id);
	snap_put_str(sec, VT_NAME, v.id);
	snap_put_u64(sec, VT_STATUS, v.regs.status);
	snap_put_u64(sec, VT_DEV_FEATURES_SEL, v.regs.dev_features_sel);
	snap_put_u64(sec, VT_DRV_FEATURES_SEL, v.regs.drv_features_sel);
	snap_put_u64(sec, VT_QUEUE_SEL, v.regs.queue_sel);
	snap_put_u64(sec, VT_INTERRUPT_STATUS, v.regs.interrupt_status);
	snap_put_u64(sec, VT_CONFIG_GENERATION, v.regs.config_generation);
	snap_put_u64(sec, VT_DEVICE_FEATURES, v.vs.device_features);
	snap_put_u64(sec, VT_DRIVER_FEATURES, v.vs.driver_features);
	snap_put_u64(sec, VT_NR_QUEUES, v.vs.nr_queues);
	for (unsigned q = 0; q < v.vs.nr_queues && q < VIRTIO_MAX_QUEUES; q++) {
		const struct virtq_state *vq = &v.vs.q[q];
		uint64_t a[VIRTQ_FIELDS] = {vq->size,	   vq->ready,	       vq->desc,
					    vq->avail,	   vq->used,	       vq->next_avail,
					    vq->next_used, vq->signalled_used, vq->signalled_valid};

		snap_put_u64a(sec, (uint16_t)(VT_QUEUE0 + q), a, VIRTQ_FIELDS);
	}
	switch (v.place.device_id) {
	case 2:
		snap_put_str(sec, VT_PATH, v.dev.blk.path);
		snap_put_u64(sec, VT_READ_ONLY, v.dev.blk.read_only);
		snap_put_u64(sec, VT_CAPACITY, v.dev.blk.capacity);
		break;
	case 1:
		snap_put_str(sec, VT_TAP, v.dev.net.tap);
		snap_put_bytes(sec, VT_MAC, v.dev.net.mac, 6);
		snap_put_u64(sec, VT_OFFLOAD, v.dev.net.offload_flags);
		break;
	case 19:
		snap_put_u64(sec, VT_GUEST_CID, v.dev.vsock.guest_cid);
		snap_put_str(sec, VT_PATH, v.dev.vsock.uds_path);
		break;
	default:
		break;
	}
	return sec->err;
}

int vm_devices_save(struct vm *vm, struct snap_writer *w)
{
	for (unsigned i = 0; i < virtio_count(vm); i++) {
		int ret = save_virtio(w, virtio_get(vm, i));

		if (ret)
			return ret;
	}
	return 0;
}

/* Reads one device section into `v`; the values are checked by virtio_restore. */
static int load_virtio(const struct snap_section *sec, struct virtio_saved *v, char *err,
		       size_t errlen)
{
	uint64_t x;
	const void *p;
	size_t len;

#define U64(tag, dst)                                                                              \
	do {                                                                                       \
		x = 0;                                                                             \
		snap_get_u64(sec, tag, &x);                                                        \
		dst = x;                                                                           \
	} while (0)
	memset(v, 0, sizeof(*v));
	v->version = VIRTIO_SAVED_VERSION;
	if (snap_get_u64(sec, VT_INDEX, &x) || x >= VIRTIO_MAX_DEVS ||
	    snap_get_u64(sec, VT_DEVICE_ID, &x))
		return errf(err, errlen, -EBADMSG, "%s: no device index or type", sec->name);
	U64(VT_INDEX, v->place.index);
	U64(VT_DEVICE_ID, v->place.device_id);
	v->place.base = VIRTIO_MMIO_BASE + v->place.index * VIRTIO_MMIO_SIZE;
	v->place.irq = VIRTIO_IRQ_BASE + v->place.index;
	if (snap_get_strbuf(sec, VT_NAME, v->id, sizeof(v->id)) == -ENAMETOOLONG)
		return errf(err, errlen, -EBADMSG, "%s: device name too long", sec->name);
	U64(VT_STATUS, v->regs.status);
	U64(VT_DEV_FEATURES_SEL, v->regs.dev_features_sel);
	U64(VT_DRV_FEATURES_SEL, v->regs.drv_features_sel);
	U64(VT_QUEUE_SEL, v->regs.queue_sel);
	U64(VT_INTERRUPT_STATUS, v->regs.interrupt_status);
	U64(VT_CONFIG_GENERATION, v->regs.config_generation);
	U64(VT_DEVICE_FEATURES, v->vs.device_features);
	U64(VT_DRIVER_FEATURES, v->vs.driver_features);
	U64(VT_NR_QUEUES, v->vs.nr_queues);
	if (v->vs.nr_queues > VIRTIO_MAX_QUEUES)
		return errf(err, errlen, -EBADMSG, "%s: %u queues (at most %d)", sec->name,
			    v->vs.nr_queues, VIRTIO_MAX_QUEUES);
	for (unsigned q = 0; q < v->vs.nr_queues; q++) {
		const uint64_t *a;
		size_t n;
		struct virtq_state *vq = &v->vs.q[q];

		if (snap_get_u64a(sec, (uint16_t)(VT_QUEUE0 + q), &a, &n) || n < VIRTQ_FIELDS)
			return errf(err, errlen, -EBADMSG, "%s: queue %u is missing", sec->name, q);
		if (a[0] > UINT16_MAX || a[5] > UINT16_MAX || a[6] > UINT16_MAX ||
		    a[7] > UINT16_MAX)
			return errf(err, errlen, -EBADMSG, "%s: queue %u has out-of-range indices",
				    sec->name, q);
		*vq = (struct virtq_state){(uint16_t)a[0], a[1] != 0,	   a[2],
					   a[3],	   a[4],	   (uint16_t)a[5],
					   (uint16_t)a[6], (uint16_t)a[7], a[8] != 0};
	}
	switch (v->place.device_id) {
	case 2:
		if (snap_get_strbuf(sec, VT_PATH, v->dev.blk.path, sizeof(v->dev.blk.path)))
			return errf(err, errlen, -EBADMSG, "%s: no drive path", sec->name);
		U64(VT_READ_ONLY, v->dev.blk.read_only);
		U64(VT_CAPACITY, v->dev.blk.capacity);
		break;
	case 1:
		if (snap_get_strbuf(sec, VT_TAP, v->dev.net.tap, sizeof(v->dev.net.tap)) ||
		    snap_get_bytes(sec, VT_MAC, &p, &len) || len != 6)
			return errf(err, errlen, -EBADMSG, "%s: no tap name or MAC", sec->name);
		memcpy(v->dev.net.mac, p, 6);
		U64(VT_OFFLOAD, v->dev.net.offload_flags);
		break;
	case 19:
		U64(VT_GUEST_CID, v->dev.vsock.guest_cid);
		if (snap_get_strbuf(sec, VT_PATH, v->dev.vsock.uds_path,
				    sizeof(v->dev.vsock.uds_path)))
			return errf(err, errlen, -EBADMSG, "%s: no vsock socket path", sec->name);
		break;
	case 4:
		break;
	default:
		return errf(err, errlen, -ENOTSUP, "%s: unknown virtio device type %u", sec->name,
			    v->place.device_id);
	}
#undef U64
	return 0;
}

static const char *override_for(const struct vm_override *o, unsigned n, const char *id, bool *used)
{
	for (unsigned i = 0; i < n; i++) {
		if (strcmp(o[i].id, id) == 0) {
			used[i] = true;
			return o[i].value;
		}
	}
	return NULL;
}

static int rebuild_devices(struct vm *vm, const struct snap *s, const struct vm_restore_opts *opts,
			   struct virtio_saved *saved, char (*specs)[2 * VIRTIO_PATH_MAX + 128],
			   char *err, size_t errlen);

/* Rebuilds the devices the snapshot names, at their saved places, with the backends
 * the caller overrides, then loads each one's state. Every device section must be a
 * device we know, and every override must name a device the snapshot has. */
int vm_devices_restore(struct vm *vm, const struct snap *s, const struct vm_restore_opts *opts,
		       char *err, size_t errlen)
{
	struct rebuild {
		struct virtio_saved saved[VIRTIO_MAX_DEVS];
		char specs[VIRTIO_MAX_DEVS][2 * VIRTIO_PATH_MAX + 128];
	} *rb = NULL;
	int ret;

	rb = calloc(1, sizeof(*rb));
	if (!rb)
		return errf(err, errlen, -ENOMEM, "out of memory");
	ret = rebuild_devices(vm, s, opts, rb->saved, rb->specs, err, errlen);
	free(rb);
	return ret;
}

static int rebuild_devices(struct vm *vm, const struct snap *s, const struct vm_restore_opts *opts,
			   struct virtio_saved *saved, char (*specs)[2 * VIRTIO_PATH_MAX + 128],
			   char *err, size_t errlen)
{
	bool have[VIRTIO_MAX_DEVS] = {false}, used_net[VMM_MAX_NETS] = {false},
	     used_drive[VMM_MAX_DRIVES] = {false};
	struct vm_config cfg = {0};
	unsigned n = 0;
	int ret;

	for (size_t i = 0; i < snap_section_count(s); i++) {
		const struct snap_section *sec = snap_section_at(s, i);
		struct virtio_saved v;

		if (strncmp(sec->name, "device.", 7) != 0 || strcmp(sec->name, "device.com1") == 0)
			continue;
		if (strncmp(sec->name, "device.virtio", 13) != 0)
			return errf(err, errlen, -ENOTSUP,
				    "section '%s': this thaw cannot restore that device",
				    sec->name);
		ret = load_virtio(sec, &v, err, errlen);
		if (ret)
			return ret;
		if (have[v.place.index])
			return errf(err, errlen, -EBADMSG, "%s: placement %u used twice", sec->name,
				    v.place.index);
		have[v.place.index] = true;
		saved[v.place.index] = v;
		n++;
	}
	/* Devices are placed by category order (drives, nets, vsock, rng): the saved
	 * indices must be 0..n-1 in that order for the rebuilt ones to match. */
	for (unsigned k = 0; k < n; k++) {
		struct virtio_saved *v = &saved[k];
		const char *o;
		char *spec = specs[k];

		if (!have[k])
			return errf(err, errlen, -EBADMSG, "device placement %u is missing", k);
		switch (v->place.device_id) {
		case 2:
			o = override_for(opts->drive_path, opts->nr_drive_path, v->id, used_drive);
			snprintf(spec, sizeof(specs[0]), "id=%s,path=%s,ro=%s", v->id,
				 o ? o : v->dev.blk.path, v->dev.blk.read_only ? "on" : "off");
			if (cfg.nr_drives != k || cfg.nr_drives == VMM_MAX_DRIVES)
				goto order;
			cfg.drives[cfg.nr_drives++] = spec;
			break;
		case 1:
			o = override_for(opts->net_tap, opts->nr_net_tap, v->id, used_net);
			snprintf(spec, sizeof(specs[0]),
				 "id=%s,tap=%s,mac=%02x:%02x:%02x:%02x:%02x:%02x", v->id,
				 o ? o : v->dev.net.tap, v->dev.net.mac[0], v->dev.net.mac[1],
				 v->dev.net.mac[2], v->dev.net.mac[3], v->dev.net.mac[4],
				 v->dev.net.mac[5]);
			if (cfg.nr_drives + cfg.nr_nets != k || cfg.nr_nets == VMM_MAX_NETS)
				goto order;
			cfg.nets[cfg.nr_nets++] = spec;
			break;
		case 19:
			snprintf(spec, sizeof(specs[0]), "cid=%llu,uds=%s",
				 (unsigned long long)v->dev.vsock.guest_cid,
				 opts->vsock_uds ? opts->vsock_uds : v->dev.vsock.uds_path);
			if (cfg.vsock || cfg.rng)
				goto order;
			cfg.vsock = spec;
			break;
		default:
			if (cfg.rng)
				goto order;
			cfg.rng = true;
			break;
		}
	}
	for (unsigned i = 0; i < opts->nr_net_tap; i++)
		if (!used_net[i])
			return errf(err, errlen, -ENOENT,
				    "network override: the snapshot has no interface '%s'",
				    opts->net_tap[i].id);
	for (unsigned i = 0; i < opts->nr_drive_path; i++)
		if (!used_drive[i])
			return errf(err, errlen, -ENOENT,
				    "drive override: the snapshot has no drive '%s'",
				    opts->drive_path[i].id);
	if (opts->vsock_uds && !cfg.vsock)
		return errf(err, errlen, -ENOENT,
			    "vsock override: the snapshot has no vsock device");
	if (n == 0)
		return 0;
	ret = vmm_devices_attach(vm, &cfg, NULL, 0);
	if (ret)
		return errf(err, errlen, ret,
			    "the snapshot's devices could not be rebuilt (%s; see the log)",
			    strerror(-ret));
	for (unsigned k = 0; k < n; k++) {
		ret = virtio_restore(virtio_get(vm, k), &saved[k]);
		if (ret)
			return errf(err, errlen, ret,
				    "device.virtio%u (%s): its saved state is invalid (see "
				    "the log)",
				    k, saved[k].id);
	}
	return 0;
order:
	return errf(err, errlen, -EBADMSG,
		    "device placement %u does not follow thaw's device order", n);
}

/* ---------------------------------------------------------------- restore */

/* The saved layout must be one we would have made for that size: anything else is a
 * corrupt or foreign file, and its regions would steer KVM slots. */
static int check_layout(const struct snap_machine *m, struct vmm_mem *mem, char *err, size_t errlen)
{
	memset(mem, 0, sizeof(*mem));
	if (m->mem_size == 0 || m->mem_size % 4096 || m->mem_size > (1ull << 40))
		return errf(err, errlen, -EBADMSG, "machine: memory size %llu is invalid",
			    (unsigned long long)m->mem_size);
	vmm_mem_layout(mem, m->mem_size);
	if (m->nr_regions != mem->nr_regions)
		return errf(err, errlen, -EBADMSG,
			    "machine: %u memory regions, expected %u for %llu MiB", m->nr_regions,
			    mem->nr_regions, (unsigned long long)(m->mem_size >> 20));
	for (unsigned i = 0; i < m->nr_regions; i++) {
		if (m->regions[i].gpa != mem->regions[i].gpa ||
		    m->regions[i].size != mem->regions[i].size ||
		    m->regions[i].offset != mem->regions[i].offset)
			return errf(err, errlen, -EBADMSG,
				    "machine: memory region %u does not match the layout "
				    "for %llu MiB",
				    i, (unsigned long long)(m->mem_size >> 20));
	}
	if (m->nr_vcpus == 0 || m->nr_vcpus > VMM_MAX_VCPUS)
		return errf(err, errlen, -EBADMSG, "machine: %u vCPUs (1..%d)", m->nr_vcpus,
			    VMM_MAX_VCPUS);
	return 0;
}

static int set_vcpu(struct vcpu *v, struct snap_vcpu_state *s)
{
	struct kvm_msrs *msrs;
	unsigned i = v->index;
	int ret;

	if (ioctl(v->fd, KVM_SET_MP_STATE, &s->mp_state) < 0)
		return ioctl_err("KVM_SET_MP_STATE", i);
	if (ioctl(v->fd, KVM_SET_SREGS, &s->sregs) < 0)
		return ioctl_err("KVM_SET_SREGS", i);
	if (ioctl(v->fd, KVM_SET_REGS, &s->regs) < 0)
		return ioctl_err("KVM_SET_REGS", i);
	if (ioctl(v->fd, KVM_SET_XSAVE, &s->xsave) < 0)
		return ioctl_err("KVM_SET_XSAVE", i);
	if (ioctl(v->fd, KVM_SET_XCRS, &s->xcrs) < 0)
		return ioctl_err("KVM_SET_XCRS", i);
	if (ioctl(v->fd, KVM_SET_DEBUGREGS, &s->debugregs) < 0)
		return ioctl_err("KVM_SET_DEBUGREGS", i);
	if (ioctl(v->fd, KVM_SET_LAPIC, &s->lapic) < 0)
		return ioctl_err("KVM_SET_LAPIC", i);
	/* The MSR array in the state has the kvm_msrs layout minus its header: build
	 * the header in front on the stack-free path once. */
	msrs = malloc(sizeof(*msrs) + s->nmsrs * sizeof(msrs->entries[0]));
	if (!msrs)
		return -ENOMEM;
	msrs->nmsrs = s->nmsrs;
	msrs->pad = 0;
	memcpy(msrs->entries, s->msrs, s->nmsrs * sizeof(s->msrs[0]));
	ret = ioctl(v->fd, KVM_SET_MSRS, msrs);
	free(msrs);
	if (ret != (int)s->nmsrs) {
		log_err("vcpu%u: KVM_SET_MSRS set %d of %u MSRs", i, ret, s->nmsrs);
		return ret < 0 ? -errno : -EINVAL;
	}
	if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &s->events) < 0)
		return ioctl_err("KVM_SET_VCPU_EVENTS", i);
	return 0;
}

static int set_vm_state(struct vm *vm, struct snap_vm_state *s, bool clock_realtime)
{
	struct kvm_irqchip chip;

	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &s->pit) < 0)
		return ioctl_err("KVM_SET_PIT2", ~0u);
	/* KVM_CLOCK_REALTIME asks KVM to advance the clock by the real time elapsed
	 * since the snapshot; without it the guest resumes where it stopped. */
	s->clock.flags &= clock_realtime ? KVM_CLOCK_REALTIME : 0;
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &s->clock) < 0)
		return ioctl_err("KVM_SET_CLOCK", ~0u);
	for (unsigned id = 0; id < 3; id++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = id;
		if (id == KVM_IRQCHIP_IOAPIC)
			chip.chip.ioapic = s->ioapic;
		else
			chip.chip.pic = s->pic[id];
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chip) < 0)
			return ioctl_err("KVM_SET_IRQCHIP", ~0u);
	}
	return 0;
}

/* Checks the snapshot's CPU vendor and features against what this host can give the
 * guest. A prepared VM fetched KVM's offer ahead. A new VM on hardware KVM fetches it
 * now (KVM_GET_SUPPORTED_CPUID, cheap there). On PVM that ioctl costs 0.9 ms, a third
 * of a restore, and understates the truth anyway: PVM runs guest user mode natively on
 * the host CPU (vmm_cpuid_add_host_features), so there the guest's own leaves are
 * checked against the host CPU's, read with ~10 cpuid instructions. */
static int check_host(struct vm *vm, const struct snap *s, const struct kvm_cpuid_entry2 *guest,
		      size_t nguest, char *err, size_t errlen)
{
	struct kvm_cpuid_entry2 *own;
	int ret;

	/* NULL host facts: only the vendor is read (one cpuid); the full facts would
	 * cost ~175 us here, every CPUID traps on PVM. */
	if (vm->supported_cpuid || !vmm_host_is_pvm()) {
		const struct kvm_cpuid2 *have;

		ret = vm_get_supported_cpuid(vm);
		if (ret)
			return errf(err, errlen, ret, "KVM_GET_SUPPORTED_CPUID failed (%s)",
				    strerror(-ret));
		have = vm->usable_cpuid ? vm->usable_cpuid : vm->supported_cpuid;
		return snap_host_check(snap_host_facts(s), guest, nguest, NULL, have->entries,
				       have->nent, err, errlen);
	}
	own = calloc(nguest ? nguest : 1, sizeof(*own));
	if (!own)
		return errf(err, errlen, -ENOMEM, "out of memory");
	vmm_cpuid_host_view(guest, (unsigned)nguest, own);
	ret = snap_host_check(snap_host_facts(s), guest, nguest, NULL, own, nguest, err, errlen);
	free(own);
	return ret;
}

/* Maps guest memory from the snapshot: MAP_PRIVATE, so every clone shares the page
 * cache and its writes stay its own; the file is never written. */
static int map_memory(struct vm *vm, const struct snap *s, const char *mem_file, bool fixed,
		      char *err, size_t errlen)
{
	struct snap_memory_loc loc;
	void *p;
	int fd, ret;

	ret = snap_memory(s, &loc);
	if (ret)
		return errf(err, errlen, ret, "memory section: %s", strerror(-ret));
	if (loc.size != vm->mem.size)
		return errf(err, errlen, -EBADMSG,
			    "memory section has %llu bytes, the machine %llu",
			    (unsigned long long)loc.size, (unsigned long long)vm->mem.size);
	if (mem_file) {
		struct stat st;

		fd = open(mem_file, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0)
			return errf(err, errlen, -errno, "memory file %s: %s", mem_file,
				    strerror(errno));
		if ((uint64_t)st.st_size < loc.size) {
			close(fd);
			return errf(err, errlen, -EINVAL,
				    "memory file %s has %lld bytes, the snapshot needs %llu",
				    mem_file, (long long)st.st_size, (unsigned long long)loc.size);
		}
		loc.offset = 0;
	} else {
		ret = snap_memory_open(s, &fd, err, errlen);
		if (ret)
			return ret;
	}
	p = mmap(fixed ? vm->mem.host : NULL, loc.size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_NORESERVE | (fixed ? MAP_FIXED : 0), fd, (off_t)loc.offset);
	ret = p == MAP_FAILED ? -errno : 0;
	close(fd);
	if (ret)
		return errf(err, errlen, ret, "mmap of guest memory: %s", strerror(-ret));
	vm->mem.host = p;
	vm->mem.owned = true;
	return 0;
}

int vm_restore(struct vm *vm, const struct vm_restore_opts *opts, char *err, size_t errlen)
{
	struct snap *s = NULL;
	struct snap_machine m;
	struct snap_vm_state vms;
	struct snap_vcpu_state *vs = NULL;
	struct kvm_cpuid2 *cpuid = NULL, *c = NULL;
	struct vmm_mem layout;
	size_t ncpuid;
	uint64_t t0 = now_ns(), t_opened;
	bool fits;
	int ret;

	DTRACE_PROBE(thaw, restore_start);
	ret = snap_open(opts->path, &s, err, errlen);
	if (ret)
		goto out;
	DTRACE_PROBE(thaw, opened);
	t_opened = now_ns();
	ret = snap_get_machine(s, &m, err, errlen);
	if (ret)
		goto out;
	if (m.nr_vcpus == 0 || m.nr_vcpus > VMM_MAX_VCPUS) {
		ret = errf(err, errlen, -EBADMSG, "machine: %u vCPUs (1..%d)", m.nr_vcpus,
			   VMM_MAX_VCPUS);
		goto out;
	}
	fits = vm->prepared && vm->nr_vcpus == m.nr_vcpus && vm->mem.size == m.mem_size;
	if (vm->prepared && !fits) {
		log_info("snapshot shape (%u vCPUs, %llu MiB) differs from the prepared VM (%u, "
			 "%llu MiB): restoring into a new VM",
			 m.nr_vcpus, (unsigned long long)(m.mem_size >> 20), vm->nr_vcpus,
			 (unsigned long long)(vm->mem.size >> 20));
		vm_discard(vm);
	}
	if (!fits) {
		ret = vm_create(vm, m.nr_vcpus);
		if (ret) {
			snprintf(err, errlen, "creating the VM failed (%s)", strerror(-ret));
			goto out;
		}
	}
	vm->times.restore_start_ns = t0;
	vm->times.opened_ns = t_opened;
	ret = check_layout(&m, &layout, err, errlen);
	if (ret)
		goto out;
	if (strnlen(m.cmdline, sizeof(m.cmdline)) >= sizeof(vm->cmdline)) {
		ret = errf(err, errlen, -EBADMSG, "machine: command line longer than %zu",
			   sizeof(vm->cmdline) - 1);
		goto out;
	}
	memcpy(vm->cmdline, m.cmdline, strlen(m.cmdline) + 1);
	vm->tmpl = vmm_cpu_template_find(m.cpu_template);

	if (fits) {
		/* The prepared slot already points at vm->mem.host: mapping the file over
		 * the whole range replaces every page KVM may have cached (its MMU
		 * notifier sees the unmap), so no slot update is needed. */
		ret = opts->backend == VM_MEM_FILE
			  ? map_memory(vm, s, opts->mem_file, true, err, errlen)
			  : vm_uffd_restore(vm, s, opts, err, errlen);
		if (ret)
			goto out;
	} else {
		vm->mem = layout;
		/* Memory first: registering the slot before the irqchip exists avoids an
		 * SRCU grace period wait (see vm_register_memory). */
		ret = opts->backend == VM_MEM_FILE
			  ? map_memory(vm, s, opts->mem_file, false, err, errlen)
			  : vm_uffd_restore(vm, s, opts, err, errlen);
		if (ret)
			goto out;
		ret = vm_register_memory(vm);
		if (!ret)
			ret = vm_create_irqchip(vm);
		if (ret) {
			snprintf(err, errlen, "KVM setup failed (%s)", strerror(-ret));
			goto out;
		}
	}
	PHASE(vm, vm_created);

	cpuid = calloc(1, sizeof(*cpuid) + SNAP_MAX_CPUID * sizeof(cpuid->entries[0]));
	c = calloc(1, sizeof(*c) + SNAP_MAX_CPUID * sizeof(c->entries[0]));
	vs = malloc(sizeof(*vs));
	if (!cpuid || !c || !vs) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	ret = snap_get_cpuid(s, cpuid->entries, SNAP_MAX_CPUID, &ncpuid, err, errlen);
	if (ret)
		goto out;
	cpuid->nent = (uint32_t)ncpuid;
	ret = fits ? 0 : vm_create_vcpu_fds(vm);
	if (ret) {
		snprintf(err, errlen, "creating vCPUs failed (%s)", strerror(-ret));
		goto out;
	}
	ret = check_host(vm, s, cpuid->entries, ncpuid, err, errlen);
	if (ret)
		goto out;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		/* vCPU 0's CPUID, with each vCPU's own APIC id put back. */
		memcpy(c, cpuid, sizeof(*c) + ncpuid * sizeof(c->entries[0]));
		c->nent = vmm_cpuid_apply(c->entries, c->nent, vmm_cpu_template_find("host"), i,
					  vm->nr_vcpus);
		if (ioctl(vm->vcpus[i].fd, KVM_SET_CPUID2, c) < 0) {
			ret = ioctl_err("KVM_SET_CPUID2", i);
			snprintf(err, errlen, "vcpu%u: KVM_SET_CPUID2 refused the saved CPUID (%s)",
				 i, strerror(-ret));
			goto out;
		}
	}
	PHASE(vm, vcpus_created);

	/* The memory backend must serve faults before this point: writing the kvmclock
	 * MSRs touches guest memory. With MAP_PRIVATE the kernel serves them. */
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		ret = snap_get_vcpu(s, i, vs, err, errlen);
		if (ret)
			goto out;
		ret = set_vcpu(&vm->vcpus[i], vs);
		if (ret) {
			snprintf(err, errlen, "vcpu%u: KVM refused the saved state (%s)", i,
				 strerror(-ret));
			goto out;
		}
	}
	ret = snap_get_vm(s, &vms, err, errlen);
	if (ret)
		goto out;
	ret = set_vm_state(vm, &vms, opts->clock_realtime);
	if (ret) {
		snprintf(err, errlen, "KVM refused the saved irqchip, PIT or clock (%s)",
			 strerror(-ret));
		goto out;
	}
	PHASE(vm, state_set);

	ret = vm_setup_legacy_devices(vm);
	if (!ret)
		ret = restore_uart(s, &vm->com1, err, errlen);
	if (!ret)
		ret = vm_devices_restore(vm, s, opts, err, errlen);
	if (ret)
		goto out;
	PHASE(vm, devices_restored);
	/* Tell the guest's kvmclock it was stopped, so its watchdogs do not fire. */
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		ioctl(vm->vcpus[i].fd, KVM_KVMCLOCK_CTRL, 0);
	vm->prepared = false;
	ret = 0;
out:
	free(vs);
	free(cpuid);
	free(c);
	snap_close(s);
	return ret;
}
