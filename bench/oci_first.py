#!/usr/bin/env python3
"""Times one engine command from its start to a line of its output.

usage: oci_first.py [--send LINE] [--stop SHELLCMD] [--timeout S] MATCH -- CMD...

Starts CMD with a pipe on stdin and stdout, writes LINE (if any) at once, and prints
`first_ms=<ms>` when output containing MATCH arrives; then runs SHELLCMD (if any: how
the container is ended, e.g. `ctr task kill`) and waits for CMD, printing
`end_ms=<ms>` (from the match to CMD's end), `rc=<status>` and `t0_ns=` (CMD's start on
the realtime clock, for comparing with the runtime's own timestamps). Exits 1 when CMD ends or
the timeout passes before the match (bench/oci.sh).
"""
import os
import select
import subprocess
import sys
import time


def main():
    args = sys.argv[1:]
    send, stop, timeout = None, None, 60.0
    while args and args[0].startswith("--"):
        if args[0] == "--send":
            send, args = args[1], args[2:]
        elif args[0] == "--stop":
            stop, args = args[1], args[2:]
        elif args[0] == "--timeout":
            timeout, args = float(args[1]), args[2:]
        else:
            break
    match, cmd = args[0], args[args.index("--") + 1:]
    t0_ns = time.time_ns()
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    if send is not None:
        p.stdin.write((send + "\n").encode())
        p.stdin.flush()
    buf = b""
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([p.stdout], [], [], 0.1)
        if not r:
            continue
        chunk = os.read(p.stdout.fileno(), 65536)
        if not chunk:
            break
        buf += chunk
        if match.encode() in buf:
            t1 = time.monotonic()
            if stop:
                subprocess.run(stop, shell=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            p.stdin.close()
            # drain until the engine is done, so its output pipe never fills
            while p.poll() is None and time.monotonic() < deadline:
                r, _, _ = select.select([p.stdout], [], [], 0.1)
                if r and not os.read(p.stdout.fileno(), 65536):
                    break
            rc = p.wait(timeout=max(1.0, deadline - time.monotonic()))
            print("first_ms=%.3f end_ms=%.3f rc=%d t0_ns=%d" %
                  ((t1 - t0) * 1000.0, (time.monotonic() - t1) * 1000.0, rc, t0_ns))
            return 0
    sys.stderr.write("oci_first: no '%s' from %s: %s\n" % (match, cmd[0], buf[-500:]))
    p.kill()
    return 1


if __name__ == "__main__":
    sys.exit(main())
