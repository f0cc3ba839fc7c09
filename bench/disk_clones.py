#!/usr/bin/python3
"""Disks that clone (issue 20): N clones over one base, and what a disk checkpoint costs.

usage: disk_clones.py clones THAW THAW_DISK PROBE DIR [--clones N] [--base-mib M] [--pairs P]
       disk_clones.py checkpoint THAW THAW_DISK PROBE DIR [--rounds R] [--disk-gib G]
                      [--alloc-mib A] [--no-fsync 1]

clones: a raw base image of M MiB (default 256) filled with data; the probe boots with it
  as drive d0, brings the drive's queue up by hand (guest/probe/PROTOCOL.md, section 4)
  with 16 read chains of 1 MiB (the disk's first 16 MiB, all into one guest buffer), one
  4 KiB write chain (at 64 MiB) and one flush chain, publishes none, and is snapshotted.
  Then N clones (default 100) are restored from it at once, each with
  `--drive id=d0,path=DIR/clone-K.qcow2,overlay-of=BASE` (thaw makes the overlay), and
  each publishes the 16 reads and its write (its own number in the block), then the flush,
  and checks every status byte. With all N running: the base's pages in the page cache
  (mincore through fincore; its cache is dropped with posix_fadvise(DONTNEED) before the
  clones start), the sum of the clones' PSS (/proc/PID/smaps_rollup), each overlay's
  allocated size (du) and `qemu-img check` of each. Then P pairs (default 20) of restores
  of the same snapshot, one with a ready-made overlay (thaw-disk overlay beforehand), one
  with overlay-of, in turn: the restore's devices phase (thaw --timing: devices_us less
  generation_us), whose difference is the overlay's creation at restore. Lines:
    clones=N base_mib=M region_mib=16 base_cached_kib= pss_sum_kib= pss_per_clone_kib=
      overlay_kib_median= overlay_kib_max= overlay_check_clean= restore_devices_us_median=
    pair=i devices_premade_us= devices_overlay_of_us= diff_us=
    pairs=P overlay_create_us_median= (the median of the differences)
checkpoint: a qcow2 image of G GiB (default 1) with its first A MiB (default 256)
  allocated (qemu-io), and R rounds (default 15) of three probe VMs with that image as a
  drive, each snapshotted through SIGUSR1 (--snapshot-then exit), in turn: a plain
  snapshot, --snapshot-disks external, --snapshot-disks internal. thaw's own time of the
  snapshot (its log line "snapshot PATH: ... N us") each. The external checkpoint's
  overlay is removed and the internal snapshot deleted (thaw-disk) after each round, so
  every round starts from the same image. --no-fsync 1 gives each VM
  --snapshot-no-fsync: the memory file is not fsynced (the disk checkpoint's own syncs
  still are), which takes the largest and noisiest part out of all three. Lines:
    round=i plain_us= external_us= internal_us= external_minus_plain_us=
      internal_minus_plain_us=
Exit status 0, 1 on a failure (the reason on stderr), 2 on a usage error.
"""
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import time

VIRTIO_BASE = 0xD0000000
RING = 0x400000  # descriptors; avail at +0x1000, used at +0x2000
HDRS = 0x408000  # 16-byte request headers
STATUS = 0x409000  # one status byte per chain
RBUF = 0x500000  # the 1 MiB every read lands in
WBUF = 0x600000  # the 4 KiB each clone writes
READS = 16
CHUNK = 1 << 20
WRITE_SECTOR = (64 << 20) // 512
QSIZE = 64


