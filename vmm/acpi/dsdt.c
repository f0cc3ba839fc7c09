/* DSDT: the devices a guest cannot discover by itself. In ASL it reads:
 *
 *   Scope (\_SB) {
 *     Device (COM1) { _HID EisaId ("PNP0501"), _UID 0,
 *                     _CRS { IO (Decode16, 0x3F8, 0x3F8, 0, 8), IRQNoFlags () {4} } }
 *     Device (Vnnn) { _HID "LNRO0005", _UID nnn,         one per virtio-mmio window
 *                     _CRS { Memory32Fixed (ReadWrite, base, size),
 *                            Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {irq} } }
 *     Device (VGEN) { _HID "QEMUVGID", _CID "VM_Gen_Counter", _DDN "VM_Gen_Counter",
 *                     Method (ADDR) { Return (Package () { low 32 bits, high 32 bits }) } }
 *     Device (GED0) { _HID "ACPI0013",
 *                     _CRS { Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {23} }
 *                     Method (_EVT, 1) { If (Arg0 == 23) { Notify (\_SB.VGEN, 0x80) } } }
 *   }
 *
 * Linux's vmgenid driver (drivers/virt/vmgenid.c) binds by the _CID (ACPICA upper-cases
 * it to VM_GEN_COUNTER), maps the 16 bytes ADDR points at, and re-reads them on Notify
 * 0x80. Its GED driver (drivers/acpi/evged.c) calls _EVT with the GSI when the
 * interrupt fires; the GED needs no register of its own.
 */
#include "vmm/acpi/acpi_int.h"

static void name_crs(struct aml *a, const struct aml *res)
{
	aml_name(a, "_CRS");
	aml_buffer(a, res->buf, res->len);
}

static void com1(struct aml *a)
{
	uint8_t buf[32];
	struct aml res;
	size_t dev;

	aml_init(&res, buf, sizeof(buf));
	res_io(&res, COM1_BASE, 8);
	res_irq_noflags(&res, COM1_IRQ);
	res_end(&res);

	dev = aml_device_open(a, "COM1");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0501");
	aml_name(a, "_UID");
	aml_integer(a, 0);
	name_crs(a, &res);
	aml_close(a, dev);
}

static void virtio_mmio(struct aml *a, unsigned k, const struct vmm_acpi_mmio *m)
{
	uint8_t buf[32];
	struct aml res;
	char name[5] = "V000";
	size_t dev;

	aml_init(&res, buf, sizeof(buf));
	res_mem32_fixed(&res, (uint32_t)m->base, (uint32_t)m->size);
	res_interrupt_edge(&res, m->irq);
	res_end(&res);

	name[2] = (char)('0' + k / 10 % 10);
	name[3] = (char)('0' + k % 10);
	dev = aml_device_open(a, name);
	aml_name(a, "_HID");
	aml_string(a, "LNRO0005");
	aml_name(a, "_UID");
	aml_integer(a, k);
	name_crs(a, &res);
	aml_close(a, dev);
}

static void vmgenid(struct aml *a, uint64_t gpa)
{
	size_t dev, method, pkg;

	dev = aml_device_open(a, "VGEN");
	aml_name(a, "_HID");
	aml_string(a, "QEMUVGID");
	aml_name(a, "_CID");
	aml_string(a, "VM_Gen_Counter");
	aml_name(a, "_DDN");
	aml_string(a, "VM_Gen_Counter");
	method = aml_method_open(a, "ADDR", 0, false);
	aml_return(a);
	pkg = aml_package_open(a, 2);
	aml_integer(a, gpa & 0xffffffffu);
	aml_integer(a, gpa >> 32);
	aml_close(a, pkg);
	aml_close(a, method);
	aml_close(a, dev);
}

static void ged(struct aml *a)
{
	uint8_t buf[16];
	struct aml res;
	size_t dev, method, cond;

	aml_init(&res, buf, sizeof(buf));
	res_interrupt_edge(&res, VMM_GED_IRQ);
	res_end(&res);

	dev = aml_device_open(a, "GED0");
	aml_name(a, "_HID");
	aml_string(a, "ACPI0013");
	aml_name(a, "_UID");
	aml_integer(a, 0);
	name_crs(a, &res);
	/* Serialized: two interrupts must not run the notification twice at once. */
	method = aml_method_open(a, "_EVT", 1, true);
	cond = aml_if_open(a);
	aml_lequal(a);
	aml_arg(a, 0);
	aml_integer(a, VMM_GED_IRQ);
	aml_notify(a, "\\_SB_.VGEN", 0x80);
	aml_close(a, cond);
	aml_close(a, method);
	aml_close(a, dev);
}

int acpi_build_dsdt(struct aml *a, const struct vmm_acpi_cfg *cfg)
{
	size_t sb;

	acpi_header(a, "DSDT", 2); /* revision 2: 64-bit integers */
	sb = aml_scope_open(a, "\\_SB_");
	com1(a);
	for (unsigned k = 0; k < cfg->nr_virtio; k++)
		virtio_mmio(a, k, &cfg->virtio[k]);
	if (cfg->vmgenid_gpa) {
		vmgenid(a, cfg->vmgenid_gpa);
		ged(a);
	}
	aml_close(a, sb);
	return acpi_finish(a);
}
