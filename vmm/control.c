/* The API's actions on the VM: api/ parses, validates and enforces the life cycle;
 * this file turns each accepted request into calls on `struct vm`. Everything runs
 * on the main thread. */
#include "vmm/vmm.h"
#include "vmm/virtio/virtio.h"
#include "api/api.h"
#include "vmm/snapshot_int.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/virtio_ids.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

struct vm_control {
	/* The scalars first, the large pre-boot configuration last: a restored clone
	 * writes only the first, and they kept two more pages of it dirty at the end. */
	struct vm *vm;
	struct api_server *srv;
	char id[API_ID_LEN];

	struct api_mmds *mmds;		   /* the metadata store, the API's and the guest's */
	enum api_cpu_template static_tmpl; /* when cpu_config holds a static template */
	bool started;			   /* booted or restored */
	uint64_t load_us;		   /* last snapshot load, request to vCPUs running */
	uint64_t create_us;		   /* last snapshot create */
	/* What the last metrics line reported of the groups counted as totals
	 * (uart, seccomp, signals), so each line shows the change, as Firecracker's. */
	struct uart_counts uart_reported;
	uint64_t uart_errors_reported, uart_missed_write_reported;
	uint64_t device_events_reported;
	struct vmm_signal_counts sig_reported;

	/* pre-boot configuration, owned here: vm_config points into it */
	struct vm_config cfg;
	char kernel[API_PATH_LEN], initrd[API_PATH_LEN], cmdline[API_BOOT_ARGS_LEN];
	struct vmm_cpu_config cpu_config; /* PUT /cpu-config; cfg.cpu_config points here */
};

static void on_api(void *opaque, uint32_t events)
{
	struct vm_control *c = opaque;

	api_server_dispatch(c->srv);
	/* A PUT /metrics may have just opened the file a fatal signal's last line goes to. */
	vmm_signals_set_metrics_fd(api_server_metrics_fd(c->srv));
}

static void describe(void *ctx, struct api_instance_info *info)
{
	struct vm_control *c = ctx;

	snprintf(info->id, sizeof(info->id), "%s", c->id);
	info->state = !c->started     ? API_VM_NOT_STARTED
		      : c->vm->paused ? API_VM_PAUSED
				      : API_VM_RUNNING;
}

/* Firecracker's static templates, in api_cpu_template's order (None first). */
static const char *const static_tmpl_names[] = {NULL, "C3", "T2", "T2S", "T2CL", "T2A", "V1N1"};

static enum api_cpu_template static_tmpl_id(const char *name)
{
	for (unsigned i = 1; name && i < sizeof(static_tmpl_names) / sizeof(static_tmpl_names[0]);
	     i++)
		if (strcmp(static_tmpl_names[i], name) == 0)
			return (enum api_cpu_template)i;
	return API_CPU_TEMPLATE_NONE;
}

/* `cpu_template` of PUT/PATCH /machine-config: a static template replaces whatever
 * template was configured before (a custom one too), as Firecracker's last-wins rule
 * says; "None" drops a static template and leaves a custom one alone. Refused when the
 * host cannot honour it: another CPU vendor, or PVM. Validates before it changes
 * anything, so a refusal leaves the configuration as it was. */
static int set_static_template(struct vm_control *c, enum api_cpu_template t, struct api_error *err)
{
	char vendor[13], why[256];
	const char *name;

	if (t == c->static_tmpl)
		return 0;
	if (t == API_CPU_TEMPLATE_NONE) {
		c->cfg.cpu_config = NULL;
		c->cfg.static_template = NULL;
		c->static_tmpl = API_CPU_TEMPLATE_NONE;
		return 0;
	}
	if (t == API_CPU_TEMPLATE_V1N1) {
		api_error_set(err, "cpu_template: V1N1 is a template for aarch64 (Neoverse V1); "
				   "thaw runs x86-64 guests");
		return -EINVAL;
	}
	name = static_tmpl_names[t];
	vmm_host_cpu_vendor(vendor);
	if (vmm_static_template_check(name, vendor, vmm_host_is_pvm(), why, sizeof(why))) {
		api_error_set(err, "%s", why);
		return -EOPNOTSUPP;
	}
	if (vmm_static_template_config(name, &c->cpu_config))
		return -EINVAL; /* every name above is in the table (test_vmm_cpu_template) */
	c->cfg.cpu_config = &c->cpu_config;
	c->cfg.static_template = vmm_static_template_name(name);
	c->static_tmpl = t;
	return 0;
}