class Probe:
    """A thaw process running the probe, talked to through its serial console."""

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
                ln = self.buf[:nl].decode(errors="replace")
                self.buf = self.buf[nl + 1:]
                if want in ln:
                    return ln
                continue
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise RuntimeError("no '%s' from the guest within %d s" % (want, timeout))
            data = os.read(self.proc.stdout.fileno(), 65536)
            if not data:
                raise RuntimeError("the guest's console closed (waiting for '%s')" % want)
            self.buf += data

    def req(self, text):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()
        ans = self.line("PROBE ", 30)
        if "PROBE ERR" in ans or "PROBE FAULT" in ans:
            raise RuntimeError("'%s' answered '%s'" % (text, ans))
        return ans

    def r(self, bits, addr):
        ans = self.req("r%d %#x" % (bits, addr))
        return int(re.search(r"value=(?:0x)?([0-9a-fA-F]+)", ans).group(1), 16)

    def w(self, bits, addr, value):
        self.req("w%d %#x %#x" % (bits, addr, value))

    def wbytes(self, addr, data):
        for off in range(0, len(data), 96):
            self.req("wbytes %#x %s" % (addr + off, data[off:off + 96].hex()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


def le(n, v):
    return v.to_bytes(n, "little")


def blk_base(g):
    for k in range(8):
        base = VIRTIO_BASE + k * 0x1000
        if g.r(32, base) != 0x74726976:
            break
        if g.r(32, base + 8) == 2:
            return base
    raise RuntimeError("the probe sees no virtio-blk device")


def chains():
    """Descriptors and the chain heads: READS reads, one write, one flush."""
    desc, heads = [], []

    def chain(parts):
        heads.append(len(desc))
        for i, (addr, ln, flags) in enumerate(parts):
            nxt = len(desc) + 1 if i + 1 < len(parts) else 0
            desc.append((addr, ln, flags | (1 if i + 1 < len(parts) else 0), nxt))

    for i in range(READS):
        chain([(HDRS + 16 * i, 16, 0), (RBUF, CHUNK, 2), (STATUS + i, 1, 2)])
    chain([(HDRS + 16 * READS, 16, 0), (WBUF, 4096, 0), (STATUS + READS, 1, 2)])
    chain([(HDRS + 16 * (READS + 1), 16, 0), (STATUS + READS + 1, 1, 2)])
    return desc, heads


def queue_up(g, base):
    """The driver's bring-up of the drive's queue 0 with the chains, nothing published."""
    desc, _ = chains()
    hdrs = b"".join(le(4, 0) + le(4, 0) + le(8, i * CHUNK // 512) for i in range(READS))
    hdrs += le(4, 1) + le(4, 0) + le(8, WRITE_SECTOR) + le(4, 4) + le(4, 0) + le(8, 0)
    g.wbytes(HDRS, hdrs)
    g.wbytes(STATUS, b"\xff" * (READS + 2))
    g.wbytes(RING, b"".join(le(8, a) + le(4, n) + le(2, f) + le(2, x) for a, n, f, x in desc))
    for off, v in ((0x70, 0), (0x70, 1), (0x70, 3), (0x24, 1), (0x20, 1), (0x24, 0),
                   (0x20, 0), (0x70, 11)):
        g.w(32, base + off, v)
    if not g.r(32, base + 0x70) & 8:
        raise RuntimeError("the drive refused FEATURES_OK")
    g.wbytes(RING + 0x1000, bytes(8))
    g.wbytes(RING + 0x2000, bytes(8))
    for off, v in ((0x30, 0), (0x38, QSIZE), (0x80, RING), (0x84, 0), (0x90, RING + 0x1000),
                   (0x94, 0), (0xA0, RING + 0x2000), (0xA4, 0), (0x44, 1), (0x70, 15)):
        g.w(32, base + off, v)
    if g.r(32, base + 0x70) & 0x44 != 4:
        raise RuntimeError("the drive did not take DRIVER_OK")


def publish(g, base, heads, start):
    """Publishes `heads` from avail index `start`, notifies, waits until all are used."""
    g.wbytes(RING + 0x1000 + 4 + 2 * start, b"".join(le(2, h) for h in heads))
    g.w(16, RING + 0x1000 + 2, start + len(heads))
    g.w(32, base + 0x50, 0)
    end = time.monotonic() + 120
    while g.r(16, RING + 0x2002) != start + len(heads):
        if time.monotonic() > end:
            raise RuntimeError("the drive did not use the chains within 120 s")
        time.sleep(0.01)


def check_status(g, n):
    st = b"".join(le(4, g.r(32, STATUS + 4 * i)) for i in range((n + 3) // 4))[:n]
    if any(st):
        raise RuntimeError("request status bytes %s (0 expected)" % st.hex())


def pss_kib(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for ln in f:
            if ln.startswith("Pss:"):
                return int(ln.split()[1])
    raise RuntimeError("no Pss in /proc/%d/smaps_rollup" % pid)


def cached_kib(path):
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", path],
                         check=True, capture_output=True, text=True).stdout
    return int(out.split()[0]) // 1024


def du_kib(path):
    return os.stat(path).st_blocks // 2


def restore_devices_us(err_path):
    with open(err_path) as f:
        m = re.search(r"generation_us=(\d+) devices_us=(\d+)", f.read())
    if not m:
        raise RuntimeError("no restore timing in " + err_path)
    return int(m.group(2)) - int(m.group(1))


def clones(thaw, tool, kernel, d, n, base_mib, pairs):
    base = os.path.join(d, "base.img")
    snap = os.path.join(d, "base.snap")
    with open(base, "wb") as f:
        block = os.urandom(1 << 20)
        for i in range(base_mib):
            f.write(block[:-8] + le(8, i))
        f.flush()
        os.fsync(f.fileno())
    g = Probe([thaw, "--kernel", kernel, "--mem-mib", "64", "--drive",
               "id=d0,path=%s,ro=off" % base, "--snapshot", snap, "--snapshot-then", "exit"],
              os.path.join(d, "boot.err"))
    try:
        g.line("THAW_PROBE_READY", 120)
        queue_up(g, blk_base(g))
        g.proc.send_signal(signal.SIGUSR1)
        if g.proc.wait(timeout=120) != 0 or not os.path.exists(snap):
            raise RuntimeError("the snapshot failed (see %s/boot.err)" % d)
    finally:
        g.stop()
    fd = os.open(base, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    cached0 = cached_kib(base)
    _, heads = chains()
    running, devices = [], []
    try:
        for k in range(n):
            ov = os.path.join(d, "clone-%d.qcow2" % k)
            err = os.path.join(d, "clone-%d.err" % k)
            c = Probe([thaw, "--restore", snap, "--timing", "--drive",
                       "id=d0,path=%s,overlay-of=base.img" % ov], err)
            running.append(c)
            c.req("ping")
            devices.append(restore_devices_us(err))
            b = blk_base(c)
            c.wbytes(WBUF, ("clone %d\n" % k).encode())
            publish(c, b, heads[:READS + 1], 0)
            publish(c, b, heads[READS + 1:], READS + 1)
            check_status(c, READS + 2)
        cached = cached_kib(base)
        pss = sum(pss_kib(c.proc.pid) for c in running)
    finally:
        for c in running:
            c.stop()
    sizes, clean = [], 0
    for k in range(n):
        ov = os.path.join(d, "clone-%d.qcow2" % k)
        sizes.append(du_kib(ov))
        clean += subprocess.run(["qemu-img", "check", "-q", ov],
                                capture_output=True).returncode == 0
        os.unlink(ov)
    print("clones=%d base_mib=%d region_mib=%d base_cached_kib_before=%d base_cached_kib=%d "
          "pss_sum_kib=%d pss_per_clone_kib=%d overlay_kib_median=%d overlay_kib_max=%d "
          "overlay_check_clean=%d restore_devices_us_median=%d" %
          (n, base_mib, READS * CHUNK >> 20, cached0, cached, pss, pss // n,
           statistics.median(sizes), max(sizes), clean, statistics.median(devices)),
          flush=True)
    diffs = []
    for i in range(pairs):
        got = []
        for premade in (True, False):
            ov = os.path.join(d, "pair.qcow2")
            err = os.path.join(d, "pair.err")
            if premade:
                subprocess.run([tool, "overlay", ov, "base.img"], check=True,
                               capture_output=True)
            spec = "id=d0,path=%s" % ov + ("" if premade else ",overlay-of=base.img")
            c = Probe([thaw, "--restore", snap, "--timing", "--drive", spec], err)
            try:
                c.req("ping")
                got.append(restore_devices_us(err))
            finally:
                c.stop()
                os.unlink(ov)
        diffs.append(got[1] - got[0])
        print("pair=%d devices_premade_us=%d devices_overlay_of_us=%d diff_us=%d" %
              (i, got[0], got[1], got[1] - got[0]), flush=True)
    if diffs:
        print("pairs=%d overlay_create_us_median=%g" % (pairs, statistics.median(diffs)))


def checkpoint(thaw, tool, kernel, d, rounds, disk_gib, alloc_mib, no_fsync):
    img = os.path.join(d, "disk.qcow2")
    subprocess.run([tool, "create", img, "%dG" % disk_gib], check=True, capture_output=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 %dM" % alloc_mib, img],
                   check=True, capture_output=True)
    for r in range(rounds):
        got = {}
        for kind in ("none", "external", "internal"):
            name = "r%d-%s.snap" % (r, kind)
            snap = os.path.join(d, name)
            err = os.path.join(d, "ckpt.err")
            g = Probe([thaw, "--kernel", kernel, "--mem-mib", "64", "--log-level", "info",
                       "--drive", "id=d0,path=%s,ro=off" % img, "--snapshot", snap,
                       "--snapshot-then", "exit", "--snapshot-disks", kind] +
                      (["--snapshot-no-fsync"] if no_fsync else []), err)
            try:
                g.line("THAW_PROBE_READY", 120)
                g.req("ping")
                g.proc.send_signal(signal.SIGUSR1)
                rc = g.proc.wait(timeout=120)
            finally:
                g.stop()
            with open(err) as f:
                m = re.search(r"snapshot \S+: .* (\d+) us", f.read())
            if rc != 0 or not m:
                raise RuntimeError("round %d %s: the snapshot failed (see %s)" % (r, kind, err))
            got[kind] = int(m.group(1))
            os.unlink(snap)
            if kind == "external":
                os.unlink(img + ".after-" + name)
            if kind == "internal":
                subprocess.run([tool, "snapshot", "delete", img, name], check=True,
                               capture_output=True)
        print("round=%d plain_us=%d external_us=%d internal_us=%d external_minus_plain_us=%d "
              "internal_minus_plain_us=%d" %
              (r, got["none"], got["external"], got["internal"],
               got["external"] - got["none"], got["internal"] - got["none"]), flush=True)
    check = subprocess.run(["qemu-img", "check", "-q", img], capture_output=True)
    if check.returncode != 0:
        raise RuntimeError("qemu-img check of the image after the rounds: exit %d"
                           % check.returncode)


def opt(args, name, default):
    if name in args:
        i = args.index(name)
        v = int(args[i + 1])
        del args[i:i + 2]
        return v
    return default


def main(argv):
    args = argv[1:]
    try:
        if args[:1] == ["clones"]:
            n = opt(args, "--clones", 100)
            m = opt(args, "--base-mib", 256)
            p = opt(args, "--pairs", 20)
            if len(args) != 5 or n < 1 or m < 80 or p < 0:
                raise ValueError
            clones(args[1], args[2], args[3], args[4], n, m, p)
        elif args[:1] == ["checkpoint"]:
            r = opt(args, "--rounds", 15)
            gib = opt(args, "--disk-gib", 1)
            a = opt(args, "--alloc-mib", 256)
            nf = opt(args, "--no-fsync", 0)
            if len(args) != 5 or r < 1 or gib < 1 or a < 0 or a > gib * 1024:
                raise ValueError
            checkpoint(args[1], args[2], args[3], args[4], r, gib, a, nf)
        else:
            raise ValueError
    except (ValueError, IndexError):
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        return 2
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        sys.stderr.write("disk_clones: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
