/* Device placement and the per-VM device list: each virtio device gets a fixed 4 KiB
 * MMIO window and IRQ from its position on the command line (drives, nets, vsock,
 * rng) and, when the guest has no ACPI (--no-acpi), is announced on the kernel
 * command line the way Linux's virtio_mmio.device= parameter expects; with ACPI the
 * DSDT declares it (vmm/acpi/dsdt.c). */
#include "vmm/virtio/virtio_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int virtio_opt(const char *spec, const char *key, char *out, size_t cap)
{
	size_t klen = strlen(key);
	const char *p = spec;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
			size_t vlen = len - klen - 1;

			if (vlen + 1 > cap)
				return -E2BIG;
			memcpy(out, p + klen + 1, vlen);
			out[vlen] = 0;
			return 1;
		}
		p = end ? end + 1 : NULL;
	}
	return 0;
}

int virtio_opt_check(const char *what, const char *spec, const char *const *known)
{
	const char *p = spec;

	while (p && *p) {
		const char *end = strchr(p, ',');
		const char *eq = strchr(p, '=');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		size_t klen = eq && (!end || eq < end) ? (size_t)(eq - p) : len;
		bool ok = false;

		for (unsigned i = 0; known[i]; i++)
			if (strlen(known[i]) == klen && strncmp(p, known[i], klen) == 0)
				ok = true;
		if (!ok || klen == len) {
			log_err("%s: '%.*s' is not one of its key=value options", what, (int)len,
				p);
			return -EINVAL;
		}
		p = end ? end + 1 : NULL;
	}
	return 0;
}

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

int vmm_devices_attach(struct vm *vm, const struct vm_config *cfg, char *cmdline, size_t cap)
{
	unsigned wanted = cfg->nr_drives + cfg->nr_nets + (cfg->vsock ? 1 : 0) + (cfg->rng ? 1 : 0);
	struct vmm_devices *devs;
	bool root_done = false;
	int ret = 0;

	if (wanted == 0)
		return 0;
	if (wanted > VIRTIO_MAX_DEVS) {
		log_err("%u virtio devices asked for, at most %d", wanted, VIRTIO_MAX_DEVS);
		return -EINVAL;
	}
	devs = calloc(1, sizeof(*devs));
	if (!devs)
		return -ENOMEM;
	vm->devices = devs;
	for (unsigned k = 0; k < wanted; k++) {
		struct virtio_dev *d = NULL;
		bool root = false, root_ro = false;

		if (k < cfg->nr_drives) {
			ret = virtio_blk_create(vm, cfg->drives[k], k, &d, &root, &root_ro);
			if (!ret && root && !root_done && cmdline) {
				root_done = true;
				ret = append(cmdline, cap, "root=/dev/vd%c %s", 'a' + k,
					     root_ro ? "ro" : "rw");
			}
		} else if (k < cfg->nr_drives + cfg->nr_nets) {
			ret = virtio_net_create(vm, cfg->nets[k - cfg->nr_drives], k, &d);
		} else if (cfg->vsock && k == cfg->nr_drives + cfg->nr_nets) {
			ret = virtio_vsock_create(vm, cfg->vsock, k, &d);
		} else {
			ret = virtio_rng_create(vm, k, &d);
		}
		if (ret) {
			if (d)
				destroy_dev(d);
			goto fail;
		}
		ret = virtio_dev_bind(d);
		if (ret) {
			destroy_dev(d);
			goto fail;
		}
		devs->dev[devs->nr++] = d;
		/* With ACPI the DSDT announces the device; twice would probe it twice. */
		if (cmdline && cfg->no_acpi) {
			ret = append(cmdline, cap, "virtio_mmio.device=4K@%#llx:%u",
				     (unsigned long long)d->place.base, d->place.irq);
			if (ret)
				goto fail;
		}
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

unsigned virtio_count(struct vm *vm)
{
	return vm->devices ? vm->devices->nr : 0;
}

struct virtio_dev *virtio_get(struct vm *vm, unsigned i)
{
	return i < virtio_count(vm) ? vm->devices->dev[i] : NULL;
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
