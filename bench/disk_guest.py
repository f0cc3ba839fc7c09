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
each for MS milliseconds (the sequential write stops at the end of its span). A
measurement is SLICES (4) slices of MS / SLICES, the two drives' slices interleaved (raw,
qcow2, raw, ...), slice k on the k-th part of the span: the machine's load drifts less
between the two drives, and every slice's places are new (first writes stay first).
The random places come from one fixed sequence, so every drive and VMM sees the same
ones.

Prints one line per measurement:
  vmm=thaw drive=qcow2 rw=randread bs=4096 region=alloc ops= bytes= ns= flush_ns= iops= mbps=
and `boot_s=` per VM. usage:
  disk_guest.py THAW THAW_DISK KERNEL DIR [--base-mib N] [--ms MS] [--vmms thaw,qemu]
"""
import os
import re
import shutil
import subprocess
import sys
import time

from disk_clones import Probe

CMDLINE = "console=ttyS0 thaw_agent.hold_init=1 quiet"
BOOT_TIMEOUT = 900  # s; a Linux boot on PVM takes 40-100 s, more under load
SLICES = 4


class Guest(Probe):
    """A VM running the Linux guest's kernel agent, talked to through its serial port on
    the VMM's stdin/stdout (disk_clones.Probe's console handling)."""

    def req(self, text, timeout):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()
        ans = self.line("THAW_AGENT ", timeout)
        ans = ans[ans.index("THAW_AGENT ") + len("THAW_AGENT "):].strip()
        if ans.startswith("error"):
            raise RuntimeError("'%s' answered '%s'" % (text, ans))
        return ans


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
        part = span // SLICES
        for rw, bs, region, what in PLAN:
            tot = {d: {"ops": 0, "bytes": 0, "ns": 0, "flush_ns": 0} for d in names}
            for k in range(SLICES):
                for drive in ("raw", "qcow2"):
                    ans = g.req("blk bench %s %d %d %d %d %s"
                                % (rw, bs, region * span + k * part, part, ms // SLICES,
                                   names[drive]), 120 + ms / 1000 * 20)
                    kv = dict(p.split("=", 1) for p in ans.split()[2:])
                    for key in tot[drive]:
                        tot[drive][key] += int(kv[key])
            for drive in ("raw", "qcow2"):
                t = tot[drive]
                ns = max(t["ns"] + t["flush_ns"], 1)
                out.append("vmm=%s drive=%s rw=%s bs=%d region=%s ops=%d bytes=%d ns=%d "
                           "flush_ns=%d iops=%.1f mbps=%.3f"
                           % (vmm, drive, rw, bs * 1024, what, t["ops"], t["bytes"], t["ns"],
                              t["flush_ns"], t["ops"] * 1e9 / ns, t["bytes"] * 1e3 / ns))
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
    if len(args) != 4 or base_mib < 16 or base_mib % 16:
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
