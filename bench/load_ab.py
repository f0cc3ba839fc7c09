#!/usr/bin/env python3
"""Interleaved A/B pairs of the prepared path's load (bench/README.md): for N rounds, each
binary in turn starts `thaw --api-sock S --prepare mem-mib=128,vcpus=1`, and once it is
prepared the client times PUT /snapshot/load (request sent .. 204) and reads the
process's CPU (/proc/PID/task/*/schedstat) over the load and the 50 ms after it, and its
RSS before and after. Prints medians per binary.
usage: SNAP=probe128.snap bench/load_ab.py N THAW_A THAW_B [...]"""
import socket, subprocess, time, os, sys, statistics
bins = sys.argv[2:]
N = int(sys.argv[1])
snap = os.environ['SNAP']
res = {b: {'lat': [], 'cpu': [], 'rss': [], 'rss_after': []} for b in bins}
def cpu_ns(pid):
    t = 0
    for tid in os.listdir(f'/proc/{pid}/task'):
        try:
            t += int(open(f'/proc/{pid}/task/{tid}/schedstat').read().split()[0])
        except Exception: pass
    return t
def rss(pid):
    for l in open(f'/proc/{pid}/status'):
        if l.startswith('VmRSS'): return int(l.split()[1])
for i in range(N):
    for b in bins:
        sock = '/tmp/lab.sock'
        try: os.unlink(sock)
        except FileNotFoundError: pass
        p = subprocess.Popen([b, '--api-sock', sock, '--prepare', 'mem-mib=128,vcpus=1'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not os.path.exists(sock): time.sleep(0.005)
        time.sleep(0.15)
        r0 = rss(p.pid)
        body = '{"snapshot_path": "%s", "resume_vm": true}' % snap
        req = ('PUT /snapshot/load HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' % (len(body), body)).encode()
        s = socket.socket(socket.AF_UNIX); s.connect(sock)
        c0 = cpu_ns(p.pid)
        t0 = time.perf_counter_ns()
        s.sendall(req)
        d = s.recv(4096)
        t1 = time.perf_counter_ns()
        time.sleep(0.05)
        c1 = cpu_ns(p.pid)
        assert b'204' in d.split(b'\r\n')[0], d
        res[b]['lat'].append((t1 - t0) / 1000)
        res[b]['cpu'].append((c1 - c0) / 1000)
        res[b]['rss'].append(r0)
        res[b]['rss_after'].append(rss(p.pid))
        s.close(); p.kill(); p.wait()
for b in bins:
    r = res[b]
    print(b, 'load latency med %.0f us p10 %.0f' % (statistics.median(r['lat']), sorted(r['lat'])[len(r['lat'])//10]),
          '| cpu med %.0f us' % statistics.median(r['cpu']), '| rss prepared %d KiB, after %d KiB' % (statistics.median(r['rss']), statistics.median(r['rss_after'])))