static int get_machine_config(void *ctx, struct api_machine_config *mc, struct api_error *err)
{
	struct vm_control *c = ctx;

	mc->vcpu_count = c->started ? c->vm->nr_vcpus : c->cfg.vcpus;
	mc->mem_size_mib = (uint32_t)(c->started ? c->vm->mem.size >> 20 : c->cfg.mem_mib);
	mc->cpu_template = c->started ? static_tmpl_id(c->vm->static_template) : c->static_tmpl;
	return 0;
}

static int put_machine_config(void *ctx, const struct api_machine_config *mc, struct api_error *err)
{
	struct vm_control *c = ctx;
	int ret;

	if (mc->huge_pages != API_HUGE_PAGES_NONE) {
		api_error_set(err, "huge_pages: not supported by thaw");
		return -EINVAL;
	}
	if (mc->vcpu_count > VMM_MAX_VCPUS) {
		api_error_set(err, "vcpu_count: at most %d", VMM_MAX_VCPUS);
		return -EINVAL;
	}
	ret = set_static_template(c, mc->cpu_template, err);
	if (ret)
		return ret;
	c->cfg.vcpus = mc->vcpu_count;
	c->cfg.mem_mib = mc->mem_size_mib;
	return 0;
}

static int put_boot_source(void *ctx, const struct api_boot_source *b, struct api_error *err)
{
	struct vm_control *c = ctx;

	snprintf(c->kernel, sizeof(c->kernel), "%s", b->kernel_image_path);
	snprintf(c->initrd, sizeof(c->initrd), "%s", b->initrd_path);
	snprintf(c->cmdline, sizeof(c->cmdline), "%s", b->boot_args);
	c->cfg.kernel = c->kernel;
	c->cfg.initrd = c->initrd[0] ? c->initrd : NULL;
	c->cfg.cmdline = c->cmdline;
	return 0;
}

/* Copies an API string into a device configuration's field, refusing one that does not
 * fit rather than cutting it. */
static int copy_field(char *dst, size_t cap, const char *src, const char *what,
		      struct api_error *err)
{
	size_t len = strlen(src);

	if (len >= cap) {
		api_error_set(err, "%s is %zu bytes long; thaw takes at most %zu", what, len,
			      cap - 1);
		return -EINVAL;
	}
	memcpy(dst, src, len + 1);
	return 0;
}

/* The slot of device `id` (replaced by a second PUT), or a free one. -ENOSPC when full. */
static int slot_for(const char *ids, size_t stride, unsigned *nr, unsigned max, const char *id,
		    struct api_error *err, const char *what)
{
	for (unsigned i = 0; i < *nr; i++)
		if (strcmp(ids + i * stride, id) == 0)
			return (int)i;
	if (*nr == max) {
		api_error_set(err, "at most %u %s", max, what);
		return -ENOSPC;
	}
	return (int)*nr;
}

static void bucket_from_api(const struct api_token_bucket *a, struct vmm_token_bucket *b)
{
	*b = (struct vmm_token_bucket){0};
	if (a->present)
		*b = (struct vmm_token_bucket){a->size, a->one_time_burst, a->refill_time};
}

static void rate_limit_from_api(const struct api_rate_limiter *a, struct vmm_rate_limit *rl)
{
	bucket_from_api(&a->bandwidth, &rl->bandwidth);
	bucket_from_api(&a->ops, &rl->ops);
}

static int put_drive(void *ctx, const struct api_drive *d, struct api_error *err)
{
	struct vm_control *c = ctx;
	struct vmm_drive_cfg cfg = {.read_only = d->is_read_only, .root = d->is_root_device};
	int i;

	if (!d->path_on_host[0]) {
		api_error_set(err, "drive %s: vhost-user drives (socket) are not supported",
			      d->drive_id);
		return -EINVAL;
	}
	if (copy_field(cfg.id, sizeof(cfg.id), d->drive_id, "drive_id", err) ||
	    copy_field(cfg.path, sizeof(cfg.path), d->path_on_host, "path_on_host", err))
		return -EINVAL;
	rate_limit_from_api(&d->rate_limiter, &cfg.rl);
	i = slot_for(c->cfg.drives[0].id, sizeof(c->cfg.drives[0]), &c->cfg.nr_drives,
		     VMM_MAX_DRIVES, cfg.id, err, "drives");
	if (i < 0)
		return i;
	c->cfg.drives[i] = cfg;
	c->cfg.nr_drives += (unsigned)i == c->cfg.nr_drives;
	return 0;
}

