/* MADT ("APIC", ACPI 6.5 section 5.2.12): the interrupt controllers, as the MP table
 * in vmm/boot.c describes them for guests without ACPI. */
#include "vmm/acpi/acpi_int.h"

#define MADT_LAPIC_ADDR	 0xfee00000u
#define MADT_IOAPIC_ADDR 0xfec00000u

/* No Interrupt Source Override entries: thaw's IOAPIC routing is KVM's default, ISA
 * IRQ n on pin n (GSI n), edge triggered and active high, which is exactly what ACPI
 * assumes for an ISA IRQ without an override (and what the MP table's "conforming"
 * entries say). An override for IRQ 0 as on PC firmware (to pin 2) would be wrong
 * here. The virtio and GED interrupts are GSIs with their own flags in the DSDT. */
int acpi_build_madt(struct aml *a, unsigned vcpus)
{
	acpi_header(a, "APIC", 5);
	aml_u32(a, MADT_LAPIC_ADDR);
	/* Flags: no PCAT_COMPAT; a hardware-reduced guest does not use the 8259s. */
	aml_u32(a, 0);
	for (unsigned i = 0; i < vcpus; i++) {
		aml_byte(a, 0); /* Processor Local APIC */
		aml_byte(a, 8);
		aml_byte(a, (uint8_t)i); /* ACPI processor UID */
		aml_byte(a, (uint8_t)i); /* APIC id, as KVM numbers the vCPUs */
		aml_u32(a, 1);		 /* enabled */
	}
	aml_byte(a, 1); /* I/O APIC */
	aml_byte(a, 12);
	aml_byte(a, (uint8_t)vcpus); /* id after the CPUs, as in the MP table */
	aml_byte(a, 0);
	aml_u32(a, MADT_IOAPIC_ADDR);
	aml_u32(a, 0); /* GSI base: pin n is GSI n */
	/* LINT1 of every local APIC is the NMI input (UID 0xff: all processors). */
	aml_byte(a, 4); /* Local APIC NMI */
	aml_byte(a, 6);
	aml_byte(a, 0xff);
	aml_u16(a, 0); /* polarity and trigger: conforming */
	aml_byte(a, 1);
	return acpi_finish(a);
}
