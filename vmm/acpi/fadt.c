/* FADT ("FACP", ACPI 6.5 section 5.2.9), hardware-reduced: no PM timer, no PM1 or GPE
 * blocks, no SCI, no FACS. The guest finds its devices in the DSDT and is told about
 * events through the Generic Event Device there. */
#include "vmm/acpi/acpi_int.h"

#include <string.h>

#define FADT_LEN 276 /* revision 6 */

#define FADT_F_PWR_BUTTON      (1u << 4) /* no fixed-feature power button */
#define FADT_F_SLP_BUTTON      (1u << 5) /* no fixed-feature sleep button */
#define FADT_F_HW_REDUCED_ACPI (1u << 20)

#define IAPC_VGA_NOT_PRESENT	  (1u << 2)
#define IAPC_MSI_NOT_SUPPORTED	  (1u << 3)
#define IAPC_CMOS_RTC_NOT_PRESENT (1u << 5)

#define FADT_FLAGS  0x70 /* offset of Flags */
#define FADT_IAPC   0x6d /* IA-PC Boot Architecture Flags */
#define FADT_MINOR  0x83 /* FADT Minor Version */
#define FADT_X_DSDT 0x8c
#define FADT_HV_ID  0x10c /* Hypervisor Vendor Identity */

int acpi_build_fadt(struct aml *a, uint64_t dsdt_gpa)
{
	uint8_t body[FADT_LEN - ACPI_HEADER_LEN];
	uint32_t flags = FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON | FADT_F_HW_REDUCED_ACPI;
	uint16_t iapc = IAPC_VGA_NOT_PRESENT | IAPC_MSI_NOT_SUPPORTED | IAPC_CMOS_RTC_NOT_PRESENT;

	/* Almost every field is zero in a hardware-reduced FADT; set the few that are
	 * not at their offsets in the spec's table 5.9. The 32-bit DSDT field stays zero:
	 * the spec wants it so when X_DSDT is set. */
	memset(body, 0, sizeof(body));
	memcpy(body + FADT_IAPC - ACPI_HEADER_LEN, &iapc, 2);
	memcpy(body + FADT_FLAGS - ACPI_HEADER_LEN, &flags, 4);
	body[FADT_MINOR - ACPI_HEADER_LEN] = 5; /* ACPI 6.5 */
	memcpy(body + FADT_X_DSDT - ACPI_HEADER_LEN, &dsdt_gpa, 8);
	memcpy(body + FADT_HV_ID - ACPI_HEADER_LEN, "THAW    ", 8);

	acpi_header(a, "FACP", 6);
	aml_bytes(a, body, sizeof(body));
	return acpi_finish(a);
}