static int put_net(void *ctx, const struct api_net *n, struct api_error *err)
{
	struct vm_control *c = ctx;
	struct vmm_net_cfg cfg = {.has_mac = n->has_guest_mac};
	int i;

	if (copy_field(cfg.id, sizeof(cfg.id), n->iface_id, "iface_id", err) ||
	    copy_field(cfg.tap, sizeof(cfg.tap), n->host_dev_name, "host_dev_name", err))
		return -EINVAL;
	memcpy(cfg.mac, n->guest_mac, sizeof(cfg.mac));
	rate_limit_from_api(&n->rx_rate_limiter, &cfg.rx_rl);
	rate_limit_from_api(&n->tx_rate_limiter, &cfg.tx_rl);
	i = slot_for(c->cfg.nets[0].id, sizeof(c->cfg.nets[0]), &c->cfg.nr_nets, VMM_MAX_NETS,
		     cfg.id, err, "network interfaces");
	if (i < 0)
		return i;
	c->cfg.nets[i] = cfg;
	c->cfg.nr_nets += (unsigned)i == c->cfg.nr_nets;
	return 0;
}

/* A PATCH's rate limiter: buckets it names replace the device's, the others stay. */
static int patch_rate_limit(struct virtio_dev *d, unsigned which, const struct api_rate_limiter *a,
			    const char *what, struct api_error *err)
{
	struct vmm_rate_limit rl;
	unsigned keep = 0;
	int ret;

	if (!a->present)
		return 0;
	rate_limit_from_api(a, &rl);
	if (!a->bandwidth.present)
		keep |= VMM_RL_KEEP_BANDWIDTH;
	if (!a->ops.present)
		keep |= VMM_RL_KEEP_OPS;
	ret = virtio_set_rate_limit(d, which, &rl, keep);
	if (ret) {
		err->status = 500;
		api_error_set(err, "%s: the rate limiter could not be set: %s", what,
			      strerror(-ret));
	}
	return ret;
}

static struct virtio_dev *find_dev(struct vm_control *c, uint32_t type, const char *id,
				   const char *what, struct api_error *err)
{
	struct virtio_dev *d = virtio_find(c->vm, type, id);

	if (!d)
		api_error_set(err, "%s %s: no such device in this microVM", what, id);
	return d;
}

static int patch_drive(void *ctx, const struct api_drive_patch *p, struct api_error *err)
{
	struct vm_control *c = ctx;
	struct virtio_dev *d = find_dev(c, VIRTIO_ID_BLOCK, p->drive_id, "drive", err);
	int ret;

	if (!d)
		return -ENOENT;
	if (p->path_on_host[0]) {
		ret = virtio_change_media(d, p->path_on_host);
		if (ret) {
			api_error_set(err, "drive %s: %s cannot be its file: %s (see the log)",
				      p->drive_id, p->path_on_host, strerror(-ret));
			return ret;
		}
	}
	return patch_rate_limit(d, 0, &p->rate_limiter, p->drive_id, err);
}

static int patch_net(void *ctx, const struct api_net_patch *p, struct api_error *err)
{
	struct vm_control *c = ctx;
	struct virtio_dev *d = find_dev(c, VIRTIO_ID_NET, p->iface_id, "network interface", err);

	if (!d)
		return -ENOENT;
	if (patch_rate_limit(d, 0, &p->rx_rate_limiter, p->iface_id, err) ||
	    patch_rate_limit(d, 1, &p->tx_rate_limiter, p->iface_id, err))
		return -EIO;
	return 0;
}

static int put_vsock(void *ctx, const struct api_vsock *v, struct api_error *err)
{
	struct vm_control *c = ctx;
	struct vmm_vsock_cfg cfg = {.guest_cid = v->guest_cid};

	if (copy_field(cfg.uds, sizeof(cfg.uds), v->uds_path, "uds_path", err))
		return -EINVAL;
	c->cfg.vsock = cfg;
	return 0;
}

static int put_cpu_config(void *ctx, const struct api_cpu_config *a, struct api_error *err)
{
	struct vm_control *c = ctx;
	struct vmm_cpu_config *v = &c->cpu_config;

	if (vmm_host_is_pvm() && a->nr_cpuid) {
		/* Refused now rather than at InstanceStart: the answer cannot change. */
		api_error_set(err, "cpu-config: this host is a PVM guest, and PVM replaces the "
				   "CPUID a VMM sets: a CPUID template cannot be honoured here");
		return -EOPNOTSUPP;
	}
	memset(v, 0, sizeof(*v));
	for (uint32_t i = 0; i < a->nr_cpuid && i < VMM_CPUID_MODS_MAX; i++)
		v->cpuid[v->nr_cpuid++] = (struct vmm_cpuid_mod){
		    .leaf = a->cpuid[i].leaf,
		    .subleaf = a->cpuid[i].subleaf,
		    .subleaf_significant = a->cpuid[i].flags & 1,
		    .reg = a->cpuid[i].reg,
		    .keep = a->cpuid[i].keep,
		    .set = a->cpuid[i].set,
		};
	for (uint32_t i = 0; i < a->nr_msr && i < VMM_MSR_MODS_MAX; i++)
		v->msr[v->nr_msr++] =
		    (struct vmm_msr_mod){a->msr[i].addr, a->msr[i].keep, a->msr[i].set};
	c->cfg.cpu_config = v;
	/* The last template configured is the one applied (Firecracker's rule). */
	c->cfg.static_template = NULL;
	c->static_tmpl = API_CPU_TEMPLATE_NONE;
	return 0;
}

