#!/usr/bin/env python3
"""The bench group `disk` in a Linux guest (issue 20): 4 KiB random reads and writes and
1 MiB sequential ones on a qcow2 overlay against a raw file, under thaw and under QEMU
(qemu-system-x86_64 -M microvm -accel kvm, the same guest kernel, virtio-blk on the same
kind of images). Guest user space cannot run on the PVM hosts this project is built on,
so fio is not what runs: the kernel agent's `blk bench` (guest/linux/AGENT.md) is a timed
loop of bios at queue depth 1, no page cache, writes ended by a flush.

Each VM gets two drives: raw.img (a copy of the base with 1 MiB more, which tells the two
apart in the guest) and ovl.qcow2 (a `thaw-disk overlay` of the base: every cluster falls
through to the base until written). The base is BASE_MIB of a non-zero pattern. With SPAN
= BASE_MIB / 4, each drive runs, in this order:
  randwrite 4k  [0, SPAN)        first writes: on the overlay each allocates a cluster and
                                 copies the rest of it from the base
  write 1m      [SPAN, 2 SPAN)   first writes of whole clusters (until the span ends)
  read 1m       [SPAN, 2 SPAN)   reads of allocated clusters
  randread 4k   [SPAN, 2 SPAN)   the same, at random
  randread 4k   [2 SPAN, 3 SPAN) reads that fall through to the base (backing file)
each for MS milliseconds (the sequential write stops at the end of its span). The
random places come from one fixed sequence, so every drive and VMM sees the same ones.

Prints one line per measurement:
  vmm=thaw drive=qcow2 rw=randread bs=4096 region=alloc ops= bytes= ns= flush_ns= iops= mbps=
and `boot_s=` per VM. usage:
  disk_guest.py THAW THAW_DISK KERNEL DIR [--base-mib N] [--ms MS] [--vmms thaw,qemu]
"""
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

CMDLINE = "console=ttyS0 thaw_agent.hold_init=1 quiet"
BOOT_TIMEOUT = 900  # s; a Linux boot on PVM takes 40-100 s, more under load


class Guest:
    """A VM running the Linux guest's kernel agent, talked to through its serial port on
    the VMM's stdin/stdout."""

    def __init__(self, argv, err_path):
        self.err = open(err_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, start_new_session=True)
        self.buf = b""

    def line(self, want, timeout):
        end = time.monotonic() + timeout
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                ln = self.buf[:nl].decode(errors="replace").rstrip("\r")
                self.buf = self.buf[nl + 1:]
                if ln.startswith(want):
                    return ln
                continue
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise RuntimeError("no '%s' from the guest within %d s" % (want, timeout))
            data = os.read(self.proc.stdout.fileno(), 65536)
            if not data:
                raise RuntimeError("the guest's console closed (waiting for '%s')" % want)
            self.buf += data

    def req(self, text, timeout):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()
        ans = self.line("THAW_AGENT ", timeout)
        if ans.startswith("THAW_AGENT error"):
            raise RuntimeError("'%s' answered '%s'" % (text, ans))
        return ans[len("THAW_AGENT "):]

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.err.close()


def make_images(tool, d, base_mib):
    """base.img (a pattern), raw.img (its copy, 1 MiB longer), ovl.qcow2 (an overlay)."""
    block = bytes((i * 7 + (i >> 9)) & 0xff | 1 for i in range(1 << 20))
    with open(os.path.join(d, "base.img"), "wb") as f:
        for _ in range(base_mib):
            f.write(block)
    shutil.copyfile(os.path.join(d, "base.img"), os.path.join(d, "raw.img"))
    os.truncate(os.path.join(d, "raw.img"), (base_mib + 1) << 20)
    subprocess.run([tool, "overlay", os.path.join(d, "ovl.qcow2"), "base.img"], check=True,
                   stdout=subprocess.DEVNULL)


