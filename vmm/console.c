/* The serial console's host side: output to stdout or a file, bounded when it is a
 * file (vmm_console_out, the UART's output through vm.c), input from stdin or from
 * clients of a unix socket. */
#include "vmm/vmm.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

void vmm_console_out_prepare(struct vm *vm)
{
	struct stat st;

	vm->console_out_kind = fstat(vm->console_out_fd, &st) == 0 && S_ISREG(st.st_mode) ? 1 : -1;
}

void vmm_console_out(struct vm *vm, uint8_t byte)
{
	/* Not prepared (no vCPU runs before vm_launch): capped, the safe side. The vCPU
	 * threads' filter has no fstat to look now. */
	if (vm->console_out_kind >= 0 && vm->console_out_max &&
	    __atomic_load_n(&vm->console_out_bytes, __ATOMIC_RELAXED) >= vm->console_out_max) {
		if (__atomic_fetch_add(&vm->console_out_dropped, 1, __ATOMIC_RELAXED) == 0)
			log_warn("console: the output file reached its cap of %llu bytes "
				 "(--console-out-max): further guest output is dropped and counted",
				 (unsigned long long)vm->console_out_max);
		return;
	}
	/* A console that went away (a closed pipe) must not stop the guest. */
	if (write(vm->console_out_fd, &byte, 1) < 0) {
		__atomic_fetch_add(&vm->console_out_failed, 1, __ATOMIC_RELAXED);
		log_ratelimited(LOG_WARN, "console write: %s", strerror(errno));
	} else
		__atomic_fetch_add(&vm->console_out_bytes, 1, __ATOMIC_RELAXED);
}

void vmm_console_report(const struct vm *vm)
{
	uint64_t dropped = __atomic_load_n(&vm->console_out_dropped, __ATOMIC_RELAXED);

	if (dropped)
		log_warn("console: %llu bytes of guest output dropped beyond the cap of %llu "
			 "bytes (--console-out-max)",
			 (unsigned long long)dropped, (unsigned long long)vm->console_out_max);
}

static void console_feed(void *opaque)
{
	struct vmm_console *c = opaque;

	if (c->off < c->len)
		c->off += uart_input(&c->vm->com1, c->buf + c->off, c->len - c->off);
	if (c->off == c->len) {
		c->off = c->len = 0;
		/* All taken: stop polling the FIFO and read more input. */
		c->vm->loop.timeout_ms = -1;
		if (c->fd >= 0)
			vmm_loop_mod(&c->vm->loop, c->fd, EPOLLIN);
	}
}

static void console_readable(void *opaque, uint32_t events)
{
	struct vmm_console *c = opaque;
	ssize_t n = read(c->fd, c->buf, sizeof(c->buf));

	if (n <= 0) {
		if (n < 0 && errno == EAGAIN)
			return;
		/* End of input: the guest keeps running and simply gets no more. */
		vmm_loop_del(&c->vm->loop, c->fd);
		if (c->fd != STDIN_FILENO)
			close(c->fd);
		c->fd = -1;
		return;
	}
	c->len = (size_t)n;
	c->off = 0;
	console_feed(c);
	if (c->len) {
		/* The FIFO is full: hold this fd until the guest has drained it, retrying
		 * every millisecond. */
		vmm_loop_mod(&c->vm->loop, c->fd, 0);
		c->vm->loop.timeout_ms = 1;
		c->vm->loop.idle = console_feed;
		c->vm->loop.idle_opaque = c;
	}
}

static void console_accept(void *opaque, uint32_t events)
{
	struct vmm_console *c = opaque;
	int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	if (c->fd >= 0) {
		close(fd); /* one console client at a time */
		return;
	}
	c->fd = fd;
	if (vmm_loop_add(&c->vm->loop, fd, EPOLLIN, console_readable, c) < 0) {
		close(fd);
		c->fd = -1;
	}
}

int vmm_console_open(struct vmm_console *c, struct vm *vm, const char *spec)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	memset(c, 0, sizeof(*c));
	c->vm = vm;
	c->listen_fd = c->fd = -1;
	if (!spec || strcmp(spec, "stdin") == 0) {
		struct stat st;

		/* Only a terminal, pipe or socket can be polled; stdin from a regular file
		 * or /dev/null gives the guest no input. */
		if (fstat(STDIN_FILENO, &st) < 0 ||
		    !(isatty(STDIN_FILENO) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
			return 0;
		c->fd = STDIN_FILENO;
		return vmm_loop_add(&vm->loop, c->fd, EPOLLIN, console_readable, c);
	}
	if (strcmp(spec, "none") == 0)
		return 0;
	if (strlen(spec) >= sizeof(sa.sun_path)) {
		log_err("--console-in %s: socket path too long", spec);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, spec);
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	unlink(spec);
	if (c->listen_fd < 0 || bind(c->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(c->listen_fd, 1) < 0) {
		int ret = -errno;

		log_err("--console-in %s: %s", spec, strerror(-ret));
		return ret;
	}
	return vmm_loop_add(&vm->loop, c->listen_fd, EPOLLIN, console_accept, c);
}
