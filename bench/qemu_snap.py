#!/usr/bin/python3
"""QEMU's own snapshot of the probe guest, for the peer comparison (bench/bench.sh).

usage: qemu_snap.py [--ignore-shared] OUT QMP_SOCK -- QEMU ARGS...

Starts QEMU (its command line must include -serial stdio and -qmp unix:QMP_SOCK,...),
waits for the probe's THAW_PROBE_READY line, then migrates the running VM to OUT with
`migrate "exec:cat > OUT"` over QMP (after setting x-ignore-shared when asked, so RAM in a
shared memory-backend-file stays out of the stream), waits for completion and quits.
Prints one line: create_us=N size_bytes=N (wall time of the migration, QMP round trips
included). Exit status 0 or 1 with the reason on stderr.
"""
import json
import os
import select
import socket
import subprocess
import sys
import time


def qmp_cmd(f, sock, cmd, args=None):
    msg = {"execute": cmd}
    if args is not None:
        msg["arguments"] = args
    sock.sendall((json.dumps(msg) + "\n").encode())
    while True:
        line = f.readline()
        if not line:
            raise RuntimeError("QMP closed during " + cmd)
        reply = json.loads(line)
        if "return" in reply:
            return reply["return"]
        if "error" in reply:
            raise RuntimeError("%s: %s" % (cmd, reply["error"].get("desc")))


def wait_ready(proc, timeout):
    """Reads the guest's serial output until its ready line."""
    buf = b""
    deadline = time.monotonic() + timeout
    while b"THAW_PROBE_READY" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
            raise RuntimeError("no THAW_PROBE_READY within %d s" % timeout)
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            raise RuntimeError("QEMU exited before the probe was ready")
        buf = buf[-256:] + chunk


def main(argv):
    ignore_shared = False
    if argv and argv[0] == "--ignore-shared":
        ignore_shared = True
        argv = argv[1:]
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write(__doc__)
        return 1
    out, qmp_path, qemu = argv[0], argv[1], argv[3:]
    proc = subprocess.Popen(qemu, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        wait_ready(proc, 300)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(qmp_path)
        f = sock.makefile("r")
        f.readline()  # greeting
        qmp_cmd(f, sock, "qmp_capabilities")
        if ignore_shared:
            qmp_cmd(f, sock, "migrate-set-capabilities",
                    {"capabilities": [{"capability": "x-ignore-shared", "state": True}]})
        t0 = time.monotonic_ns()
        qmp_cmd(f, sock, "migrate", {"uri": "exec:cat > " + out})
        while True:
            st = qmp_cmd(f, sock, "query-migrate").get("status")
            if st == "completed":
                break
            if st in ("failed", "cancelled"):
                raise RuntimeError("migration " + st)
            time.sleep(0.001)
        t1 = time.monotonic_ns()
        print("create_us=%d size_bytes=%d" % ((t1 - t0) // 1000, os.path.getsize(out)))
        qmp_cmd(f, sock, "quit")
        proc.wait(30)
        return 0
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as e:
        sys.stderr.write("qemu_snap: %s\n" % e)
        return 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