static int put_entropy(void *ctx, const struct api_entropy *e, struct api_error *err)
{
	struct vm_control *c = ctx;

	c->cfg.rng = true;
	rate_limit_from_api(&e->rate_limiter, &c->cfg.rng_rl);
	return 0;
}

static struct api_mmds *mmds_store(void *ctx)
{
	return ((struct vm_control *)ctx)->mmds;
}

/* Each interface the MMDS configuration names answers MMDS (after the devices exist,
 * before a vCPU runs). */
static int mmds_attach(struct vm_control *c, struct api_error *err)
{
	const struct api_mmds_config *cfg = api_mmds_get_config(c->mmds);

	for (unsigned i = 0; i < cfg->nr_ifaces; i++) {
		struct virtio_dev *d = virtio_find(c->vm, VIRTIO_ID_NET, cfg->ifaces[i]);
		int ret = d ? virtio_net_set_mmds(d, c->mmds) : -ENODEV;

		if (ret) {
			err->status = 500;
			api_error_set(err, "MMDS on network interface %s: %s", cfg->ifaces[i],
				      strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* After a restore: the interfaces saved with MMDS make the configuration again (the
 * store itself starts empty: each clone gets its own data over the API). */
static int mmds_restore(struct vm_control *c, struct api_error *err)
{
	struct api_mmds_config cfg = {0};

	for (unsigned i = 0; i < virtio_count(c->vm); i++) {
		struct virtio_dev *d = virtio_get(c->vm, i);
		uint32_t version;
		bool compat;
		uint32_t ip = virtio_net_saved_mmds(d, &version, &compat);

		if (!ip || cfg.nr_ifaces == API_MMDS_MAX_IFACES)
			continue;
		cfg.ipv4 = ip;
		cfg.version = version ? API_MMDS_V2 : API_MMDS_V1;
		cfg.imds_compat = compat;
		snprintf(cfg.ifaces[cfg.nr_ifaces++], API_ID_LEN, "%s", virtio_dev_name(d));
	}
	if (!cfg.nr_ifaces)
		return 0;
	api_mmds_set_config(c->mmds, &cfg);
	return mmds_attach(c, err);
}

static int instance_start(void *ctx, struct api_error *err)
{
	struct vm_control *c = ctx;
	int st = vm_boot(c->vm, &c->cfg);

	if (st != VMM_EXIT_OK) {
		api_error_set(err, "the VM could not be built (see the log)");
		/* A bad kernel file is refused before anything is built. */
		err->keep_state = c->vm->vm_fd < 0;
		return -EINVAL;
	}
	if (mmds_attach(c, err))
		return -EIO;
	if (vm_launch(c->vm, false)) {
		err->status = 500;
		api_error_set(err, "the vCPUs could not be started");
		return -EIO;
	}
	c->started = true;
	return 0;
}

/* SendCtrlAltDel: the keys go to the i8042; a guest that takes them as a reboot resets
 * through the i8042's reset line, which ends thaw (exit status 0), as Firecracker ends. */
static int send_ctrl_alt_del(void *ctx, struct api_error *err)
{
	struct vm_control *c = ctx;

	if (i8042_send_ctrl_alt_del(&c->vm->i8042)) {
		api_error_set(err, "SendCtrlAltDel: the guest is not reading its i8042 keyboard "
				   "(the controller's output buffer is full)");
		return -ENOSPC;
	}
	return 0;
}

static int pause_vm(void *ctx, struct api_error *err)
{
	struct vm_control *c = ctx;

	if (!c->vm->paused)
		vm_pause(c->vm);
	return 0;
}

static int resume_vm(void *ctx, struct api_error *err)
{
	struct vm_control *c = ctx;

	if (c->vm->paused)
		vm_resume(c->vm);
	return 0;
}

static int snapshot_create(void *ctx, const struct api_snapshot_create *req, struct api_error *err)
{
	struct vm_control *c = ctx;
	struct vm_snapshot_opts o = {
	    .path = req->snapshot_path,
	    .mem_file_path = req->mem_file_path[0] ? req->mem_file_path : NULL,
	    .stay_paused = c->vm->paused,
	    .disk_checkpoint = (enum vmm_disk_checkpoint)req->disk_checkpoint,
	};
	int ret;

	if (req->snapshot_type == API_SNAPSHOT_DIFF) {
		api_error_set(err, "snapshot_type Diff: thaw writes Full snapshots only");
		return -EINVAL;
	}
	ret = vm_snapshot_create(c->vm, &o);
	if (ret) {
		err->status = 500;
		api_error_set(err, "snapshot %s: %s (see the log)", req->snapshot_path,
			      strerror(-ret));
		return ret;
	}
	c->create_us = c->vm->last_create_us;
	return 0;
}

static int snapshot_load(void *ctx, const struct api_snapshot_load *req, struct api_error *err)
{
	struct vm_control *c = ctx;
	/* The request's overrides are copied in: ~3 KiB on the stack, no allocation. */
	struct vm_restore_opts o = {
	    .path = req->snapshot_path,
	    .clock_realtime = req->clock_realtime,
	    .keep_generation = req->keep_generation,
	};
	uint64_t t0 = now_ns();
	int ret;

	switch (req->backend_type) {
	case API_MEM_BACKEND_NONE:
		break;
	case API_MEM_BACKEND_FILE:
		o.mem_file = req->backend_path;
		break;
	case API_MEM_BACKEND_UFFD:
		o.backend = VM_MEM_UFFD_EXT;
		o.uffd_sock = req->backend_path;
		break;
	}
	if (req->n_net_overrides > VMM_MAX_NETS || req->n_drive_overrides > VMM_MAX_DRIVES) {
		api_error_set(err, "the snapshot has at most %d interfaces and %d drives",
			      VMM_MAX_NETS, VMM_MAX_DRIVES);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < req->n_net_overrides; i++) {
		const struct api_net_override *n = &req->net_overrides[i];

		if (copy_field(o.nets[i].id, sizeof(o.nets[i].id), n->iface_id, "iface_id", err) ||
		    copy_field(o.nets[i].tap, sizeof(o.nets[i].tap), n->host_dev_name,
			       "host_dev_name", err))
			return -EINVAL;
	}
	o.nr_nets = req->n_net_overrides;
	for (uint32_t i = 0; i < req->n_drive_overrides; i++) {
		const struct api_drive_override *d = &req->drive_overrides[i];

		if (copy_field(o.drives[i].id, sizeof(o.drives[i].id), d->drive_id, "drive_id",
			       err) ||
		    copy_field(o.drives[i].path, sizeof(o.drives[i].path), d->path_on_host,
			       "path_on_host", err))
			return -EINVAL;
		o.drives[i].read_only = d->is_read_only;
		o.drive_ro_given[i] = d->has_read_only;
		if (copy_field(o.drives[i].overlay_of, sizeof(o.drives[i].overlay_of),
			       d->overlay_of, "overlay_of", err))
			return -EINVAL;
	}
	o.nr_drives = req->n_drive_overrides;
	if (req->has_vsock_override) {
		if (copy_field(o.vsock_uds, sizeof(o.vsock_uds), req->vsock_uds_path, "uds_path",
			       err))
			return -EINVAL;
		o.has_vsock = true;
	}
	if (req->snapshot_paths[0])
		o.snapshot_paths = req->snapshot_paths;

	ret = vm_restore(c->vm, &o, err->message, sizeof(err->message));
	if (ret) {
		/* Refused by the plan (a bad file, an incompatible host, a device
		 * without a backend): nothing was touched, a prepared VM included, and
		 * the process may try another snapshot. */
		err->keep_state = !c->vm->restore_acted;
		return ret;
	}
	if (mmds_restore(c, err))
		return -EIO;
	if (vm_launch(c->vm, !req->resume_vm)) {
		err->status = 500;
		api_error_set(err, "the vCPUs could not be started");
		return -EIO;
	}
	c->started = true;
	c->load_us = (now_ns() - t0) / 1000;
	return 0;
}

/* Guest console output: bytes written and bytes dropped at the file's cap. */
static json_object *console_metrics(const struct vm *vm)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "out_bytes",
			       json_object_new_int64((int64_t)__atomic_load_n(
				   &vm->console_out_bytes, __ATOMIC_RELAXED)));
	json_object_object_add(o, "out_dropped_bytes",
			       json_object_new_int64((int64_t)__atomic_load_n(
				   &vm->console_out_dropped, __ATOMIC_RELAXED)));
	json_object_object_add(o, "out_max_bytes",
			       json_object_new_int64((int64_t)vm->console_out_max));
	return o;
}

static void add_u64(json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

/* Firecracker's vcpu group: exits summed over the vCPUs; `failures` counts accesses no
 * device claimed. */
static json_object *vcpu_metrics(const struct vm *vm)
{
	uint64_t in = 0, out = 0, rd = 0, wr = 0, bad = 0;
	json_object *o = json_object_new_object();

	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		const struct vcpu *v = &vm->vcpus[i];

		in += __atomic_load_n(&v->exit_io_in, __ATOMIC_RELAXED);
		out += __atomic_load_n(&v->exit_io_out, __ATOMIC_RELAXED);
		rd += __atomic_load_n(&v->exit_mmio_read, __ATOMIC_RELAXED);
		wr += __atomic_load_n(&v->exit_mmio_write, __ATOMIC_RELAXED);
		bad += __atomic_load_n(&v->unclaimed, __ATOMIC_RELAXED);
	}
	add_u64(o, "exit_io_in", in);
	add_u64(o, "exit_io_out", out);
	add_u64(o, "exit_mmio_read", rd);
	add_u64(o, "exit_mmio_write", wr);
	add_u64(o, "failures", bad);
	return o;
}

static json_object *i8042_metrics(struct vm *vm)
{
	struct i8042_counts n = i8042_counts(&vm->i8042);
	json_object *o = json_object_new_object();

	add_u64(o, "error_count", 0); /* nothing in the model can fail */
	add_u64(o, "missed_read_count", n.missed_read_count);
	add_u64(o, "missed_write_count", n.missed_write_count);
	add_u64(o, "read_count", n.read_count);
	add_u64(o, "reset_count", n.reset_count);
	add_u64(o, "write_count", n.write_count);
	return o;
}

/* The change of a total since the last line; the total becomes the last. */
static uint64_t since(uint64_t now, uint64_t *last)
{
	uint64_t d = now - *last;

	*last = now;
	return d;
}

/* Firecracker's uart group: the guest's THR writes (write_count) and RBR reads
 * (read_count; missed_read_count found the FIFO empty); bytes it wrote that the console
 * did not take (missed_write_count: dropped at --console-out-max or a failed write) and
 * failed writes (error_count). flush_count is left out: every byte is written at once. */
static json_object *uart_metrics(struct vm_control *c)
{
	struct uart_counts n = uart_counts(&c->vm->com1);
	uint64_t failed = __atomic_load_n(&c->vm->console_out_failed, __ATOMIC_RELAXED);
	uint64_t missed = failed + __atomic_load_n(&c->vm->console_out_dropped, __ATOMIC_RELAXED);
	json_object *o = json_object_new_object();

	add_u64(o, "error_count", since(failed, &c->uart_errors_reported));
	add_u64(o, "missed_read_count",
		since(n.missed_read_count, &c->uart_reported.missed_read_count));
	add_u64(o, "missed_write_count", since(missed, &c->uart_missed_write_reported));
	add_u64(o, "read_count", since(n.read_count, &c->uart_reported.read_count));
	add_u64(o, "write_count", since(n.write_count, &c->uart_reported.write_count));
	return o;
}

/* Firecracker's seccomp and signals groups (vmm/signals.c). A refused syscall and the
 * fatal signals end the process, so a regular line shows them as 0; the last line their
 * handler writes shows the count. */
static void signal_metrics(struct vm_control *c, json_object *root)
{
	struct vmm_signal_counts n, *r = &c->sig_reported;
	json_object *sc = json_object_new_object(), *sg = json_object_new_object();

	vmm_signal_counts(&n);
	add_u64(sc, "num_faults", since(n.seccomp_faults, &r->seccomp_faults));
	add_u64(sg, "sigbus", since(n.sigbus, &r->sigbus));
	add_u64(sg, "sigsegv", since(n.sigsegv, &r->sigsegv));
	add_u64(sg, "sigxfsz", since(n.sigxfsz, &r->sigxfsz));
	add_u64(sg, "sigxcpu", since(n.sigxcpu, &r->sigxcpu));
	add_u64(sg, "sigpipe", since(n.sigpipe, &r->sigpipe));
	add_u64(sg, "sighup", since(n.sighup, &r->sighup));
	add_u64(sg, "sigill", since(n.sigill, &r->sigill));
	json_object_object_add(root, "seccomp", sc);
	json_object_object_add(root, "signals", sg);
}

/* Firecracker's vmm group: device_events (struct vm). panic_count is left out: thaw has
 * no panics; an internal failure ends the process with status 1 and a log line. */
static json_object *vmm_metrics(struct vm_control *c)
{
	json_object *o = json_object_new_object();

	add_u64(o, "device_events",
		since(__atomic_load_n(&c->vm->device_events, __ATOMIC_RELAXED),
		      &c->device_events_reported));
	return o;
}

/* The VMM's part of a metrics line (the API adds its own groups and the timestamp):
 * Firecracker's latencies_us members the VMM measures, vcpu and i8042; thaw's additions
 * (the load's phases, the console) under "thaw". Counters are totals. */
static json_object *metrics(void *ctx)
{
	struct vm_control *c = ctx;
	const struct vm_restore_times *t = &c->vm->times;
	json_object *m = json_object_new_object(), *lat = json_object_new_object();
	json_object *thaw = json_object_new_object(), *phases = json_object_new_object();
	uint64_t r = t->restore_start_ns;

#define PH(name, field)                                                                            \
	json_object_object_add(                                                                    \
	    phases, name,                                                                          \
	    json_object_new_int64(t->field &&r ? (int64_t)(t->field - r) / 1000 : 0))
	/* load_snapshot: request to vCPUs running, as Firecracker's; vmm_load_snapshot: the
	 * restore itself (vm_restore's start to running). */
	add_u64(lat, "load_snapshot", c->load_us);
	add_u64(lat, "vmm_load_snapshot", t->running_ns && r ? (t->running_ns - r) / 1000 : 0);
	add_u64(lat, "vmm_full_create_snapshot", c->create_us);
	PH("opened", opened_ns);
	PH("vm_created", vm_created_ns);
	PH("vcpus_created", vcpus_created_ns);
	PH("state_set", state_set_ns);
	PH("devices_restored", devices_restored_ns);
	PH("running", running_ns);
#undef PH
	json_object_object_add(m, "latencies_us", lat);
	json_object_object_add(m, "vcpu", vcpu_metrics(c->vm));
	json_object_object_add(m, "i8042", i8042_metrics(c->vm));
	json_object_object_add(m, "uart", uart_metrics(c));
	json_object_object_add(m, "vmm", vmm_metrics(c));
	signal_metrics(c, m);
	virtio_metrics(c->vm, m);
	json_object_object_add(thaw, "load_snapshot_phases_us", phases);
	json_object_object_add(thaw, "console", console_metrics(c->vm));
	json_object_object_add(m, "thaw", thaw);
	return m;
}

/* GET /vm/config after a load: the snapshot's command line and its devices with the host
 * sides this load gave them (the restore plan keeps both). */
static int get_vm_config(void *ctx, struct api_vm_config *v, struct api_error *err)
{
	struct vm_control *c = ctx;
	const struct vm_config *d = c->vm->plan ? &c->vm->plan->devices : NULL;

	v->has_boot_source = true;
	snprintf(v->boot.boot_args, sizeof(v->boot.boot_args), "%s", c->vm->cmdline);
	if (!d)
		return 0;
	for (unsigned i = 0; i < d->nr_drives && i < API_MAX_DRIVES; i++) {
		struct api_drive *a = &v->drives[v->n_drives++];

		snprintf(a->drive_id, sizeof(a->drive_id), "%s", d->drives[i].id);
		snprintf(a->path_on_host, sizeof(a->path_on_host), "%s", d->drives[i].path);
		a->is_read_only = d->drives[i].read_only;
		a->is_root_device = d->drives[i].root;
	}
	for (unsigned i = 0; i < d->nr_nets && i < API_MAX_NETS; i++) {
		struct api_net *a = &v->nets[v->n_nets++];

		snprintf(a->iface_id, sizeof(a->iface_id), "%s", d->nets[i].id);
		snprintf(a->host_dev_name, sizeof(a->host_dev_name), "%s", d->nets[i].tap);
		a->has_guest_mac = d->nets[i].has_mac;
		memcpy(a->guest_mac, d->nets[i].mac, sizeof(a->guest_mac));
	}
	if (d->vsock.guest_cid) {
		v->has_vsock = true;
		v->vsock.guest_cid = d->vsock.guest_cid;
		snprintf(v->vsock.uds_path, sizeof(v->vsock.uds_path), "%s", d->vsock.uds);
	}
	v->has_entropy = d->rng;
	return 0;
}

static const struct api_ops thaw_api_ops = {
    .describe = describe,
    .get_machine_config = get_machine_config,
    .put_machine_config = put_machine_config,
    .put_boot_source = put_boot_source,
    .put_drive = put_drive,
    .put_net = put_net,
    .mmds = mmds_store,
    .patch_drive = patch_drive,
    .patch_net = patch_net,
    .put_vsock = put_vsock,
    .put_entropy = put_entropy,
    .put_cpu_config = put_cpu_config,
    .instance_start = instance_start,
    .send_ctrl_alt_del = send_ctrl_alt_del,
    .pause = pause_vm,
    .resume = resume_vm,
    .snapshot_create = snapshot_create,
    .snapshot_load = snapshot_load,
    .metrics = metrics,
    .get_vm_config = get_vm_config,
    /* put_logger: the API's default redirects our log. */
};

/* A whole file of at most `max` bytes, malloc'd into *out (NUL-terminated) with its
 * length; `what` names the option in messages. 0 or -errno after logging why. */
static int read_small_file(const char *what, const char *path, size_t max, char **out,
			   size_t *out_len)
{
	char *buf;
	ssize_t n = 0;
	size_t len = 0;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		log_err("%s %s: %s", what, path, strerror(errno));
		return ret;
	}
	buf = malloc(max + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (len <= max && (n = read(fd, buf + len, max + 1 - len)) > 0)
		len += (size_t)n;
	ret = n < 0 ? -errno : 0;
	close(fd);
	if (ret) {
		log_err("%s %s: read: %s", what, path, strerror(-ret));
	} else if (len > max) {
		log_err("%s %s: larger than %zu bytes", what, path, max);
		ret = -EFBIG;
	}
	if (ret) {
		free(buf);
		return ret;
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	return 0;
}

/* The configuration file: read whole (capped) and applied as its PUTs. */
static int apply_config_file(struct vm_control *c, const char *path)
{
	char err[768], *buf;
	size_t len;
	int ret = read_small_file("--config-file", path, 1 << 20, &buf, &len);

	if (ret)
		return ret;
	ret = api_server_apply_config(c->srv, buf, len, err, sizeof(err));
	if (ret)
		log_err("--config-file %s: %s", path, err);
	free(buf);
	return ret;
}

/* --metadata FILE: the MMDS store's first contents, as a PUT /mmds of the file. */
static int apply_metadata(struct vm_control *c, const char *path)
{
	struct api_error err = {.status = 400};
	json_object *o;
	char *buf;
	size_t len;
	int ret = read_small_file("--metadata", path, 1 << 20, &buf, &len);

	if (ret)
		return ret;
	o = json_tokener_parse(buf);
	free(buf);
	if (!o) {
		log_err("--metadata %s: not JSON", path);
		return -EINVAL;
	}
	ret = api_mmds_put(c->mmds, o, &err);
	json_object_put(o);
	if (ret)
		log_err("--metadata %s: %s", path, err.message);
	return ret;
}

void vm_control_trim(struct vm *vm)
{
	if (vm->control)
		api_server_trim(vm->control->srv);
}

void vm_control_warm(struct vm *vm)
{
	if (vm->control)
		api_server_warm(vm->control->srv);
}

int vm_control_start(struct vm *vm, const struct vm_control_opts *o)
{
	struct vm_control *c = calloc(1, sizeof(*c)); /* lives as long as the process */
	struct api_error err = {.status = 400};
	int ret;

	if (!c)
		return -ENOMEM;
	c->vm = vm;
	c->cfg.vcpus = 1;
	c->cfg.mem_mib = 128;
	c->cfg.console_in = vm->console_in_spec;
	snprintf(c->id, sizeof(c->id), "%s", o->id);
	ret = api_mmds_create(o->mmds_size_limit, &c->mmds);
	if (ret) {
		free(c);
		return ret;
	}
	ret = o->sock ? api_server_create(o->sock, &thaw_api_ops, c, &c->srv)
		      : api_server_create_headless(&thaw_api_ops, c, &c->srv);
	if (ret) {
		log_err("--api-sock %s: %s", o->sock ? o->sock : "(none)", strerror(-ret));
		api_mmds_destroy(c->mmds);
		free(c);
		return ret;
	}
	vm->control = c;
	api_server_set_startup_times(c->srv, o->startup_us, o->startup_cpu_us);
	if (o->log_path || o->log_level >= 0 || o->show_level || o->show_log_origin || o->module) {
		struct api_logger l = {
		    .has_level = o->log_level >= 0,
		    .level = (enum api_log_level)(o->log_level >= 0 ? o->log_level : 0),
		    .show_level = o->show_level,
		    .show_log_origin = o->show_log_origin};

		snprintf(l.log_path, sizeof(l.log_path), "%s", o->log_path ? o->log_path : "");
		snprintf(l.module, sizeof(l.module), "%s", o->module ? o->module : "");
		ret = api_server_put_logger(c->srv, &l, &err);
		if (ret) {
			log_err("--log-path: %s", err.message);
			return ret;
		}
	}
	if (o->metrics_path) {
		ret = api_server_put_metrics(c->srv, o->metrics_path, &err);
		if (ret) {
			log_err("--metrics-path: %s", err.message);
			return ret;
		}
		vmm_signals_set_metrics_fd(api_server_metrics_fd(c->srv));
	}
	ret = vmm_loop_add(&vm->loop, api_server_fd(c->srv), EPOLLIN, on_api, c);
	if (!ret && o->metadata)
		ret = apply_metadata(c, o->metadata);
	if (!ret && o->config_file)
		ret = apply_config_file(c, o->config_file);
	return ret;
}
