/* Device placement and the per-VM device list: each virtio device gets a fixed 4 KiB
 * MMIO window and IRQ from its position on the command line (drives, nets, vsock,
 * rng) and, when the guest has no ACPI (--no-acpi), is announced on the kernel
 * command line the way Linux's virtio_mmio.device= parameter expects; with ACPI the
 * DSDT declares it (vmm/acpi/dsdt.c). */
#include "vmm/virtio/virtio_int.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_ids.h>

static int append(char *cmdline, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int append(char *cmdline, size_t cap, const char *fmt, ...)
{
	size_t used = strlen(cmdline);
	va_list ap;
	int n;

	if (used && used + 1 < cap)
		cmdline[used++] = ' ', cmdline[used] = 0;
	va_start(ap, fmt);
	n = vsnprintf(cmdline + used, cap - used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap - used) {
		log_err("kernel command line too long for the virtio device announcements");
		return -E2BIG;
	}
	return 0;
}

static void destroy_dev(struct virtio_dev *d)
{
	pthread_mutex_lock(&d->lock);
	if (d->ops->reset)
		d->ops->reset(d);
	pthread_mutex_unlock(&d->lock);
	virtio_dev_unbind(d);
	if (d->ops->destroy)
		d->ops->destroy(d);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

/* The place of device `k` in order, or the one the configuration gives (a restore's
 * saved place), checked: inside the virtio window, on its own 4 KiB and IRQ. */
static int place_for(const struct vmm_dev_place *given, unsigned k, struct vmm_dev_place *out,
		     const bool *irq_used)
{
	*out = given && given->set ? *given
				   : (struct vmm_dev_place){
					 .set = true,
					 .index = k,
					 .base = VIRTIO_MMIO_BASE + k * VIRTIO_MMIO_SIZE,
					 .irq = VIRTIO_IRQ_BASE + k,
				     };
	if (out->index >= VIRTIO_MAX_DEVS || out->base < VIRTIO_MMIO_BASE ||
	    out->base >= VIRTIO_MMIO_BASE + VIRTIO_MAX_DEVS * VIRTIO_MMIO_SIZE ||
	    out->base % VIRTIO_MMIO_SIZE || out->irq < VIRTIO_IRQ_BASE ||
	    out->irq >= VIRTIO_IRQ_BASE + VIRTIO_MAX_DEVS) {
		log_err("virtio device %u: place %#llx IRQ %u is outside thaw's virtio window "
			"(%u devices of 4 KiB from %#llx, IRQs %u..%u)",
			out->index, (unsigned long long)out->base, out->irq, VIRTIO_MAX_DEVS,
			VIRTIO_MMIO_BASE, VIRTIO_IRQ_BASE, VIRTIO_IRQ_BASE + VIRTIO_MAX_DEVS - 1);
		return -EINVAL;
	}
	if (irq_used[out->irq - VIRTIO_IRQ_BASE]) {
		log_err("virtio device %u: IRQ %u is taken by another device", out->index,
			out->irq);
		return -EINVAL;
	}
	return 0;
}

/* A socket is bound by name: beneath --snapshot-paths its path is checked and made
 * absolute first (vmm_path_beneath). */
static int vsock_create(struct vm *vm, const struct vm_config *cfg,
			const struct vmm_dev_place *place, struct virtio_dev **out)
{
	struct vmm_vsock_cfg c = cfg->vsock;
	int ret;

	if (!c.beneath)
		return virtio_vsock_create(vm, &c, place, out);
	ret = vmm_path_beneath(cfg->paths_dirfd, cfg->paths_dir, cfg->vsock.uds, c.uds,
			       sizeof(c.uds));
	if (ret) {
		log_err("vsock: uds %s inside --snapshot-paths %s: %s", cfg->vsock.uds,
			cfg->paths_dir, ret == -EXDEV ? "it lies outside" : strerror(-ret));
		return ret;
	}
	return virtio_vsock_create(vm, &c, place, out);
}

int vmm_devices_attach(struct vm *vm, const struct vm_config *cfg, char *cmdline, size_t cap)
{
	unsigned nd = cfg->nr_drives, nn = cfg->nr_nets, nv = cfg->vsock.guest_cid ? 1 : 0;
	unsigned wanted = nd + nn + nv + (cfg->rng ? 1 : 0);
	bool irq_used[VIRTIO_MAX_DEVS] = {false}, root_done = false;
	struct vmm_devices *devs;
	int ret = 0;

	if (wanted == 0)
		return 0;
	if (wanted > VIRTIO_MAX_DEVS || nd > VMM_MAX_DRIVES || nn > VMM_MAX_NETS) {
		log_err("%u virtio devices asked for, at most %d (%d drives, %d nets)", wanted,
			VIRTIO_MAX_DEVS, VMM_MAX_DRIVES, VMM_MAX_NETS);
		return -EINVAL;
	}
	devs = calloc(1, sizeof(*devs));
	if (!devs)
		return -ENOMEM;
	vm->devices = devs;
	for (unsigned k = 0; k < wanted; k++) {
		const struct vmm_drive_cfg *drive = k < nd ? &cfg->drives[k] : NULL;
		const struct vmm_net_cfg *net = k >= nd && k < nd + nn ? &cfg->nets[k - nd] : NULL;
		bool vsock = nv && k == nd + nn;
		const struct vmm_dev_place *given = drive   ? &drive->place
						    : net   ? &net->place
						    : vsock ? &cfg->vsock.place
							    : &cfg->rng_place;
		struct vmm_dev_place place;
		struct virtio_dev *d = NULL;

		ret = place_for(given, k, &place, irq_used);
		if (ret)
			goto fail;
		if (drive)
			ret = virtio_blk_create(vm, drive, &place,
						drive->beneath ? cfg->paths_dirfd : -1,
						cfg->paths_dir, &d);
		else if (net)
			ret = virtio_net_create(vm, net, &place, &d);
		else if (vsock)
			ret = vsock_create(vm, cfg, &place, &d);
		else
			ret = virtio_rng_create(vm, &cfg->rng_rl, &place, &d);
		if (!ret)
			ret = virtio_dev_bind(d);
		if (ret) {
			if (d)
				destroy_dev(d);
			goto fail;
		}
		irq_used[place.irq - VIRTIO_IRQ_BASE] = true;
		devs->dev[devs->nr++] = d;
		if (!cmdline)
			continue;
		if (drive && drive->root && !root_done) {
			root_done = true;
			ret = append(cmdline, cap, "root=/dev/vd%c %s", 'a' + k,
				     drive->read_only ? "ro" : "rw");
		}
		/* With ACPI the DSDT announces the device; twice would probe it twice. */
		if (!ret && cfg->no_acpi)
			ret = append(cmdline, cap, "virtio_mmio.device=4K@%#llx:%u",
				     (unsigned long long)d->place.base, d->place.irq);
		if (ret)
			goto fail;
	}
	return 0;
fail:
	virtio_detach_all(vm);
	return ret;
}

void virtio_detach_all(struct vm *vm)
{
	struct vmm_devices *devs = vm->devices;

	if (!devs)
		return;
	for (unsigned i = devs->nr; i > 0; i--) {
		destroy_dev(devs->dev[i - 1]);
	}
	free(devs);
	vm->devices = NULL;
}

const struct virtio_dev_ops *virtio_kind_ops(uint32_t device_id)
{
	static const struct virtio_dev_ops *const kinds[] = {&virtio_blk_ops, &virtio_net_ops,
							     &virtio_vsock_ops, &virtio_rng_ops};

	for (unsigned i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (kinds[i]->device_id == device_id)
			return kinds[i];
	return NULL;
}

unsigned virtio_count(struct vm *vm)
{
	return vm->devices ? vm->devices->nr : 0;
}

struct virtio_dev *virtio_get(struct vm *vm, unsigned i)
{
	return i < virtio_count(vm) ? vm->devices->dev[i] : NULL;
}

struct virtio_dev *virtio_find(struct vm *vm, uint32_t device_id, const char *name)
{
	for (unsigned i = 0; i < virtio_count(vm); i++) {
		struct virtio_dev *d = vm->devices->dev[i];

		if (d->place.device_id == device_id && strcmp(d->id, name) == 0)
			return d;
	}
	return NULL;
}

/* Firecracker's "mmds" group: the endpoints of the interfaces that answer MMDS, summed. */
static void mmds_metrics(struct vm *vm, json_object *root)
{
	uint64_t sum[MMDS_NET_COUNTERS] = {0};
	json_object *g;
	bool any = false;

	for (unsigned i = 0; i < virtio_count(vm); i++) {
		struct virtio_dev *d = vm->devices->dev[i];
		struct mmds_net *m;

		pthread_mutex_lock(&d->lock);
		m = virtio_net_mmds(d);
		if (m) {
			mmds_net_take_counts(m, sum);
			any = true;
		}
		pthread_mutex_unlock(&d->lock);
	}
	if (!any)
		return;
	g = json_object_new_object();
	for (unsigned k = 0; k < MMDS_NET_COUNTERS; k++)
		json_object_object_add(g, mmds_net_counter_names[k],
				       json_object_new_int64((int64_t)sum[k]));
	json_object_object_add(root, "mmds", g);
}

void virtio_metrics(struct vm *vm, json_object *root)
{
	static const char *const groups[] = {"block", "net", "entropy", "vsock"};

	for (unsigned g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		json_object *sum = NULL;

		for (unsigned i = 0; i < virtio_count(vm); i++) {
			struct virtio_dev *d = vm->devices->dev[i];
			const char *const *names = d->ops->counter_names;
			json_object *own;
			char key[64];

			if (!d->ops->metrics_group || strcmp(d->ops->metrics_group, groups[g]))
				continue;
			if (!sum)
				sum = json_object_new_object();
			own = json_object_new_object();
			pthread_mutex_lock(&d->lock);
			for (unsigned k = 0; names[k] && k < VIRTIO_COUNTERS; k++) {
				uint64_t delta = d->cnt[k] - d->cnt_reported[k];
				json_object *prev = json_object_object_get(sum, names[k]);

				d->cnt_reported[k] = d->cnt[k];
				json_object_object_add(own, names[k],
						       json_object_new_int64((int64_t)delta));
				json_object_object_add(
				    sum, names[k],
				    json_object_new_int64(json_object_get_int64(prev) +
							  (int64_t)delta));
			}
			pthread_mutex_unlock(&d->lock);
			/* The one vsock device (id "vsock") is its group: no "vsock_vsock". */
			if (strcmp(d->id, groups[g]) == 0) {
				json_object_put(own);
				continue;
			}
			snprintf(key, sizeof(key), "%s_%s", groups[g], d->id);
			json_object_object_add(root, key, own);
		}
		if (sum)
			json_object_object_add(root, groups[g], sum);
	}
	mmds_metrics(vm, root);
}

int virtio_quiesce(struct vm *vm)
{
	int ret = 0;

	for (unsigned i = 0; i < virtio_count(vm); i++) {
		struct virtio_dev *d = vm->devices->dev[i];
		int r;

		if (!d->ops->quiesce)
			continue;
		pthread_mutex_lock(&d->lock);
		r = d->ops->quiesce(d);
		pthread_mutex_unlock(&d->lock);
		if (r && !ret)
			ret = r;
	}
	return ret;
}

/* ---------------------------------------------------------------- restore */

static int drive_backend(const struct virtio_saved *v, const struct vm_restore_opts *o, bool *used,
			 struct vmm_drive_cfg *c, char *err, size_t errlen)
{
	*c = (struct vmm_drive_cfg){.read_only = v->dev.blk.read_only, .rl = v->dev.blk.rl};
	snprintf(c->revert_to, sizeof(c->revert_to), "%s", v->dev.blk.internal_snapshot);
	snprintf(c->id, sizeof(c->id), "%s", v->id);
	for (unsigned i = 0; i < o->nr_drives; i++) {
		if (strcmp(o->drives[i].id, v->id) != 0)
			continue;
		used[i] = true;
		/* The guest was told whether the disk is read-only; that cannot change
		 * under it. */
		if (o->drive_ro_given[i] && o->drives[i].read_only != v->dev.blk.read_only)
			return errf(err, errlen, -EINVAL,
				    "drive '%s': the snapshot's drive is %s, the override asks "
				    "for %s",
				    v->id, v->dev.blk.read_only ? "read-only" : "read-write",
				    o->drives[i].read_only ? "read-only" : "read-write");
		snprintf(c->path, sizeof(c->path), "%s", o->drives[i].path);
		snprintf(c->overlay_of, sizeof(c->overlay_of), "%s", o->drives[i].overlay_of);
		return 0;
	}
	if (!o->snapshot_paths)
		return errf(err, errlen, -ENOENT,
			    "drive '%s': give its host file (--drive id=%s,path=FILE, or "
			    "drive_overrides over the API), or --snapshot-paths DIR to use the "
			    "snapshot's own path (%s) inside DIR",
			    v->id, v->id, v->dev.blk.path);
	snprintf(c->path, sizeof(c->path), "%s", v->dev.blk.path);
	c->beneath = true;
	return 0;
}

static int net_backend(const struct virtio_saved *v, const struct vm_restore_opts *o, bool *used,
		       struct vmm_net_cfg *c, char *err, size_t errlen)
{
	*c = (struct vmm_net_cfg){
	    .has_mac = true, .rx_rl = v->dev.net.rx_rl, .tx_rl = v->dev.net.tx_rl};
	snprintf(c->id, sizeof(c->id), "%s", v->id);
	memcpy(c->mac, v->dev.net.mac, 6);
	for (unsigned i = 0; i < o->nr_nets; i++) {
		if (strcmp(o->nets[i].id, v->id) != 0)
			continue;
		used[i] = true;
		snprintf(c->tap, sizeof(c->tap), "%s", o->nets[i].tap);
		return 0;
	}
	if (!o->snapshot_paths)
		return errf(err, errlen, -ENOENT,
			    "network interface '%s': give its tap (--net id=%s,tap=TAP, or "
			    "network_overrides over the API), or --snapshot-paths DIR to use the "
			    "snapshot's own (%s)",
			    v->id, v->id, v->dev.net.tap);
	snprintf(c->tap, sizeof(c->tap), "%s", v->dev.net.tap);
	return 0;
}

static int vsock_backend(const struct virtio_saved *v, const struct vm_restore_opts *o,
			 struct vmm_vsock_cfg *c, char *err, size_t errlen)
{
	*c = (struct vmm_vsock_cfg){.guest_cid = (uint32_t)v->dev.vsock.guest_cid};
	if (o->has_vsock) {
		snprintf(c->uds, sizeof(c->uds), "%s", o->vsock_uds);
		return 0;
	}
	if (!o->snapshot_paths)
		return errf(err, errlen, -ENOENT,
			    "vsock: give its host socket (--vsock uds=PATH, or vsock_override over "
			    "the API), or --snapshot-paths DIR to use the snapshot's own (%s) "
			    "inside DIR",
			    v->dev.vsock.uds_path);
	snprintf(c->uds, sizeof(c->uds), "%s", v->dev.vsock.uds_path);
	c->beneath = true;
	return 0;
}

int virtio_plan_restore(const struct snap *s, const struct vm_restore_opts *opts,
			struct vm_config *cfg, struct virtio_saved *saved, bool *saved_at,
			char *err, size_t errlen)
{
	bool used_drive[VMM_MAX_DRIVES] = {false}, used_net[VMM_MAX_NETS] = {false};
	int ret;

	memset(saved_at, 0, VIRTIO_MAX_DEVS * sizeof(*saved_at));
	for (size_t i = 0; i < snap_section_count(s); i++) {
		const struct snap_section *sec = snap_section_at(s, i);
		struct virtio_saved v;
		struct vmm_dev_place place;

		if (strncmp(sec->name, "device.", 7) != 0 || strcmp(sec->name, "device.com1") == 0)
			continue;
		if (strncmp(sec->name, "device.virtio", 13) != 0)
			return errf(err, errlen, -ENOTSUP,
				    "section '%s': this thaw has no such device", sec->name);
		ret = virtio_decode_section(sec, &v, err, errlen);
		if (ret)
			return ret;
		if (saved_at[v.place.index])
			return errf(err, errlen, -EBADMSG, "%s: placement %u used twice", sec->name,
				    v.place.index);
		place = (struct vmm_dev_place){true, v.place.index, v.place.base, v.place.irq};
		switch (v.place.device_id) {
		case VIRTIO_ID_BLOCK:
			if (cfg->nr_drives == VMM_MAX_DRIVES)
				return errf(err, errlen, -EBADMSG, "more than %d drives",
					    VMM_MAX_DRIVES);
			ret = drive_backend(&v, opts, used_drive, &cfg->drives[cfg->nr_drives], err,
					    errlen);
			cfg->drives[cfg->nr_drives++].place = place;
			break;
		case VIRTIO_ID_NET:
			if (cfg->nr_nets == VMM_MAX_NETS)
				return errf(err, errlen, -EBADMSG, "more than %d interfaces",
					    VMM_MAX_NETS);
			ret =
			    net_backend(&v, opts, used_net, &cfg->nets[cfg->nr_nets], err, errlen);
			cfg->nets[cfg->nr_nets++].place = place;
			break;
		case VIRTIO_ID_VSOCK:
			if (cfg->vsock.guest_cid)
				return errf(err, errlen, -EBADMSG, "more than one vsock device");
			ret = vsock_backend(&v, opts, &cfg->vsock, err, errlen);
			cfg->vsock.place = place;
			break;
		default: /* VIRTIO_ID_RNG: virtio_decode_section knows no other */
			if (cfg->rng)
				return errf(err, errlen, -EBADMSG, "more than one entropy device");
			cfg->rng = true;
			cfg->rng_rl = v.dev.rng.rl;
			cfg->rng_place = place;
			break;
		}
		if (ret)
			return ret;
		saved[v.place.index] = v;
		saved_at[v.place.index] = true;
	}
	for (unsigned i = 0; i < opts->nr_drives; i++)
		if (!used_drive[i])
			return errf(err, errlen, -ENOENT,
				    "drive override: the snapshot has no drive '%s'",
				    opts->drives[i].id);
	for (unsigned i = 0; i < opts->nr_nets; i++)
		if (!used_net[i])
			return errf(err, errlen, -ENOENT,
				    "network override: the snapshot has no interface '%s'",
				    opts->nets[i].id);
	if (opts->has_vsock && !cfg->vsock.guest_cid)
		return errf(err, errlen, -ENOENT,
			    "vsock override: the snapshot has no vsock device");
	return 0;
}

int virtio_restore_all(struct vm *vm, const struct virtio_saved *saved, char *err, size_t errlen)
{
	for (unsigned i = 0; i < virtio_count(vm); i++) {
		struct virtio_dev *d = vm->devices->dev[i];
		int ret = virtio_restore(d, &saved[d->place.index]);

		if (ret)
			return errf(err, errlen, ret,
				    "device.virtio%u (%s): its saved state does not fit (see the "
				    "log)",
				    d->place.index, d->id);
	}
	return 0;
}
