/* kvmhost-pin: holds one idle KVM VM (in-kernel irqchip, one vCPU that never runs) for
 * as long as it lives, so that the static keys KVM counts per VM never drop to zero in
 * the nested host while tests create and destroy VMs.
 *
 * Why (tests/kvmhost/README.md, "The wedge"): every KVM_CREATE_VM and every VM's last
 * close flips the scheduler's preempt_notifier_key between 0 and 1 when no other VM
 * exists, and the kernel then live-patches a jump in __schedule() on all CPUs
 * (text_poke_bp: int3, IPIs, int3 removed). Under QEMU's multi-threaded TCG that
 * cross-modification of hot code can leave a vCPU re-executing a stale translation of the
 * int3 forever, interrupts off: the VM wedges. With one VM held, the count goes 1 -> 2 ->
 * 1 and nothing is patched. The same holds for the LAPIC keys (apic_sw_disabled, ...).
 *
 * usage: kvmhost-pin [READY_FILE]   (runs until killed; once the VM is held, prints
 * "kvmhost-pin: holding a VM" on stderr and creates READY_FILE)
 * Exit status 1 when /dev/kvm or a KVM ioctl fails (the job then runs unpinned). */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int vm, vcpu;

	if (kvm < 0) {
		fprintf(stderr, "kvmhost-pin: open /dev/kvm: %s\n", strerror(errno));
		return 1;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		fprintf(stderr, "kvmhost-pin: KVM_CREATE_VM: %s\n", strerror(errno));
		return 1;
	}
	if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) {
		fprintf(stderr, "kvmhost-pin: KVM_CREATE_IRQCHIP: %s\n", strerror(errno));
		return 1;
	}
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0) {
		fprintf(stderr, "kvmhost-pin: KVM_CREATE_VCPU: %s\n", strerror(errno));
		return 1;
	}
	fprintf(stderr, "kvmhost-pin: holding a VM\n");
	if (argc > 1) {
		int fd = open(argv[1], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

		if (fd < 0) {
			fprintf(stderr, "kvmhost-pin: %s: %s\n", argv[1], strerror(errno));
			return 1;
		}
		close(fd);
	}
	for (;;)
		pause();
}
