#!/usr/bin/env python3
"""Boots the probe guest under QEMU (microvm, TCG) and checks its answers.

Usage: selftest.py PROBE_ELF PROBESUM
Each check prints PASS or FAIL with its name; the exit status is 1 if any failed.
The checks: boot with 1 and 2 CPUs (MP table and ACPI MADT, hlt and poll idle), every
request's answer, touch/sum agreement with the host-side checksum tool, a checksum of
the guest's RAM computed on the host from QEMU's memory-backend file, and a snapshot
(QEMU migration to a file) taken in the middle of `compute` and restored in a new QEMU,
whose answer must equal an uninterrupted run.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ELF, PROBESUM = sys.argv[1], sys.argv[2]
TMP = tempfile.mkdtemp(prefix="probe-selftest.")
failures = 0


def check(name, ok, detail=""):
    global failures
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + detail), flush=True)
    if not ok:
        failures += 1


def probesum(*args):
    out = subprocess.run([PROBESUM] + [str(a) for a in args], check=True,
                         capture_output=True, text=True).stdout
    return int(out.strip(), 16)


def field(line, key):
    m = re.search(r"(?:^| )" + re.escape(key) + r"=(\S+)", line)
    return m.group(1) if m else None


class Guest:
    """One QEMU microvm running the probe, serial on a unix socket."""

    def __init__(self, name, smp, mem=256, append="", acpi=True, mem_file=None,
                 incoming=None):
        self.sock = os.path.join(TMP, name + ".serial")
        self.mon = os.path.join(TMP, name + ".mon")
        for p in (self.sock, self.mon):
            if os.path.exists(p):
                os.unlink(p)
        machine = "microvm" + ("" if acpi else ",acpi=off")
        cmd = ["qemu-system-x86_64", "-M", machine, "-accel", "tcg", "-cpu", "max",
               "-m", str(mem), "-smp", str(smp), "-display", "none", "-no-reboot",
               "-nodefaults", "-no-user-config",
               "-chardev", "socket,id=s0,path=%s,server=on,wait=on" % self.sock,
               "-serial", "chardev:s0",
               "-monitor", "unix:%s,server=on,wait=off" % self.mon,
               "-kernel", ELF]
        if append:
            cmd += ["-append", append]
        if mem_file:
            cmd += ["-object", "memory-backend-file,id=ram0,size=%dM,mem-path=%s,share=on"
                    % (mem, mem_file), "-machine", "memory-backend=ram0"]
        if incoming:
            cmd += ["-incoming", "exec:cat %s" % incoming]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(TMP, name + ".qemu.log"), "w"))
        deadline = time.monotonic() + 30
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("qemu did not start (see %s)" % TMP)
            time.sleep(0.005)
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(self.sock)
        self.s.settimeout(120)
        self.buf = b""

    def readline(self, timeout=120):
        self.s.settimeout(timeout)
        while b"\n" not in self.buf:
            data = self.s.recv(4096)
            if not data:
                raise RuntimeError("serial closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace").rstrip("\r")

    def request(self, req, timeout=120):
        self.s.sendall((req + "\n").encode())
        return self.readline(timeout)

    def monitor(self, cmd):
        deadline = time.monotonic() + 30
        while not os.path.exists(self.mon) and time.monotonic() < deadline:
            time.sleep(0.01)
        m = socket.socket(socket.AF_UNIX)
        m.connect(self.mon)
        m.settimeout(30)
        m.sendall((cmd + "\n").encode())
        out = b""
        end = time.monotonic() + 2
        m.settimeout(0.2)
        while time.monotonic() < end:
            try:
                d = m.recv(65536)
                if not d:
                    break
                out += d
                if out.rstrip().endswith(b"(qemu)") and cmd.encode() in out:
                    tail = out.split(cmd.encode(), 1)[1]
                    if tail.rstrip().endswith(b"(qemu)"):
                        break
            except socket.timeout:
                pass
        m.close()
        return out.decode(errors="replace")

    def close(self):
        try:
            self.s.close()
        finally:
            self.proc.kill()
            self.proc.wait()


def basic(name, smp, append="", acpi=True, expect_table=None):
    g = Guest(name, smp, append=append, acpi=acpi)
    try:
        ready = g.readline(60)
        boot_s = time.monotonic() - g.t0
        check(name + ": THAW_PROBE_READY line", ready == "THAW_PROBE_READY cpus=%d mem_mib=256"
              % smp, ready)
        print("     %s: qemu start to THAW_PROBE_READY %.1f ms" % (name, boot_s * 1000))
        check(name + ": ping", g.request("ping") == "PROBE pong")
        info = g.request("info")
        check(name + ": info cpus/online", field(info, "cpus") == str(smp) and
              field(info, "online") == str(smp), info)
        if expect_table:
            check(name + ": cpu table " + expect_table, field(info, "table") == expect_table, info)
        check(name + ": info memory", field(info, "mem_mib") == "256" and
              field(info, "free_start_mib") == "2" and field(info, "free_end_mib") == "256", info)

        t = g.request("touch 2 16 7")
        want = probesum("touch", 2, 16, 7)
        check(name + ": touch checksum equals host definition",
              field(t, "sum") == "0x%016x" % want, "%s want 0x%016x" % (t, want))
        s = g.request("sum 2 16")
        check(name + ": sum after touch equals touch", field(s, "sum") == field(t, "sum"), s)
        t2 = g.request("touch 100 8 1234")
        s2 = g.request("sum 100 8")
        check(name + ": second range touch/sum", field(t2, "sum") == field(s2, "sum") ==
              "0x%016x" % probesum("touch", 100, 8, 1234), t2 + " / " + s2)
        s3 = g.request("sum 2 16")
        check(name + ": other range untouched", field(s3, "sum") == field(t, "sum"), s3)

        c = g.request("compute 200000")
        want = [probesum("compute", 200000, i) for i in range(smp)]
        x = 0
        for w in want:
            x ^= w
        ok = field(c, "result") == "0x%016x" % x and all(
            field(c, "cpu%d" % i) == "0x%016x" % want[i] for i in range(smp))
        check(name + ": compute result on every cpu", ok, c)

        ts = g.request("touchscatter 8 3")
        want = probesum("scatter", 2, 8, 3)
        check(name + ": touchscatter", field(ts, "pages") == "2048" and
              field(ts, "sum") == "0x%016x" % want, "%s want 0x%016x" % (ts, want))
        tr = g.request("touchscatter 8 3 2 r")
        check(name + ": touchscatter read-back", field(tr, "sum") == field(ts, "sum"), tr)

        for cpu in range(smp):
            r = g.request("regs %d" % cpu)
            ok = (field(r, "cs") == "0x2b" and field(r, "ss") == "0x23" and
                  field(r, "cr4") == "0x620" and field(r, "efer") == "0x500" and
                  field(r, "xmm8") == "0x5eed%04xa5a5a5a5" % cpu and
                  field(r, "rflags") is not None and int(field(r, "rflags"), 16) & 0x3000 == 0x3000)
            check(name + ": regs cpu %d (CPL3, IOPL3, long mode, xmm marker)" % cpu, ok, r)

        w = g.request("w32 0x3000000 0xdeadbeef")
        r = g.request("r32 0x3000000")
        check(name + ": w32/r32", field(r, "value") == "0xdeadbeef", w + " / " + r)
        g.request("wbytes 0x3000010 0102030405060708")
        r = g.request("r64 0x3000010")
        check(name + ": wbytes/r64", field(r, "value") == "0x807060504030201", r)
        e = g.request("w64 0x100000 1")
        check(name + ": write into the probe refused", e.startswith("PROBE ERR w64"), e)
        e = g.request("touch 0 4 1")
        check(name + ": touch below 2 MiB refused", e.startswith("PROBE ERR touch"), e)
        e = g.request("sum 200 100")
        check(name + ": sum beyond RAM refused", e.startswith("PROBE ERR sum"), e)
        e = g.request("frobnicate")
        check(name + ": unknown request", e == "PROBE ERR frobnicate unknown request", e)
        e = g.request("x" * 300)
        check(name + ": over-long line", e == "PROBE ERR request line too long", e)
        e = g.request("fault")
        check(name + ": exception reported", e.startswith("PROBE FAULT cpu=0 vec=6 "), e)
        check(name + ": serving after an exception", g.request("ping") == "PROBE pong")
        n = g.request("count")
        check(name + ": count", n == "PROBE count %d" % (22 + smp), n)
        info = g.request("info")
        jobs = field(info, "jobs").split(",")
        check(name + ": every cpu did work", len(jobs) == smp and all(int(j) > 0 for j in jobs),
              info)
        if "idle=poll" not in append:
            check(name + ": serial interrupt delivered", int(field(info, "irq_serial")) > 0, info)
            if smp > 1:
                check(name + ": wake-up IPIs delivered", int(field(info, "irq_ipi")) > 0, info)
    finally:
        g.close()


def memory_file():
    """The host computes the checksum over QEMU's RAM file; it must equal the probe's."""
    name = "memfile"
    mf = os.path.join(TMP, "ram")
    g = Guest(name, 2, mem_file=mf)
    try:
        g.readline(60)
        t = g.request("touch 2 32 99")
        s_all = g.request("sum")
        g.request("ping")  # everything before this answer is in RAM
        check(name + ": host checksum of touched range from RAM file",
              probesum("sum", mf, 0, 2, 32) == int(field(t, "sum"), 16), t)
        check(name + ": host checksum of default sum range (2..256 MiB) from RAM file",
              probesum("sum", mf, 0, 2, 254) == int(field(s_all, "sum"), 16), s_all)
    finally:
        g.close()
        os.unlink(mf)


def snapshot_mid_compute():
    """Migrate to a file while `compute` runs on both CPUs, restore in a new QEMU."""
    name = "snapshot"
    n = 400000000
    img = os.path.join(TMP, "snap.mig")
    g = Guest(name, 2)
    try:
        g.readline(60)
        g.request("touch 2 8 5")
        before = g.request("regs 0")
        g.s.sendall(b"compute %d\n" % n)
        time.sleep(0.5)
        g.monitor("stop")
        try:
            early = g.readline(0.2)
        except (socket.timeout, TimeoutError):
            early = None
        check(name + ": snapshot taken mid-computation", early is None, str(early))
        g.monitor('migrate "exec:cat > %s"' % img)
        for _ in range(600):
            st = g.monitor("info migrate")
            if "completed" in st or "failed" in st:
                break
            time.sleep(0.1)
        check(name + ": migration to file completed", "completed" in st, st[-300:])
    finally:
        g.close()
    want = [probesum("compute", n, i) for i in range(2)]
    h = Guest(name + "-restored", 2, incoming=img)
    try:
        # The source was stopped before migrating, so the destination stays paused.
        for _ in range(300):
            st = h.monitor("info status")
            if ("paused" in st and "inmigrate" not in st) or "running" in st:
                break
            time.sleep(0.1)
        if "running" not in st:
            h.monitor("cont")
        c = h.readline(300)
        check(name + ": restored compute equals uninterrupted run",
              field(c, "cpu0") == "0x%016x" % want[0] and field(c, "cpu1") == "0x%016x" % want[1],
              "%s want %s" % (c, ["0x%016x" % w for w in want]))
        after = h.request("regs 0")
        same = all(field(before, k) == field(after, k) for k in
                   ("cr0", "cr3", "cr4", "efer", "gdt_base", "idt_base", "tr", "xmm8",
                    "apic_svr", "apic_lvtt", "apic_ticr"))
        check(name + ": registers equal across restore", same, before + " / " + after)
        s = h.request("sum 2 8")
        check(name + ": memory equal across restore",
              field(s, "sum") == "0x%016x" % probesum("touch", 2, 8, 5), s)
        n2 = h.request("count")
        check(name + ": request counter continues", n2 == "PROBE count 6", n2)
        e = h.request("fault")
        check(name + ": exception delivered after restore", e.startswith("PROBE FAULT cpu=0 vec=6 "), e)
        check(name + ": serving after an exception", h.request("ping") == "PROBE pong")
    finally:
        h.close()
        os.unlink(img)


def main():
    if os.environ.get("PROBE_SELFTEST_ONLY") == "snapshot":
        snapshot_mid_compute()
        return 1 if failures else 0
    basic("smp1", 1)
    basic("smp2", 2, expect_table="mptable")
    basic("smp2-madt", 2, append="probe.table=madt", expect_table="madt")
    basic("smp2-poll", 2, append="probe.idle=poll")
    memory_file()
    snapshot_mid_compute()
    print("%s: %d failure(s)" % ("FAIL" if failures else "PASS", failures))
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        rc = main()
    except Exception as e:  # a crash of the harness is a failure, not a pass
        import traceback
        traceback.print_exc()
        print("FAIL selftest harness: %r" % e)
        rc = 1
    if not failures:
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(rc)
