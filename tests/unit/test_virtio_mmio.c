/* The virtio-mmio transport registers (identification, feature negotiation, queue
 * set-up, status and reset, interrupts, configuration generation), device placement
 * on the command line, and save/restore with its validation. The device under test
 * is virtio-rng: the smallest one, so everything seen here is the transport's. */
#include "tests/unit/test_virtio_harness.h"

#include <linux/virtio_ids.h>
#include <stdio.h>

struct fx {
	struct vm *vm;
	struct virtio_dev *d;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vm_config cfg = {.rng = true};

	f->vm = h_vm_new(H_MEM_SIZE);
	assert_int_equal(vmm_devices_attach(f->vm, &cfg, NULL, 0), 0);
	f->d = virtio_get(f->vm, 0);
	assert_non_null(f->d);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	h_vm_free(f->vm);
	free(f);
	return 0;
}

static uint64_t offered(struct virtio_dev *d)
{
	uint64_t v;

	h_wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	v = h_rd(d, VIRTIO_MMIO_DEVICE_FEATURES);
	h_wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	return v | (uint64_t)h_rd(d, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
}

static void ack(struct virtio_dev *d, uint64_t features)
{
	h_wr(d, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	h_wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	h_wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	h_wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	h_wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	h_wr(d, VIRTIO_MMIO_STATUS,
	     VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
}

static void test_identification_registers(void **state)
{
	struct fx *f = *state;

	assert_int_equal(h_rd(f->d, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	assert_int_equal(h_rd(f->d, VIRTIO_MMIO_VERSION), 2);
	assert_int_equal(h_rd(f->d, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_RNG);
	assert_int_not_equal(h_rd(f->d, VIRTIO_MMIO_VENDOR_ID), 0);
	h_wr(f->d, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(h_rd(f->d, VIRTIO_MMIO_QUEUE_NUM_MAX), 64);
	h_wr(f->d, VIRTIO_MMIO_QUEUE_SEL, 1); /* rng has one queue */
	assert_int_equal(h_rd(f->d, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
}

static void test_offers_version_1(void **state)
{
	struct fx *f = *state;

	assert_true(offered(f->d) & (1ull << VIRTIO_F_VERSION_1));
	h_wr(f->d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 7);
	assert_int_equal(h_rd(f->d, VIRTIO_MMIO_DEVICE_FEATURES), 0);
}

static void test_features_ok_with_subset(void **state)
{
	struct fx *f = *state;

	ack(f->d, 1ull << VIRTIO_F_VERSION_1);
	assert_true(h_rd(f->d, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	assert_int_equal(f->d->vs.driver_features, 1ull << VIRTIO_F_VERSION_1);
	/* Once FEATURES_OK is set the acked set is frozen. */
	h_wr(f->d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	h_wr(f->d, VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
	assert_int_equal(f->d->vs.driver_features, 1ull << VIRTIO_F_VERSION_1);
}

static void test_features_ok_refused_for_unoffered_bits(void **state)
{
	struct fx *f = *state;

	ack(f->d, (1ull << VIRTIO_F_VERSION_1) | (1ull << 40));
	assert_false(h_rd(f->d, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	/* DRIVER_OK cannot follow a refused FEATURES_OK. */
	h_wr(f->d, VIRTIO_MMIO_STATUS,
	     VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
		 VIRTIO_CONFIG_S_DRIVER_OK);
	assert_false(h_rd(f->d, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK);
}

static void test_features_ok_refused_without_version_1(void **state)
{
	struct fx *f = *state;

	ack(f->d, 0);
	assert_false(h_rd(f->d, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
}

static void test_queue_setup_and_readback(void **state)
{
	struct fx *f = *state;
	struct h_queue q;

	ack(f->d, 1ull << VIRTIO_F_VERSION_1);
	h_queue_setup(f->d, &q, 0, 0, 32);
	assert_int_equal(h_rd(f->d, VIRTIO_MMIO_QUEUE_READY), 1);
	assert_int_equal(f->d->vs.q[0].size, 32);
	assert_int_equal(f->d->vs.q[0].desc, H_DESC(0));
	assert_int_equal(f->d->vs.q[0].avail, H_AVAIL(0));
	assert_int_equal(f->d->vs.q[0].used, H_USED(0));
	/* Queue registers are frozen while the queue is ready. */
	h_wr(f->d, VIRTIO_MMIO_QUEUE_NUM, 16);
	h_wr(f->d, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x5000);
	assert_int_equal(f->d->vs.q[0].size, 32);
	assert_int_equal(f->d->vs.q[0].desc, H_DESC(0));
	assert_false(h_needs_reset(f->d));
}

static void test_high_address_halves(void **state)
{
	struct fx *f = *state;

	ack(f->d, 1ull << VIRTIO_F_VERSION_1);
	h_wr(f->d, VIRTIO_MMIO_QUEUE_SEL, 0);
	h_wr(f->d, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
	h_wr(f->d, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0x2);
	assert_int_equal(f->d->vs.q[0].desc, 0x200001000ull);
}

static void test_bad_queue_size_needs_reset(void **state)
{
	struct fx *f = *state;

	ack(f->d, 1ull << VIRTIO_F_VERSION_1);
	h_wr(f->d, VIRTIO_MMIO_QUEUE_SEL, 0);
	h_wr(f->d, VIRTIO_MMIO_QUEUE_NUM, 48); /* not a power of two */
	h_wr(f->d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)H_DESC(0));
	h_wr(f->d, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)H_AVAIL(0));
	h_wr(f->d, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)H_USED(0));
	h_wr(f->d, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_int_equal(h_rd(f->d, VIRTIO_MMIO_QUEUE_READY), 0);
	assert_true(h_needs_reset(f->d));
}

static void test_queue_above_max_needs_reset(void **state)
{
	struct fx *f = *state;

	ack(f->d, 1ull << VIRTIO_F_VERSION_1);
	h_wr(f->d, VIRTIO_MMIO_QUEUE_SEL, 0);
	h_wr(f->d, VIRTIO_MMIO_QUEUE_NUM, 0x10000); /* absurd */
	h_wr(f->d, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_true(h_needs_reset(f->d));
}

static void test_ring_outside_memory_needs_reset(void **state)
{
	struct fx *f = *state;

	ack(f->d, 1ull << VIRTIO_F_VERSION_1);
	h_wr(f->d, VIRTIO_MMIO_QUEUE_SEL, 0);
	h_wr(f->d, VIRTIO_MMIO_QUEUE_NUM, 16);
	h_wr(f->d, VIRTIO_MMIO_QUEUE_DESC_LOW, 0);
	h_wr(f->d, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0x100); /* 1 TiB */
	h_wr(f->d, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_true(h_needs_reset(f->d));
}

static void test_reset_clears_state(void **state)
{
	struct fx *f = *state;
	struct h_queue q;

	h_driver_up(f->d, ~0ull, &q, 1, 16, 0);
	h_wr(f->d, VIRTIO_MMIO_QUEUE_SEL, 0);
	f->d->regs.interrupt_status = 1;
	h_wr(f->d, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(h_rd(f->d, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(h_rd(f->d, VIRTIO_MMIO_QUEUE_READY), 0);
	assert_int_equal(h_rd(f->d, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(f->d->vs.driver_features, 0);
	assert_int_equal(f->d->vs.q[0].size, 0);
	assert_int_equal(f->d->vs.q[0].desc, 0);
	assert_true(f->d->vs.device_features & (1ull << VIRTIO_F_VERSION_1));
}

static void test_reset_clears_needs_reset(void **state)
{
	struct fx *f = *state;

	virtio_set_needs_reset(f->d, "test");
	assert_true(h_needs_reset(f->d));
	h_wr(f->d, VIRTIO_MMIO_STATUS, 0);
	assert_false(h_needs_reset(f->d));
}

static void test_config_change_bumps_generation_and_interrupts(void **state)
{
	struct fx *f = *state;
	struct h_queue q;
	uint32_t gen;

	h_driver_up(f->d, ~0ull, &q, 1, 16, 0);
	(void)h_irq(f->d);
	gen = h_rd(f->d, VIRTIO_MMIO_CONFIG_GENERATION);
	virtio_config_changed(f->d);
	assert_int_equal(h_rd(f->d, VIRTIO_MMIO_CONFIG_GENERATION), gen + 1);
	assert_true(h_irq(f->d));
	assert_int_equal(h_rd(f->d, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	h_wr(f->d, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(h_rd(f->d, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
}

static void test_used_buffer_interrupt_and_ack(void **state)
{
	struct fx *f = *state;
	struct h_queue q;
	uint64_t a[] = {H_DATA};
	uint32_t l[] = {64}, id, len;
	bool w[] = {true};

	h_driver_up(f->d, 1ull << VIRTIO_F_VERSION_1, &q, 1, 16, 0);
	(void)h_irq(f->d);
	h_publish(&q, h_add_chain(&q, 1, a, l, w));
	h_kick(f->d, 0);
	assert_true(h_take_used(&q, &id, &len));
	assert_true(h_irq(f->d));
	assert_int_equal(h_rd(f->d, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	h_wr(f->d, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	assert_int_equal(h_rd(f->d, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
}

static void test_notify_before_driver_ok_ignored(void **state)
{
	struct fx *f = *state;
	struct h_queue q;
	uint64_t a[] = {H_DATA};
	uint32_t l[] = {64}, id, len;
	bool w[] = {true};

	ack(f->d, 1ull << VIRTIO_F_VERSION_1);
	h_queue_setup(f->d, &q, 0, 0, 16);
	h_publish(&q, h_add_chain(&q, 1, a, l, w));
	h_kick(f->d, 0);
	assert_false(h_take_used(&q, &id, &len));
}

static void test_narrow_register_access_ignored(void **state)
{
	struct fx *f = *state;
	uint8_t b = 0xff;
	uint16_t h = 0xffff;

	virtio_mmio_access(f->d, VIRTIO_MMIO_STATUS, &b, 1, true);
	assert_int_equal(h_rd(f->d, VIRTIO_MMIO_STATUS), 0);
	virtio_mmio_access(f->d, VIRTIO_MMIO_MAGIC_VALUE, (uint8_t *)&h, 2, false);
	assert_int_equal(h, 0);
}

static void test_placement_and_command_line(void **state)
{
	struct vm *vm = h_vm_new(H_MEM_SIZE);
	char img[] = "/tmp/thaw-test-mmio-XXXXXX", spec[128], cmdline[512] = "console=ttyS0";
	int fd = mkstemp(img);
	struct vm_config cfg = {.rng = true, .nr_drives = 2, .no_acpi = true};
	char spec2[128];

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	snprintf(spec, sizeof(spec), "id=data,path=%s,ro=off", img);
	snprintf(spec2, sizeof(spec2), "id=root,path=%s,ro=on,root=on", img);
	assert_int_equal(h_parse_drive(spec, &cfg.drives[0]), 0);
	assert_int_equal(h_parse_drive(spec2, &cfg.drives[1]), 0);
	assert_int_equal(vmm_devices_attach(vm, &cfg, cmdline, sizeof(cmdline)), 0);
	assert_string_equal(cmdline, "console=ttyS0 virtio_mmio.device=4K@0xd0000000:5 "
				     "root=/dev/vdb ro virtio_mmio.device=4K@0xd0001000:6 "
				     "virtio_mmio.device=4K@0xd0002000:7");
	assert_int_equal(virtio_count(vm), 3);
	for (unsigned k = 0; k < 3; k++) {
		struct virtio_dev *d = virtio_get(vm, k);
		const struct vmm_bus_range *r =
		    vmm_bus_find(&vm->mmio, VIRTIO_MMIO_BASE + k * 0x1000);

		assert_int_equal(d->place.index, k);
		assert_int_equal(d->place.base, VIRTIO_MMIO_BASE + k * VIRTIO_MMIO_SIZE);
		assert_int_equal(d->place.irq, VIRTIO_IRQ_BASE + k);
		assert_non_null(r);
		assert_ptr_equal(r->opaque, d);
	}
	assert_string_equal(virtio_dev_name(virtio_get(vm, 1)), "root");
	assert_int_equal(virtio_dev_type(virtio_get(vm, 2)), VIRTIO_ID_RNG);
	assert_null(virtio_get(vm, 3));
	virtio_detach_all(vm);
	assert_int_equal(vm->mmio.nr, 0); /* windows gone with their devices */
	assert_int_equal(virtio_count(vm), 0);
	h_vm_free(vm);
	unlink(img);
}

/* With ACPI the DSDT announces the devices: the command line gets only root=. */
static void test_acpi_leaves_device_announcements_off_the_command_line(void **state)
{
	struct vm *vm = h_vm_new(H_MEM_SIZE);
	char img[] = "/tmp/thaw-test-mmio-XXXXXX", spec[128], cmdline[512] = "console=ttyS0";
	int fd = mkstemp(img);
	struct vm_config cfg = {.rng = true, .nr_drives = 1};

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	snprintf(spec, sizeof(spec), "id=root,path=%s,ro=on,root=on", img);
	assert_int_equal(h_parse_drive(spec, &cfg.drives[0]), 0);
	assert_int_equal(vmm_devices_attach(vm, &cfg, cmdline, sizeof(cmdline)), 0);
	assert_string_equal(cmdline, "console=ttyS0 root=/dev/vda ro");
	assert_int_equal(virtio_count(vm), 2);
	virtio_detach_all(vm);
	h_vm_free(vm);
	unlink(img);
}

static void test_bad_options_refused(void **state)
{
	struct vm *vm = h_vm_new(H_MEM_SIZE);
	const char *bad[] = {"id=x",
			     "path=/dev/null",
			     "id=x,path=/nonexistent/file",
			     "id=x,path=/tmp,ro=maybe",
			     "id=x,path=/tmp,colour=blue",
			     "id=x,path=/tmp,ro"};

	/* Each is refused by the parser or, naming nothing it can open, by attach. */
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vm_config cfg = {.nr_drives = 1};
		char cmdline[64] = "";

		if (h_parse_drive(bad[i], &cfg.drives[0]) != 0)
			continue;
		assert_int_not_equal(vmm_devices_attach(vm, &cfg, cmdline, sizeof(cmdline)), 0);
		assert_int_equal(virtio_count(vm), 0);
		assert_int_equal(vm->mmio.nr, 0);
	}
	{
		struct vm_config cfg = {.vsock = {.guest_cid = 2, .uds = "/tmp/x"}};

		assert_int_not_equal(vmm_devices_attach(vm, &cfg, NULL, 0), 0);
	}
	h_vm_free(vm);
}

/* ---------------------------------------------------------------- save/restore */

static void running_device(struct fx *f, struct h_queue *q)
{
	uint64_t a[] = {H_DATA};
	uint32_t l[] = {64}, id, len;
	bool w[] = {true};

	h_driver_up(f->d, ~0ull, q, 1, 16, 0);
	for (int i = 0; i < 3; i++) {
		h_publish(q, h_add_chain(q, 1, a, l, w));
		h_kick(f->d, 0);
		assert_true(h_take_used(q, &id, &len));
	}
	/* One more available but not yet taken: restore must not lose it. */
	h_publish(q, h_add_chain(q, 1, a, l, w));
}

static void test_save_restore_round_trip(void **state)
{
	struct fx *f = *state;
	const struct virtio_dev_ops *real_ops = f->d->ops;
	struct virtio_dev_ops no_notify_ops = *real_ops;

	no_notify_ops.notify = NULL;
	struct h_queue q;
	struct virtio_saved s, s2;
	uint32_t id, len;

	running_device(f, &q);
	virtio_save(f->d, &s);
	assert_int_equal(s.version, VIRTIO_SAVED_VERSION);
	assert_string_equal(s.id, "rng");
	assert_int_equal(s.place.base, VIRTIO_MMIO_BASE);
	assert_int_equal(s.place.irq, VIRTIO_IRQ_BASE);
	assert_int_equal(s.vs.q[0].next_avail, 3);
	assert_int_equal(s.vs.q[0].next_used, 3);
	assert_true(s.regs.status & VIRTIO_CONFIG_S_DRIVER_OK);

	/* Wipe the device and restore: the state is back as saved... */
	h_wr(f->d, VIRTIO_MMIO_STATUS, 0);
	f->d->ops = &no_notify_ops;
	assert_int_equal(virtio_restore(f->d, &s), 0);
	virtio_save(f->d, &s2);
	assert_memory_equal(&s, &s2, sizeof(s));
	/* ...and with the real device, the chain that was available but not taken
	 * is served without a new kick (its kick died with the old process). */
	f->d->ops = real_ops;
	h_wr(f->d, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(virtio_restore(f->d, &s), 0);
	assert_true(h_take_used(&q, &id, &len));
	assert_int_equal(len, 64);
}

static void expect_refused(struct fx *f, const struct virtio_saved *s)
{
	assert_int_equal(virtio_restore(f->d, s), -EINVAL);
	/* A refused restore leaves the device reset, not half-restored. */
	assert_int_equal(h_rd(f->d, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(f->d->vs.q[0].ready, 0);
}

static void test_restore_refuses_acked_outside_offered(void **state)
{
	struct fx *f = *state;
	struct h_queue q;
	struct virtio_saved s;

	running_device(f, &q);
	virtio_save(f->d, &s);
	s.vs.driver_features |= 1ull << 50;
	expect_refused(f, &s);
}

static void test_restore_refuses_bad_queue_size(void **state)
{
	struct fx *f = *state;
	struct h_queue q;
	struct virtio_saved s;

	running_device(f, &q);
	virtio_save(f->d, &s);
	s.vs.q[0].size = 12;
	expect_refused(f, &s);
	s.vs.q[0].size = 128; /* power of two, above rng's 64 */
	expect_refused(f, &s);
}

static void test_restore_refuses_ring_outside_memory(void **state)
{
	struct fx *f = *state;
	struct h_queue q;
	struct virtio_saved s;

	running_device(f, &q);
	virtio_save(f->d, &s);
	s.vs.q[0].used = H_MEM_SIZE - 4;
	expect_refused(f, &s);
}

static void test_restore_refuses_other_placement(void **state)
{
	struct fx *f = *state;
	struct h_queue q;
	struct virtio_saved s;

	running_device(f, &q);
	virtio_save(f->d, &s);
	s.place.base += VIRTIO_MMIO_SIZE;
	expect_refused(f, &s);
	virtio_save(f->d, &s);
	s.place.irq = 9;
	expect_refused(f, &s);
}

static void test_restore_refuses_indices_disagreeing_with_memory(void **state)
{
	struct fx *f = *state;
	struct h_queue q;
	struct virtio_saved s;

	running_device(f, &q);
	virtio_save(f->d, &s);
	s.vs.q[0].next_used = 1; /* memory says 3 */
	expect_refused(f, &s);
}

static void test_restore_refuses_unknown_version_and_queue_count(void **state)
{
	struct fx *f = *state;
	struct h_queue q;
	struct virtio_saved s;

	running_device(f, &q);
	virtio_save(f->d, &s);
	s.version = 99;
	expect_refused(f, &s);
	virtio_save(f->d, &s);
	s.vs.nr_queues = 3;
	expect_refused(f, &s);
}

/* ---------------------------------------------------------------- the section */

/* Decodes a device section as thaw writes it for an rng at index 2 (tags of
 * docs/snapshot-format.md), with field `tag` given `val` instead and version `major`. */
static int decode_crafted(uint16_t tag, uint64_t val, uint16_t major, struct virtio_saved *out,
			  char *err, size_t errlen)
{
	static const struct {
		uint16_t tag;
		uint64_t val;
	} fields[] = {
	    {SNAP_DEV_MMIO_BASE, VIRTIO_MMIO_BASE + 2 * VIRTIO_MMIO_SIZE},
	    {SNAP_DEV_MMIO_SIZE, VIRTIO_MMIO_SIZE},
	    {SNAP_DEV_IRQ, VIRTIO_IRQ_BASE + 2},
	    {5, 2},		 /* index */
	    {6, VIRTIO_ID_RNG},	 /* device id */
	    {0x100, 0x0f},	 /* status */
	    {0x101, 0},		 /* dev_features_sel */
	    {0x102, 0},		 /* drv_features_sel */
	    {0x103, 0},		 /* queue_sel */
	    {0x104, 0},		 /* interrupt_status */
	    {0x105, 1},		 /* config_generation */
	    {0x200, 1ull << 32}, /* device features: VERSION_1 */
	    {0x201, 1ull << 32}, /* driver features */
	    {0x202, 1},		 /* queues */
	};
	const uint64_t q0[9] = {8, 1, H_DESC(0), H_AVAIL(0), H_USED(0), 0, 0, 0, 0};
	struct snap_sec b = {0};
	struct snap_section sec;
	int ret;

	snap_put_str(&b, SNAP_DEV_KIND, "virtio-rng");
	snap_put_str(&b, 7, "rng");
	for (unsigned i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		snap_put_u64(&b, fields[i].tag, fields[i].tag == tag ? val : fields[i].val);
	snap_put_u64a(&b, 0x210, q0, 9);
	assert_int_equal(b.err, 0);
	snap_section_view(&sec, "device.virtio2", b.buf, b.len);
	sec.ver_major = major;
	ret = virtio_decode_section(&sec, out, err, errlen);
	snap_sec_release(&b);
	return ret;
}

static void test_section_decodes_and_refuses_what_does_not_fit(void **state)
{
	struct virtio_saved v;
	char err[256];

	assert_int_equal(decode_crafted(0, 0, 1, &v, err, sizeof(err)), 0);
	assert_int_equal(v.place.index, 2);
	assert_int_equal(v.place.irq, VIRTIO_IRQ_BASE + 2);
	assert_int_equal(v.regs.status, 0x0f);
	assert_int_equal(v.vs.q[0].size, 8);
	/* a newer major version */
	assert_int_equal(decode_crafted(0, 0, 2, &v, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "version 2.0 is newer"));
	/* a window that is not the one its index gives */
	assert_int_equal(decode_crafted(SNAP_DEV_IRQ, VIRTIO_IRQ_BASE + 3, 1, &v, err, sizeof(err)),
			 -EBADMSG);
	/* a status that would be truncated to 0 in its 32-bit register */
	assert_int_equal(decode_crafted(0x100, 1ull << 32, 1, &v, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "0x100000000 is above its limit"));
	/* an index that disagrees with the section's name */
	assert_int_equal(decode_crafted(5, 3, 1, &v, err, sizeof(err)), -EBADMSG);
	/* a window that is not one device's 4 KiB */
	assert_int_equal(decode_crafted(SNAP_DEV_MMIO_SIZE, 0x2000, 1, &v, err, sizeof(err)),
			 -EBADMSG);
	/* a device thaw does not have */
	assert_int_equal(decode_crafted(6, 42, 1, &v, err, sizeof(err)), -ENOTSUP);
	/* more queues than any device */
	assert_int_equal(decode_crafted(0x202, 4, 1, &v, err, sizeof(err)), -EBADMSG);
}

/* A saved place is used as it is: one outside the virtio window, or on an IRQ another
 * device holds, is refused instead of being recomputed. */
static void test_saved_place_is_checked_not_recomputed(void **state)
{
	struct vm *vm = h_vm_new(H_MEM_SIZE);
	struct vm_config cfg = {.rng = true};

	cfg.rng_place = (struct vmm_dev_place){true, 3, VIRTIO_MMIO_BASE + 3 * VIRTIO_MMIO_SIZE,
					       VIRTIO_IRQ_BASE + 3};
	assert_int_equal(vmm_devices_attach(vm, &cfg, NULL, 0), 0);
	assert_int_equal(virtio_get(vm, 0)->place.base, VIRTIO_MMIO_BASE + 3 * VIRTIO_MMIO_SIZE);
	assert_int_equal(virtio_get(vm, 0)->place.index, 3);
	virtio_detach_all(vm);
	cfg.rng_place.irq = 99;
	assert_int_not_equal(vmm_devices_attach(vm, &cfg, NULL, 0), 0);
	cfg.rng_place.irq = VIRTIO_IRQ_BASE + 3;
	cfg.rng_place.base = 0xfee00000; /* the local APIC */
	assert_int_not_equal(vmm_devices_attach(vm, &cfg, NULL, 0), 0);
	assert_int_equal(vm->mmio.nr, 0);
	h_vm_free(vm);
}

/* Layers 1 and 2 through a snapshot file equal what the device holds. */
static void test_file_roundtrip_of_the_transport_and_queues(void **state)
{
	struct fx *f = *state;
	struct virtio_saved s;

	h_driver_up(f->d, ~0ull, &(struct h_queue){0}, 1, 8, 0);
	h_file_roundtrip(f->d, &s);
	assert_true(s.vs.q[0].ready);
	assert_int_equal(virtio_restore(f->d, &s), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_identification_registers),
	    T(test_offers_version_1),
	    T(test_features_ok_with_subset),
	    T(test_features_ok_refused_for_unoffered_bits),
	    T(test_features_ok_refused_without_version_1),
	    T(test_queue_setup_and_readback),
	    T(test_high_address_halves),
	    T(test_bad_queue_size_needs_reset),
	    T(test_queue_above_max_needs_reset),
	    T(test_ring_outside_memory_needs_reset),
	    T(test_reset_clears_state),
	    T(test_reset_clears_needs_reset),
	    T(test_config_change_bumps_generation_and_interrupts),
	    T(test_used_buffer_interrupt_and_ack),
	    T(test_notify_before_driver_ok_ignored),
	    T(test_narrow_register_access_ignored),
	    cmocka_unit_test(test_placement_and_command_line),
	    cmocka_unit_test(test_acpi_leaves_device_announcements_off_the_command_line),
	    cmocka_unit_test(test_bad_options_refused),
	    T(test_save_restore_round_trip),
	    T(test_restore_refuses_acked_outside_offered),
	    T(test_restore_refuses_bad_queue_size),
	    T(test_restore_refuses_ring_outside_memory),
	    T(test_restore_refuses_other_placement),
	    T(test_restore_refuses_indices_disagreeing_with_memory),
	    T(test_restore_refuses_unknown_version_and_queue_count),
	    cmocka_unit_test(test_section_decodes_and_refuses_what_does_not_fit),
	    cmocka_unit_test(test_saved_place_is_checked_not_recomputed),
	    T(test_file_roundtrip_of_the_transport_and_queues),
	};

	return cmocka_run_group_tests_name("virtio-mmio", tests, NULL, NULL);
}