def vm_argv(vmm, thaw, kernel, d):
    raw, ovl = os.path.join(d, "raw.img"), os.path.join(d, "ovl.qcow2")
    if vmm == "thaw":
        return [thaw, "--kernel", kernel, "--mem-mib", "256", "--cmdline", CMDLINE,
                "--drive", "id=d0,path=%s,ro=off" % raw,
                "--drive", "id=d1,path=%s,ro=off" % ovl]
    # QEMU's defaults for the drives: cache=writeback (the host page cache, as thaw's
    # pread/pwrite), aio=threads.
    return ["qemu-system-x86_64", "-M", "microvm", "-accel", "kvm",
            "-cpu", "host,-arch-capabilities", "-m", "256", "-smp", "1", "-nodefaults",
            "-no-user-config", "-display", "none", "-serial", "stdio", "-kernel", kernel,
            "-append", CMDLINE,
            "-drive", "id=d0,file=%s,format=raw,if=none" % raw,
            "-device", "virtio-blk-device,drive=d0",
            "-drive", "id=d1,file=%s,format=qcow2,if=none" % ovl,
            "-device", "virtio-blk-device,drive=d1"]


PLAN = [  # rw, bs KiB, region (index of the span), name
    ("randwrite", 4, 0, "first"),
    ("write", 1024, 1, "first"),
    ("read", 1024, 1, "alloc"),
    ("randread", 4, 1, "alloc"),
    ("randread", 4, 2, "backing"),
]


def run_vm(vmm, thaw, tool, kernel, d, base_mib, ms):
    for f in ("raw.img", "ovl.qcow2"):
        if os.path.exists(os.path.join(d, f)):
            os.unlink(os.path.join(d, f))
    make_images(tool, d, base_mib)
    g = Guest(vm_argv(vmm, thaw, kernel, d), os.path.join(d, vmm + ".err"))
    out = []
    try:
        t0 = time.monotonic()
        g.line("THAW_GUEST_READY", BOOT_TIMEOUT)
        out.append("vmm=%s boot_s=%.1f" % (vmm, time.monotonic() - t0))
        # Which of vda/vdb is which: the raw file is 1 MiB longer.
        names = {}
        for dev in ("vda", "vdb"):
            sectors = int(re.search(r"sectors=(\d+)", g.req("blk info " + dev, 60)).group(1))
            names["raw" if sectors == (base_mib + 1) << 11 else "qcow2"] = dev
        if sorted(names) != ["qcow2", "raw"]:
            raise RuntimeError("could not tell the drives apart: %s" % names)
        span = base_mib // 4
        for rw, bs, region, what in PLAN:
            for drive in ("raw", "qcow2"):
                ans = g.req("blk bench %s %d %d %d %d %s" % (rw, bs, region * span, span, ms,
                                                             names[drive]),
                            120 + ms / 1000 * 20)
                kv = dict(p.split("=", 1) for p in ans.split()[2:])
                ns = max(int(kv["ns"]) + int(kv["flush_ns"]), 1)
                out.append("vmm=%s drive=%s rw=%s bs=%s region=%s ops=%s bytes=%s ns=%s "
                           "flush_ns=%s iops=%.1f mbps=%.3f"
                           % (vmm, drive, rw, kv["bs"], what, kv["ops"], kv["bytes"],
                              kv["ns"], kv["flush_ns"], int(kv["ops"]) * 1e9 / ns,
                              int(kv["bytes"]) * 1e3 / ns))
    finally:
        g.stop()
    chk = subprocess.run(["qemu-img", "check", os.path.join(d, "ovl.qcow2")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    out.append("vmm=%s overlay_check=%d" % (vmm, chk))
    return out


def opt(args, name, default):
    if name in args:
        i = args.index(name)
        v = args[i + 1]
        del args[i:i + 2]
        return v
    return default


def main(argv):
    args = argv[1:]
    base_mib = int(opt(args, "--base-mib", "256"))
    ms = int(opt(args, "--ms", "10000"))
    vmms = opt(args, "--vmms", "thaw,qemu").split(",")
    if len(args) != 4 or base_mib < 8 or base_mib % 4:
        sys.stderr.write(__doc__)
        return 2
    thaw, tool, kernel, d = args
    os.makedirs(d, exist_ok=True)
    rc = 0
    for vmm in vmms:
        try:
            for ln in run_vm(vmm, thaw, tool, kernel, d, base_mib, ms):
                print(ln, flush=True)
        except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
            sys.stderr.write("disk_guest: %s: %s\n" % (vmm, e))
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
