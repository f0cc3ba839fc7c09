#!/usr/bin/python3
"""Turns a bench/bench.sh run directory into results.json, table.txt and PNG plots.

usage: report.py OUT_DIR [--check BASELINE.json] [--smoke] [--write-baseline FILE]

OUT_DIR/raw/<series>.txt holds one line per run of key=value pairs; OUT_DIR/meta.txt says
where the run happened. Every numeric key of every series gets median, p99, min, max, mean.
--check   exit 1, naming the figure, when a thaw restore is over 3x its floor (the
          plain path: floor_<shape>, a fresh VM; the prepared path: floor_prepared_<shape>,
          a VM built beforehand) measured in this run, or when that ratio is over 1.5x the
          ratio in BASELINE (compared only when the baseline was measured in the same kind
          of place: native, pvm, nested-tcg), or when the cold group misses issue 21's
          goals (check_cold). Times are compared by CHECK_STAT, the minimum (see there).
          Ratios, not absolute times, are held against the baseline: the shared machines'
          load moves both sides of a ratio measured interleaved (bench.sh --check), but
          moves absolute times 2x between runs; absolute regressions over 1.5x are notes
--smoke   no timing assertions: one pass per series with at least one good run, one per
          plot; prints "bench-smoke: N passed, N failed"
--write-baseline FILE [DIR...]  writes the figures --check compares against: each the
          median over OUT_DIR and the further run directories given (bench-check runs)
Standard library only.
"""
import json
import math
import os
import shutil
import statistics
import subprocess
import sys

SHAPES = ("128m1v", "512m2v")
PATHS = ("plain", "prepared")
BACKENDS = ("file", "uffd-ondemand", "uffd-prefetch")
CHECK_RATIO = 3.0
CHECK_REGRESSION = 1.5
# The statistic --check compares (issue 21). The project's machines are shared (2 cores,
# other jobs, steal time from the host): load only ever adds time. In eight --check runs
# at load average 5-7 the median plain restore moved 5x between runs, and the 10th
# percentile's ratio to the floor spanned 1.23-3.28 (one run failed the 3x check); the
# minimum of 30 interleaved runs gave ratios of 1.17-1.97 (plain) and 1.54-2.40
# (prepared) in the same eight runs. A run cannot be faster than the code allows, so a
# regression raises the minimum as well; load cannot lower it.
CHECK_STAT = "min"


# bench/disk_guest.py's measurements: rw, block KiB, region, label, issue 20's target.
DISK_LINUX_PLAN = (
    ("randwrite", 4, "first", "4k randwrite, first writes", " (issue 20: >= 0.6)"),
    ("write", 1024, "first", "1m write, first writes", " (issue 20: >= 0.6)"),
    ("read", 1024, "alloc", "1m read, allocated", " (issue 20: >= 0.8)"),
    ("randread", 4, "alloc", "4k randread, allocated", " (issue 20: >= 0.8)"),
    ("randread", 4, "backing", "4k randread, from the base", ""),
)


def num(v):
    try:
        f = float(v)
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def load_series(raw):
    """{series: [ {key: float} ]}, failed runs (rc != 0) left out."""
    out = {}
    for name in sorted(os.listdir(raw)):
        if not name.endswith(".txt") or name.endswith(".last-error.txt"):
            continue
        runs = []
        with open(os.path.join(raw, name)) as f:
            for line in f:
                rec = {}
                for tok in line.split():
                    k, sep, v = tok.partition("=")
                    if sep and num(v) is not None:
                        rec[k] = num(v)
                if not rec or rec.get("rc", 0) != 0:
                    continue
                if "answer_us" in rec and rec["answer_us"] == 0:
                    continue
                derive(rec)
                runs.append(rec)
        out[name[:-4]] = runs
    return out


def derive(r):
    """Figures computed from thaw's own clock (all relative to its main())."""
    p = r.get("process_to_restore_us")
    if p is not None and r.get("first_run_us"):
        r["restore_to_first_run_us"] = r["first_run_us"] - p
    if p is not None and r.get("first_line_us"):
        r["restore_to_answer_us"] = r["first_line_us"] - p
    if "vmrss_kb" in r and "guest_rss_kb" in r:
        r["vmm_overhead_kb"] = r["vmrss_kb"] - r["guest_rss_kb"]
    # spawn's fork .. thaw's main(), give or take the answer's trip through the pipe (the
    # same for every series): exec and loading for a bare thaw, the whole jail for a jailed.
    if r.get("answer_us") and r.get("first_line_us"):
        r["start_to_main_us"] = r["answer_us"] - r["first_line_us"]
    # The cold group: guest page faults are the uffd handler's fault events when memory
    # came through uffd (the process's own faults then count its staging buffer too), else
    # the process's faults (each a guest page the kernel filled from the file, plus the
    # VMM's own ~200); storage reads in MiB.
    if "uffd_faults" in r:
        r["faults"] = r["uffd_faults"]
    elif "minflt" in r:
        r["faults"] = r["minflt"] + r.get("majflt", 0)
    if "io_read_bytes" in r:
        r["read_mib"] = r["io_read_bytes"] / 1048576.0


def stats(vals):
    v = sorted(vals)
    n = len(v)
    return {
        "n": n,
        "median": statistics.median(v),
        "p10": v[max(0, math.ceil(0.10 * n) - 1)],
        "p99": v[max(0, math.ceil(0.99 * n) - 1)],
        "min": v[0],
        "max": v[-1],
        "mean": round(statistics.fmean(v), 1),
    }


def summarize(series):
    res = {}
    for name, runs in series.items():
        keys = sorted({k for r in runs for k in r if k not in ("run", "rc", "exit", "n")})
        res[name] = {"runs": len(runs),
                     "metrics": {k: stats([r[k] for r in runs if k in r]) for k in keys}}
    return res


def med(res, series, metric, what="median"):
    m = res.get(series, {}).get("metrics", {}).get(metric)
    return m[what] if m else None


def ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


def floor_of(shape, path):
    """The floor a restore path is held against: a fresh VM for the plain path, a VM built
    beforehand (bench/floor --order prepared) for the prepared one."""
    return ("floor_prepared_" if path == "prepared" else "floor_") + shape


def ratios(res, what="median"):
    out = {}
    for shape in SHAPES:
        for path in PATHS:
            floor = med(res, floor_of(shape, path), "total_us", what)
            for be in BACKENDS:
                s = "thaw_%s_%s_%s" % (shape, path, be)
                if s not in res:
                    continue
                out[s + ".restore_to_first_run/floor"] = ratio(
                    med(res, s, "restore_to_first_run_us", what), floor)
                out[s + ".answer/floor_proc"] = ratio(
                    med(res, s, "answer_us"), med(res, "floor_proc_128m1v", "answer_us"))
    thaw = med(res, "thaw_128m1v_plain_file", "answer_us")
    thawp = med(res, "thaw_128m1v_prepared_file", "answer_us")
    for q in ("qemu_restore_128m1v_exec", "qemu_restore_128m1v_shared"):
        out["thaw_plain/" + q] = ratio(thaw, med(res, q, "answer_us"))
        out["thaw_prepared/" + q] = ratio(thawp, med(res, q, "answer_us"))
    out["thaw_boot/qemu_boot"] = ratio(med(res, "boot_probe_128m1v", "answer_us"),
                                       med(res, "qemu_boot_128m1v", "answer_us"))
    out["floor_naive/floor"] = ratio(med(res, "floor_naive_128m1v", "total_us"),
                                     med(res, "floor_128m1v", "total_us"))
    for shape in SHAPES:
        out["floor_prepared_%s/floor" % shape] = ratio(
            med(res, "floor_prepared_" + shape, "total_us"), med(res, "floor_" + shape, "total_us"))
    # Issue 6: the load through the API against the direct restore of this run.
    for path in PATHS:
        api, direct = "api_128m1v_%s_file" % path, "thaw_128m1v_%s_file" % path
        out["api_%s.request_to_answer/direct_restore_to_answer" % path] = ratio(
            med(res, api, "api_req_to_answer_us"), med(res, direct, "restore_to_answer_us"))
        out["api_%s.answer/direct_answer" % path] = ratio(
            med(res, api, "answer_us"), med(res, direct, "answer_us"))
    # Issue 8: the jail's cost, and N at once against one at a time.
    out["jail.jailed/unjailed"] = ratio(med(res, "jail_128m1v_jailed", "answer_us"),
                                        med(res, "jail_128m1v_unjailed", "answer_us"))
    for name in res:
        if name.startswith("jail_at_once_") and not name.endswith("_wall"):
            kind = name.rsplit("_", 1)[1]
            one = med(res, "jail_128m1v_" + kind, "answer_us")
            out[name + ".each/one_at_a_time"] = ratio(med(res, name, "answer_us"), one)
            out[name + ".wall/one_at_a_time"] = ratio(med(res, name + "_wall", "wall_us"), one)
            if kind == "jailed":
                # Does the jail cost more when many start at once than alone?
                out[name + ".jailed/unjailed"] = ratio(
                    med(res, name, "answer_us"), med(res, name[:-len("jailed")] + "unjailed", "answer_us"))
    return {k: v for k, v in out.items() if v is not None}


def deltas(res):
    """Differences in microseconds (medians), for the targets stated as an absolute margin."""
    out = {}

    def d(key, a, b):
        if a is not None and b is not None:
            out[key] = round(a - b, 1)
    for path in PATHS:
        api, direct = "api_128m1v_%s_file" % path, "thaw_128m1v_%s_file" % path
        # Issue 6's target: a load through the API within 0.3 ms of a direct restore.
        d("api_%s.request_to_204-direct_restore_to_running" % path,
          med(res, api, "api_req_us"), med(res, direct, "running_us"))
        d("api_%s.request_to_answer-direct_restore_to_answer" % path,
          med(res, api, "api_req_to_answer_us"), med(res, direct, "restore_to_answer_us"))
        # What the socket, HTTP and JSON add around the VMM's own load.
        d("api_%s.request_to_204-load_snapshot_metric" % path,
          med(res, api, "api_req_us"), med(res, api, "m_load_snapshot_us"))
    d("jail.jailed-unjailed.answer", med(res, "jail_128m1v_jailed", "answer_us"),
      med(res, "jail_128m1v_unjailed", "answer_us"))
    d("jail.jailed-unjailed.start_to_main", med(res, "jail_128m1v_jailed", "start_to_main_us"),
      med(res, "jail_128m1v_unjailed", "start_to_main_us"))
    return out


COLD_STRATEGIES = ("file", "uffd-ondemand", "uffd-prefetch", "uffd-prefetch-sorted")


def cold_sizes(res):
    return sorted({int(k.split("_")[1][:-1]) for k in res if k.startswith("cold_")})


def cold_ratios(res, what="median"):
    """Issue 21's cold figures: each case's restore .. first answer against the warm file
    path of the same working set; cold prefetch against cold on demand (time, faults)."""
    out = {}
    for ws in cold_sizes(res):
        base = med(res, "cold_%dm_warm_file" % ws, "restore_to_answer_us", what)
        for cache in ("warm", "cold"):
            for st in COLD_STRATEGIES:
                s = "cold_%dm_%s_%s" % (ws, cache, st)
                if s in res:
                    out[s + ".answer/warm_file"] = ratio(med(res, s, "restore_to_answer_us", what), base)
        od = "cold_%dm_cold_uffd-ondemand" % ws
        for st in ("uffd-prefetch", "uffd-prefetch-sorted", "file"):
            s = "cold_%dm_cold_%s" % (ws, st)
            out["cold_%dm.cold_ondemand/cold_%s" % (ws, st)] = ratio(
                med(res, od, "restore_to_answer_us", what), med(res, s, "restore_to_answer_us", what))
            f, fo = med(res, s, "faults"), med(res, od, "faults")
            if f is not None and fo:
                out["cold_%dm.cold_%s.faults_saved_vs_ondemand" % (ws, st)] = round(1 - f / fo, 3)
    return {k: v for k, v in out.items() if v is not None}


def ms(us):
    return "-" if us is None else ("%.2f" % (us / 1000.0))


def table(res, meta, rat):
    rows = []
    crat = cold_ratios(res)

    def row(label, series, metric, note=""):
        m = res.get(series, {}).get("metrics", {}).get(metric)
        if m:
            rows.append("%-58s %9s %9s %9s %4d  %s" % (label, ms(m["median"]), ms(m["p99"]),
                                                     ms(m["min"]), m["n"], note))

    lines = ["where: %s (%s)" % (meta.get("where"), meta.get("where_text", "")),
             "%-58s %9s %9s %9s %4s  %s" % ("figure (ms)", "median", "p99", "min", "n", "ratio")]
    for shape in SHAPES:
        row("floor %s: open .. first instruction" % shape, "floor_" + shape, "total_us")
    for shape in SHAPES:
        row("floor prepared %s: mmap over the slot .. first insn" % shape,
            "floor_prepared_" + shape, "total_us",
            "x%s of floor" % rat.get("floor_prepared_%s/floor" % shape, "-"))
    row("floor naive order 128m1v", "floor_naive_128m1v", "total_us",
        "x%s of floor" % rat.get("floor_naive/floor", "-"))
    row("floor process start .. first instruction", "floor_proc_128m1v", "answer_us")
    for shape in SHAPES:
        for path in PATHS:
            for be in BACKENDS:
                s = "thaw_%s_%s_%s" % (shape, path, be)
                if s not in res:
                    continue
                tag = "%s %s %s" % (shape, path, be)
                row("thaw %s: restore .. vCPUs running" % tag, s, "running_us")
                row("thaw %s: restore .. first instruction" % tag, s, "restore_to_first_run_us",
                    "x%s of %s" % (rat.get(s + ".restore_to_first_run/floor", "-"),
                                   "prepared floor" if path == "prepared" else "floor"))
                row("thaw %s: restore .. first answer" % tag, s, "restore_to_answer_us")
                row("thaw %s: process start .. first answer" % tag, s, "answer_us")
    gen, keep = (med(res, s, "running_us") for s in ("thaw_128m1v_prepared_file",
                                                      "thaw_128m1v_prepared_file_keepgen"))
    row("thaw 128m1v prepared file, --keep-generation: restore .. running",
        "thaw_128m1v_prepared_file_keepgen", "running_us",
        "new generation ID costs %+.3f ms (target <= +0.05)" % ((gen - keep) / 1000.0)
        if gen is not None and keep is not None else "")
    row("thaw snapshot create 256 MiB", "create_256m1v", "create_us")
    for shape in SHAPES:
        s = "boot_probe_" + shape
        row("cold boot probe %s: process .. READY" % shape, s, "answer_us")
        row("cold boot probe %s: first_run_us" % shape, s, "first_run_us")
        row("cold boot probe %s: first_line_us" % shape, s, "first_line_us")
    row("QEMU microvm boot probe: process .. READY", "qemu_boot_128m1v", "answer_us",
        "thaw/QEMU x%s" % rat.get("thaw_boot/qemu_boot", "-"))
    row("QEMU snapshot create (migrate to file)", "qemu_create_128m1v", "create_us")
    row("QEMU restore -incoming exec: process .. answer", "qemu_restore_128m1v_exec", "answer_us",
        "thaw plain/QEMU x%s" % rat.get("thaw_plain/qemu_restore_128m1v_exec", "-"))
    row("QEMU restore x-ignore-shared: process .. answer", "qemu_restore_128m1v_shared",
        "answer_us",
        "thaw plain/QEMU x%s" % rat.get("thaw_plain/qemu_restore_128m1v_shared", "-"))
    for name in sorted((k for k in res if k.startswith("clones_")), key=lambda k: int(k[7:])):
        pss = med(res, name, "pss_kb")
        row("clones N=%s: per-clone process .. answer" % name[7:], name, "answer_us",
            "PSS median %.1f MiB" % (pss / 1024) if pss else "")
    row("Linux guest boot: process .. THAW_GUEST_READY", "boot_linux", "answer_us")
    acpi, noacpi = med(res, "boot_linux", "answer_us"), med(res, "boot_linux_noacpi", "answer_us")
    row("  same with --no-acpi", "boot_linux_noacpi", "answer_us",
        "ACPI adds %+.0f ms" % ((acpi - noacpi) / 1000) if acpi and noacpi else "")
    for ws in cold_sizes(res):
        for cache in ("warm", "cold"):
            for st in COLD_STRATEGIES:
                s = "cold_%dm_%s_%s" % (ws, cache, st)
                if s not in res:
                    continue
                extra = ""
                if cache == "cold" and st != "uffd-ondemand":
                    extra = "; cold on demand x%s of this, %s%% fewer faults" % (
                        crat.get("cold_%dm.cold_ondemand/cold_%s" % (ws, st), "-"),
                        "%.1f" % (100 * crat["cold_%dm.cold_%s.faults_saved_vs_ondemand" % (ws, st)])
                        if "cold_%dm.cold_%s.faults_saved_vs_ondemand" % (ws, st) in crat else "-")
                row("cold %3d MiB ws, %s cache, %s: restore .. answer" % (ws, cache, st), s,
                    "restore_to_answer_us",
                    "x%s of warm file; faults %s, read %s MiB%s" % (
                        crat.get(s + ".answer/warm_file", "-"),
                        "%.0f" % med(res, s, "faults") if med(res, s, "faults") is not None else "-",
                        "%.1f" % med(res, s, "read_mib") if med(res, s, "read_mib") is not None else "-",
                        extra))
    dl = deltas(res)
    for metric, label in (("get_rtt_us", "API GET / round trip, one kept-alive connection"),
                          ("echo_rtt_us", "  same-size round trip, bare socket"),
                          ("new_conn_us", "  connect + GET / on a new connection"),
                          ("load_inproc_us", "  PUT /snapshot/load parse+route, no socket")):
        m = med(res, "api_overhead", metric)
        if m is not None:
            # Microseconds here, not the table's ms: these are far below a millisecond.
            rows.append("%-58s %9s %9s %9s %4s  %s" % (
                label + " (us)", "%.2f" % m, "-", "-", "%d" % (med(res, "api_overhead", "requests") or 0),
                "API overhead %.2f us (target <= 50)" % med(res, "api_overhead", "overhead_us")
                if metric == "get_rtt_us" else ""))
    # Issue 14: API GET / p99 while the guest floods a device, against idle (microseconds).
    for dev in ("rng", "vsock", "net"):
        s = "flood_" + dev
        for metric, label in (("idle_p99_us", "GET / p99 while the guest idles"),
                              ("flood_p99_us", "GET / p99 while it floods %s" % dev)):
            m = res.get(s, {}).get("metrics", {}).get(metric)
            if m:
                r = med(res, s, "p99_ratio")
                rows.append("%-58s %9.1f %9.1f %9.1f %4d  %s" % (
                    "flood %s: %s (us)" % (dev, label), m["median"], m["p99"], m["min"], m["n"],
                    "flooded/idle x%.2f (target <= 2)" % r
                    if metric == "flood_p99_us" and r is not None else ""))
    # Issue 19: what a device delivers under a 1 MiB/s bandwidth limit while the probe
    # floods it (KiB/s; the ratio to the limit should stay within 5% of 1).
    for dev in ("blk", "net", "rng"):
        s = "ratelimit_" + dev
        m = res.get(s, {}).get("metrics", {}).get("achieved_Bps")
        if m:
            r = med(res, s, "ratio")
            rows.append("%-58s %9.1f %9.1f %9.1f %4d  %s" % (
                "rate limit %s: achieved under 1 MiB/s (KiB/s)" % dev, m["median"] / 1024.0,
                m["p99"] / 1024.0, m["min"] / 1024.0, m["n"],
                "achieved/limit %.4f (target 0.95-1.05)" % r if r is not None else ""))
    # Issue 20: a drive's 4 KiB reads under the probe's flood, qcow2 against raw (MiB/s).
    raw_bps = med(res, "disk_raw", "achieved_Bps")
    for kind, label in (("raw", "raw file"), ("qcow2", "qcow2, allocated cluster"),
                        ("overlay", "qcow2 overlay, read from its backing file")):
        m = res.get("disk_" + kind, {}).get("metrics", {}).get("achieved_Bps")
        if m:
            k = med(res, "disk_" + kind, "achieved_Bps")
            rows.append("%-58s %9.1f %9.1f %9.1f %4d  %s" % (
                "disk %s: 4 KiB reads (MiB/s)" % label, m["median"] / 1048576.0,
                m["p99"] / 1048576.0, m["min"] / 1048576.0, m["n"],
                "x%.2f of raw (issue 20: reads >= 0.8)" % (k / raw_bps)
                if kind != "raw" and raw_bps else ""))
    # Issue 20, in the Linux guest (bench/disk_guest.py): the kernel agent's timed bio
    # loops at queue depth 1 on a raw file and a qcow2 overlay, under thaw and QEMU.
    # Series disk_linux_<vmm>_<drive>_<rw>_<region>; IOPS for 4 KiB, MB/s for 1 MiB.
    for rw, bs, region, label, target in DISK_LINUX_PLAN:
        unit = "IOPS" if bs == 4 else "MB/s"
        key = "iops" if bs == 4 else "mbps"
        thaw_raw = med(res, "disk_linux_thaw_raw_%s_%s" % (rw, region), key)
        qemu_q = med(res, "disk_linux_qemu_qcow2_%s_%s" % (rw, region), key)
        for vmm in ("thaw", "qemu"):
            vraw = med(res, "disk_linux_%s_raw_%s_%s" % (vmm, rw, region), key)
            for drive in ("raw", "qcow2"):
                s_ = "disk_linux_%s_%s_%s_%s" % (vmm, drive, rw, region)
                m = res.get(s_, {}).get("metrics", {}).get(key)
                if not m:
                    continue
                note = ""
                if drive == "qcow2" and vraw:
                    note = "x%.2f of %s raw%s" % (m["median"] / vraw, vmm, target)
                    if vmm == "thaw" and qemu_q:
                        note += "; x%.2f of QEMU's qcow2" % (m["median"] / qemu_q)
                elif vmm == "qemu" and thaw_raw:
                    note = "thaw raw x%.2f of it" % (thaw_raw / m["median"])
                rows.append("%-58s %9.2f %9.2f %9.2f %4d  %s" % (
                    "disk Linux %s %s: %s (%s)" % (vmm, drive, label, unit),
                    m["median"], m["p99"], m["min"], m["n"], note))
    # Issue 20: N clones restored on their own overlays of one base (diskclones), and
    # what a drive's checkpoint adds to a VM snapshot (diskckpt; ms like the table).
    dc = res.get("diskclones", {}).get("metrics", {})
    if dc.get("clones"):
        n = dc["clones"]["median"]
        rows.append("%-58s %9.1f %9s %9s %4d  %s" % (
            "%d clones over one base: base in the page cache (MiB)" % n,
            dc["base_cached_kib"]["median"] / 1024.0, "-", "-", dc["clones"]["n"],
            "the %d MiB every clone read, readahead included: one copy"
            % dc["region_mib"]["median"]))
        rows.append("%-58s %9.1f %9s %9s %4d  %s" % (
            "%d clones over one base: PSS per clone (MiB)" % n,
            dc["pss_per_clone_kib"]["median"] / 1024.0, "-", "-", dc["clones"]["n"],
            "sum %.1f MiB" % (dc["pss_sum_kib"]["median"] / 1024.0)))
        rows.append("%-58s %9.0f %9.0f %9s %4d  %s" % (
            "%d clones over one base: overlay allocated (KiB)" % n,
            dc["overlay_kib_median"]["median"], dc["overlay_kib_max"]["median"], "-",
            dc["clones"]["n"], "median, max; %d of %d pass qemu-img check"
            % (dc["overlay_check_clean"]["median"], n)))
    row("restore's devices phase, ready-made overlay", "diskclones_overlay", "devices_premade_us")
    row("restore's devices phase, overlay-of (made at restore)", "diskclones_overlay",
        "devices_overlay_of_us")
    row("  per-pair difference: the overlay's creation at restore", "diskclones_overlay",
        "diff_us", "issue 20: <= 0.2 ms")
    row("disk_create_overlay alone (the restore's call)", "diskckpt_calls", "overlay_us",
        "issue 20: <= 0.2 ms")
    for s, tag in (("diskckpt", ""), ("diskckpt_nofsync", ", no fsync")):
        row("probe VM snapshot%s, 1 GiB qcow2 (256 MiB used)" % tag, s, "plain_us")
        row("  with --snapshot-disks external", s, "external_us")
        row("  with --snapshot-disks internal", s, "internal_us")
        row("  per-round difference: external", s, "external_minus_plain_us",
            "issue 20: <= 5 ms")
        row("  per-round difference: internal", s, "internal_minus_plain_us",
            "issue 20: <= 5 ms")
    row("external checkpoint's disk calls alone (flush, overlay, open)", "diskckpt_calls",
        "external_us", "issue 20: <= 5 ms")
    row("internal checkpoint's disk call alone (snapshot create)", "diskckpt_calls",
        "internal_us", "issue 20: <= 5 ms")
    for part in ("overlay", "external", "internal"):
        row("  %s: CPU time of the same calls" % part, "diskckpt_calls", part + "_cpu_us",
            "no fdatasync: the wall time is CPU" if part == "overlay"
            else "the rest of the wall time is waiting (fdatasync)")
    for path in PATHS:
        s, direct = "api_128m1v_%s_file" % path, "thaw_128m1v_%s_file" % path
        if s not in res:
            continue
        tag = "API 128m1v %s" % path
        row("%s: process start .. socket accepts" % tag, s, "api_ready_us")
        row("%s: PUT /snapshot/load sent .. 204" % tag, s, "api_req_us",
            "%+.2f ms vs direct restore .. running" %
            (dl["api_%s.request_to_204-direct_restore_to_running" % path] / 1000.0)
            if "api_%s.request_to_204-direct_restore_to_running" % path in dl else "")
        row("%s: thaw's latencies_us.load_snapshot" % tag, s, "m_load_snapshot_us",
            "client - this: %.2f ms" % (dl["api_%s.request_to_204-load_snapshot_metric" % path] / 1000.0)
            if "api_%s.request_to_204-load_snapshot_metric" % path in dl else "")
        row("%s: the API server's load_snapshot_request_us" % tag, s, "m_api_load_request_us")
        row("%s: PUT sent .. first answer" % tag, s, "api_req_to_answer_us",
            "x%s of direct restore .. answer" %
            rat.get("api_%s.request_to_answer/direct_restore_to_answer" % path, "-"))
        row("%s: restore .. first answer (thaw clock)" % tag, s, "restore_to_answer_us")
        row("%s: process start .. first answer" % tag, s, "answer_us",
            "x%s of direct" % rat.get("api_%s.answer/direct_answer" % path, "-"))
        row("  direct %s: restore .. vCPUs running" % path, direct, "running_us")
        row("  direct %s: restore .. first answer" % path, direct, "restore_to_answer_us")
        row("  direct %s: process start .. first answer" % path, direct, "answer_us")
    for kind in ("unjailed", "jailed"):
        s = "jail_128m1v_" + kind
        row("%s static thaw 128m1v: process start .. first answer" % kind, s, "answer_us",
            "x%s of unjailed" % rat.get("jail.jailed/unjailed", "-") if kind == "jailed" else "")
        row("%s static thaw 128m1v: process start .. thaw main" % kind, s, "start_to_main_us")
        row("%s static thaw 128m1v: restore .. first answer" % kind, s, "restore_to_answer_us")
    row("jail setup (thaw-jailer -v: start .. execve of thaw)", "jail_128m1v_jailed", "jail_setup_us")
    for name in sorted(k for k in res if k.startswith("jail_at_once_") and not k.endswith("_wall")):
        n, kind = name.split("_")[3], name.split("_")[4]
        row("%s %s at once: each process start .. answer" % (n, kind), name, "answer_us",
            "x%s of one at a time" % rat.get(name + ".each/one_at_a_time", "-") +
            ("; x%s of unjailed at once" % rat[name + ".jailed/unjailed"]
             if name + ".jailed/unjailed" in rat else ""))
        row("%s %s at once: wall, first start .. last answer" % (n, kind), name + "_wall", "wall_us",
            "x%s of one at a time" % rat.get(name + ".wall/one_at_a_time", "-"))
        row("%s %s at once: jail setup" % (n, kind), name, "jail_setup_us")
    for cfg, label in (("plain", "no jail (exec only)"), ("jail", "jail, no cgroups"),
                       ("cgroups", "jail + cgroups"), ("cgroups_pidns", "jail + cgroups + PID ns")):
        s = "jail_setup_" + cfg
        row("bench_jail setup %s" % label, s, "setup_us",
            "10 at once: each %s ms, wall %s ms" % (ms(med(res, s, "at_once_each_us")),
                                                    ms(med(res, s, "ten_at_once_wall_us")))
            if s in res else "")
    # thaw-pool (issue 17): a stocked pool's clone requests, bursts, the sustained rate.
    fl = "fleet_latency_128m1v"
    row("fleet 128m1v stocked: request .. running (pool's clock)", fl, "pool_latency_us")
    row("fleet 128m1v stocked: request .. 201 (client)", fl, "request_us")
    row("fleet 128m1v stocked: request .. first answer (ping)", fl, "answer_us")
    for name in sorted((k for k in res if k.startswith("fleet_burst_")),
                       key=lambda k: int(k.split("_")[2])):
        n = name.split("_")[2]
        row("fleet %s at once: first request .. all answered" % n, name, "wall_us",
            "PSS/idle clone %s KiB (guest RAM %s, VMM %s; private dirty %s KiB), misses %s" % (
                med(res, name, "pss_kb"), med(res, name, "guest_pss_kb"),
                med(res, name, "vmm_pss_kb"), med(res, name, "private_dirty_kb"),
                med(res, name, "misses")))
        row("fleet %s at once: first request .. last 201" % n, name, "post_us")
    for name in sorted((k for k in res if k.startswith("fleet_prepare_")),
                       key=lambda k: int(k.split("_")[2])):
        row("fleet: preparing a stock of %s" % name.split("_")[2], name, "prepare_us",
            "held: PSS %s KiB, RSS %s KiB in all" % (med(res, name, "pss_total_kb"),
                                                     med(res, name, "rss_total_kb")))
    mem = []
    for key, who in (("fleet_rate", "one client"), ("fleet_rate_par", "a client per core")):
        rate = res.get(key, {}).get("metrics", {})
        if "per_s" in rate:
            mem.append("fleet sustained (request, answer, delete; refill included; %s): "
                       "%.1f clones/s over %.1f s (%d clones, %d misses)" % (
                           who, rate["per_s"]["median"], rate["seconds"]["median"],
                           rate["clones"]["median"], rate.get("misses", {}).get("median", 0)))
    for s, label in (("boot_probe_128m1v", "cold-booted probe 128 MiB"),
                     ("thaw_128m1v_plain_file", "restored probe 128 MiB")):
        m = res.get(s, {}).get("metrics", {})
        if "vmrss_kb" in m:
            mem.append("memory %s: VmRSS %.0f KiB (anon %.0f, file %.0f), guest pages %.0f KiB, "
                       "VMM overhead %.0f KiB, PSS %.0f KiB" % (
                           label, m["vmrss_kb"]["median"], m.get("rss_anon_kb", {}).get("median", 0),
                           m.get("rss_file_kb", {}).get("median", 0),
                           m.get("guest_rss_kb", {}).get("median", 0),
                           m.get("vmm_overhead_kb", {}).get("median", 0),
                           m.get("pss_kb", {}).get("median", 0)))
    perf = res.get("perf_128m1v_plain_file", {}).get("metrics", {})
    if perf:
        mem.append("perf stat per plain restore (medians, whole process until SIGINT): " + ", ".join(
            "%s=%g" % (k[5:], v["median"]) for k, v in sorted(perf.items()) if k.startswith("perf_")))
    usdt = res.get("usdt_128m1v_plain_file", {}).get("metrics", {})
    if usdt:
        mem.append("USDT (uprobes, from restore_start, us): " + ", ".join(
            "%s=%g" % (k[5:-3], v["median"]) for k, v in
            sorted(usdt.items(), key=lambda kv: kv[1]["median"]) if k.startswith("usdt_")))
    return "\n".join(lines + rows + mem) + "\n"


PHASES = ("open", "vm", "vcpus", "state", "devices", "start", "first insn", "first answer")


def phase_row(res, s):
    """Median phase lengths (us): thaw's restore phases, or the floor's mapped to them."""
    m = res[s]["metrics"]

    def g(k):
        return m[k]["median"] if k in m else 0.0
    if s.startswith("floor_prepared_"):
        return [0, g("mmap_us"), 0, g("state_us"), 0, 0, g("run_us"), 0]
    if s.startswith("floor_"):
        return [g("open_us"), g("vm_us") + g("mmap_us") + g("slot_us") + g("irqchip_us") + g("pit_us"),
                g("vcpus_us"), g("state_us"), 0, 0, g("run_us"), 0]
    pts = [g("opened_us"), g("vm_created_us"), g("vcpus_created_us"), g("state_set_us"),
           g("devices_us"), g("running_us"), g("restore_to_first_run_us"),
           g("restore_to_answer_us")]
    out, prev = [], 0.0
    for p in pts:
        out.append(max(0.0, p - prev))
        prev = max(prev, p)
    return out


def plots(out, res, series):
    gp = shutil.which("gnuplot")
    if not gp:
        return ["gnuplot is not installed: no plots"]
    d = os.path.join(out, "plot")
    os.makedirs(d, exist_ok=True)
    script = ["set terminal pngcairo size 1100,650 noenhanced font ',10'",
              "set grid", "set key outside right"]
    # 1. latency distributions (CDF): process start to first answer, and in-process restore.
    for png, metric, title, names in (
        ("restore_latency.png", "answer_us",
         "process start .. first answer of the guest (one clock for thaw, the floor and QEMU)",
         [s for s in res if s.startswith(("thaw_", "qemu_restore", "floor_proc"))]),
        ("restore_inprocess.png", None,
         "restore request .. first guest instruction (thaw clock) vs the floor",
         [s for s in res if s.startswith(("thaw_", "floor_")) and s != "floor_proc_128m1v"]),
    ):
        plotted = []
        for s in sorted(names):
            key = metric or ("total_us" if s.startswith("floor_") else "restore_to_first_run_us")
            vals = sorted(r[key] for r in series[s] if key in r)
            if not vals:
                continue
            fn = os.path.join(d, "%s.%s.dat" % (png, s))
            with open(fn, "w") as f:
                for i, v in enumerate(vals):
                    f.write("%f %f\n" % (v / 1000.0, (i + 1) / len(vals)))
            # 8 colours, then dash patterns, so 15 series stay apart.
            plotted.append("'%s' using 1:2 with steps lw %d lc %d dt %d title '%s'" % (
                fn, 3 if s.startswith(("floor", "qemu")) else 2, len(plotted) % 8 + 1,
                len(plotted) // 8 + 1, s))
        if plotted:
            script += ["set output '%s'" % os.path.join(out, png), "set title '%s'" % title,
                       "set logscale x", "set xlabel 'ms (log)'", "set ylabel 'fraction of runs'",
                       "set yrange [0:1.02]",
                       "plot " + ", ".join(plotted), "unset logscale x", "set autoscale y"]
    # 2. phase breakdown (stacked medians).
    rows = [s for s in sorted(res) if (s.startswith("thaw_") or s in (
        "floor_128m1v", "floor_512m2v", "floor_prepared_128m1v", "floor_prepared_512m2v"))]
    if rows:
        fn = os.path.join(d, "phases.dat")
        with open(fn, "w") as f:
            f.write("series " + " ".join('"%s"' % p for p in PHASES) + "\n")
            for s in rows:
                f.write('"%s" ' % s + " ".join("%.3f" % (v / 1000.0) for v in phase_row(res, s)) + "\n")
        script += ["set output '%s'" % os.path.join(out, "phases.png"),
                   "set title 'restore phases, medians (ms): thaw --timing and the floor'",
                   "set style data histograms", "set style histogram rowstacked",
                   "set style fill solid 0.8 border -1", "set boxwidth 0.7",
                   "set xtics rotate by -35", "set xlabel ''", "set ylabel 'ms'",
                   "plot for [i=2:%d] '%s' using i:xtic(1) title columnhead(i)" % (len(PHASES) + 1, fn),
                   "set xtics norotate", "set style data lines"]
    # 3. clones: latency and PSS against N.
    cl = sorted((int(k[7:]), k) for k in res if k.startswith("clones_"))
    if cl:
        fn = os.path.join(d, "clones.dat")
        with open(fn, "w") as f:
            for n, k in cl:
                f.write("%d %f %f %f\n" % (n, med(res, k, "answer_us") / 1000.0,
                                           med(res, k, "answer_us", "p99") / 1000.0,
                                           (med(res, k, "pss_kb") or 0) / 1024.0))
        script += ["set output '%s'" % os.path.join(out, "clones.png"),
                   "set title 'N concurrent clones from one snapshot: per-clone latency and PSS'",
                   "set xlabel 'N'", "set ylabel 'process start .. first answer (ms)'",
                   "set y2label 'PSS per clone (MiB)'", "set y2tics", "set ytics nomirror",
                   "plot '%s' using 1:2 with linespoints lw 2 title 'median', "
                   "'%s' using 1:3 with linespoints lw 2 title 'p99', "
                   "'%s' using 1:4 axes x1y2 with linespoints lw 2 title 'PSS median'" % (fn, fn, fn)]
    # 4. cold restores: restore .. first answer per working set, strategy and cache state.
    sizes = cold_sizes(res)
    if sizes:
        fn = os.path.join(d, "cold.dat")
        with open(fn, "w") as f:
            f.write('case "warm page cache" "cold page cache"\n')
            for ws in sizes:
                for st in COLD_STRATEGIES:
                    v = [med(res, "cold_%dm_%s_%s" % (ws, c, st), "restore_to_answer_us")
                         for c in ("warm", "cold")]
                    if any(x is not None for x in v):
                        f.write('"%d MiB %s" %s\n' % (ws, st, " ".join(
                            "%.3f" % (x / 1000.0) if x is not None else "NaN" for x in v)))
        script += ["set output '%s'" % os.path.join(out, "cold.png"),
                   "set title 'scattered working set (touchscatter, w): restore .. first answer, "
                   "medians, by strategy and page cache state'",
                   "set style data histograms", "set style histogram clustered gap 1",
                   "set style fill solid 0.8 border -1", "set boxwidth 0.9",
                   "set xtics rotate by -35", "set xlabel ''", "set ylabel 'ms (log)'",
                   "set logscale y", "set yrange [*:*]",
                   "plot '%s' using 2:xtic(1) title columnhead(2), '' using 3 title columnhead(3)" % fn,
                   "unset logscale y", "set xtics norotate", "set style data lines"]
    gpf = os.path.join(d, "plots.gp")
    with open(gpf, "w") as f:
        f.write("\n".join(script) + "\n")
    p = subprocess.run([gp, gpf], capture_output=True, text=True)
    return [] if p.returncode == 0 else ["gnuplot failed: " + p.stderr.strip()[-300:]]


CHECKED = ["thaw_%s_%s_file" % (s, p) for s in SHAPES for p in PATHS]
# Process start .. answer swings 2x between runs under nested TCG (exec over 9p, the
# shared machine): only the restore itself is held against the baseline.
CHECK_METRICS = ("restore_to_first_run_us",)


# The cold group's goals (issue 21), checked for each working set measured: the recorded
# working set prefetched (uffd-prefetch, the strategy thaw uses for a snapshot with a
# `workingset` section) from a cold page cache is at least 3x faster to the first answer
# than uffd on demand from a cold page cache, with at least 90% fewer faults, and within
# 1.3x of the file path with a warm page cache. Times are compared by CHECK_STAT (the
# minimum: see above), faults by their median (they do not depend on load).
COLD_SPEEDUP, COLD_FAULTS_SAVED, COLD_TO_WARM_FILE = 3.0, 0.90, 1.3


def check_cold(res):
    fails, lines = [], []
    for ws in cold_sizes(res):
        od, pf, wf = ("cold_%dm_%s" % (ws, c) for c in ("cold_uffd-ondemand", "cold_uffd-prefetch",
                                                           "warm_file"))
        t = {s: med(res, s, "restore_to_answer_us", CHECK_STAT) for s in (od, pf, wf)}
        f = {s: med(res, s, "faults") for s in (od, pf)}
        if None in t.values() or None in f.values():
            fails.append("cold %d MiB: a series has no figure (%s)" % (ws, ", ".join(
                s for s in (od, pf, wf) if t[s] is None or f.get(s, 0) is None)))
            continue
        # A scratch on tmpfs (the nested host's /tmp) cannot drop its pages: no cold cache.
        resident = med(res, pf, "cache_resident_kb")
        if resident:
            lines.append("note: cold %d MiB: the snapshot still had %.0f KiB in the page cache "
                         "at the cold runs' start (a tmpfs scratch?): the cold goals are not "
                         "checked here" % (ws, resident))
            continue
        speed, saved, towarm = t[od] / t[pf], 1 - f[pf] / f[od] if f[od] else 0, t[pf] / t[wf]
        lines.append("cold %d MiB: cold prefetch %.0f us (%s), cold on demand x%.2f of it, %.1f%% "
                     "fewer faults (%.0f vs %.0f), x%.2f of the warm file path (%.0f us)" % (
                         ws, t[pf], CHECK_STAT, speed, 100 * saved, f[pf], f[od], towarm, t[wf]))
        if speed < COLD_SPEEDUP:
            fails.append("cold %d MiB: cold prefetch is only %.2fx faster than cold on demand "
                         "(%s %.0f vs %.0f us), under %.0fx" % (ws, speed, CHECK_STAT, t[pf], t[od],
                                                               COLD_SPEEDUP))
        if saved < COLD_FAULTS_SAVED:
            fails.append("cold %d MiB: cold prefetch saves %.1f%% of on demand's faults, under %.0f%%"
                         % (ws, 100 * saved, 100 * COLD_FAULTS_SAVED))
        if towarm > COLD_TO_WARM_FILE:
            fails.append("cold %d MiB: cold prefetch is %.2fx the warm file path (%s %.0f vs %.0f "
                         "us), over %.1fx" % (ws, towarm, CHECK_STAT, t[pf], t[wf], COLD_TO_WARM_FILE))
    return fails, lines


def check(res, meta, baseline_path):
    fails = []
    for s in CHECKED:
        shape, path = s.split("_")[1], s.split("_")[2]
        fl = floor_of(shape, path)
        fig = med(res, s, "restore_to_first_run_us", CHECK_STAT)
        floor = med(res, fl, "total_us", CHECK_STAT)
        if fig is None or floor is None:
            fails.append("%s: no figure measured (restore or %s failed)" % (s, fl))
        elif fig > CHECK_RATIO * floor:
            fails.append("%s.restore_to_first_run_us %s %.0f us is %.1fx %s's "
                         "(%.0f us), over %.0fx" % (s, CHECK_STAT, fig, fig / floor, fl, floor,
                                                   CHECK_RATIO))
    cfails, clines = check_cold(res)
    fails += cfails
    for ln in clines:
        print("bench-check: " + ln)
    try:
        with open(baseline_path) as f:
            base = json.load(f)
    except (OSError, ValueError) as e:
        return fails + ["baseline %s unreadable: %s" % (baseline_path, e)], []
    notes = []
    if base.get("where") != meta.get("where"):
        notes.append("baseline measured on %s, this run on %s: regression check skipped "
                     "(commit a baseline from this kind of host)" % (base.get("where"), meta.get("where")))
        return fails, notes
    rat = ratios(res, CHECK_STAT)
    # A baseline with ratios holds them; one without (older) holds absolute medians.
    held = base.get("ratios", {})
    for key, old in sorted(held.items()):
        new = rat.get(key)
        if new is None:
            notes.append("%s: not measured in this run" % key)
        elif new > CHECK_REGRESSION * old:
            fails.append("%s = %.2f regressed %.0f%% against the baseline's %.2f" %
                         (key, new, 100.0 * (new / old - 1), old))
    what = base.get("statistic", "median")
    for key, old in sorted(base.get("figures", {}).items()):
        s, _, metric = key.partition(".")
        new = med(res, s, metric, what)
        if new is None:
            notes.append("%s: not measured in this run" % key)
        elif new > CHECK_REGRESSION * old:
            msg = "%s %s %.0f us regressed %.0f%% against the baseline %.0f us" % (
                key, what, new, 100.0 * (new / old - 1), old)
            if held:
                notes.append(msg + " (absolute: a note only, the ratios are checked)")
            else:
                fails.append(msg)
    return fails, notes


def main(argv):
    if not argv:
        sys.stderr.write(__doc__)
        return 2
    out = argv[0]
    opts = argv[1:]
    meta, notes = {}, []
    with open(os.path.join(out, "meta.txt")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            if k == "note":
                notes.append(v)
            else:
                meta[k] = v
    # A resumed run repeats the notes of its setup; one line for the resumes.
    notes = list(dict.fromkeys(notes))
    resumed = [n for n in notes if n.startswith("resumed at ")]
    if resumed:
        notes = [n for n in notes if not n.startswith("resumed at ")]
        notes.append("resumed %d times in a new VM after the nested VM wedged, at %s; the "
                     "runs before each kept" % (len(resumed), ", ".join(
                         n.split()[2] for n in resumed)))
    series = load_series(os.path.join(out, "raw"))
    res = summarize(series)
    rat = ratios(res)
    notes += plots(out, res, series)
    result = {"meta": meta, "notes": notes, "ratios": rat, "cold_ratios": cold_ratios(res),
              "deltas_us": deltas(res), "series": res}
    txt = table(res, meta, rat)
    rc = 0
    if "--check" in opts:
        fails, cnotes = check(res, meta, opts[opts.index("--check") + 1])
        result["check"] = {"failures": fails, "notes": cnotes}
        for n in cnotes:
            print("bench-check: note: " + n)
        for fl in fails:
            print("bench-check: FAIL: " + fl)
        if not fails:
            print("bench-check: ok: thaw's restore minima within %.0fx their floors and their "
                  "ratios within %.0f%% of the baseline's" % (CHECK_RATIO, 100 * (CHECK_REGRESSION - 1)))
        crat = ratios(res, CHECK_STAT)
        result["check"]["ratios"] = crat
        result["check"]["statistic"] = CHECK_STAT
        for s in CHECKED:
            k = s + ".restore_to_first_run/floor"
            fl = floor_of(s.split("_")[1], s.split("_")[2])
            if k in crat:
                print("bench-check: %s %s = %.2f (restore %.0f us, %s %.0f us; medians %.0f "
                      "and %.0f us)" % (
                          k, CHECK_STAT, crat[k], med(res, s, "restore_to_first_run_us", CHECK_STAT),
                          fl, med(res, fl, "total_us", CHECK_STAT),
                          med(res, s, "restore_to_first_run_us"), med(res, fl, "total_us")))
        rc = 1 if fails else 0
    if "--write-baseline" in opts:
        fig, held = {}, {}
        wb = opts.index("--write-baseline")
        runs = [res] + [summarize(load_series(os.path.join(d, "raw"))) for d in opts[wb + 2:]
                        if os.path.isdir(d)]
        for s in CHECKED:
            for m in CHECK_METRICS:
                v = [med(r, s, m, CHECK_STAT) for r in runs]
                if None not in v:
                    fig[s + "." + m] = statistics.median(v)
            k = s + ".restore_to_first_run/floor"
            v = [ratios(r, CHECK_STAT).get(k) for r in runs]
            if None not in v:
                held[k] = round(statistics.median(v), 2)
        meta["baseline_runs"] = len(runs)
        with open(opts[wb + 1], "w") as f:
            json.dump({"where": meta.get("where"), "where_text": meta.get("where_text"),
                       "measured": meta.get("date"), "git": meta.get("git"),
                       "cpu": meta.get("cpu"), "runs": meta.get("runs"),
                       "check_runs": meta["baseline_runs"],
                       "outer_loadavg": meta.get("outer_loadavg"), "command": meta.get("command"),
                       "figures": fig, "ratios": held, "statistic": CHECK_STAT}, f, indent=1,
                      sort_keys=True)
            f.write("\n")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    with open(os.path.join(out, "table.txt"), "w") as f:
        f.write(txt)
    sys.stdout.write(txt)
    for n in notes:
        print("note: " + n)
    print("results: %s/results.json, plots: %s/*.png" % (out, out))
    if "--smoke" in opts:
        passed = failed = 0
        for name, runs in sorted(series.items()):
            if runs:
                passed += 1
            else:
                failed += 1
                print("bench-smoke: FAIL: %s produced no good run" % name)
        # The API series must have read thaw's metrics back after a 204, and no jail may be
        # left behind.
        for name in sorted(k for k in series if k.startswith("api_128m1v_")):
            if not any(r.get("api_status") == 204 and "m_load_snapshot_us" in r
                       for r in series[name]):
                failed += 1
                print("bench-smoke: FAIL: %s: no run with a 204 and thaw's load_snapshot metric"
                      % name)
            else:
                passed += 1
        if "fleet_leftover" in meta:
            if meta["fleet_leftover"] == "0":
                passed += 1
            else:
                failed += 1
                print("bench-smoke: FAIL: thaw-pool --cleanup left %s processes' state" %
                      meta["fleet_leftover"])
        if "jail_leftover" in meta:
            if meta["jail_leftover"] == "0":
                passed += 1
            else:
                failed += 1
                print("bench-smoke: FAIL: %s jails were left behind" % meta["jail_leftover"])
        # A plot is required when its series were measured (bench.sh --only may skip them).
        for png, prefixes in (("restore_latency.png", ("thaw_", "qemu_restore", "floor_proc")),
                              ("restore_inprocess.png", ("thaw_", "floor_")),
                              ("phases.png", ("thaw_", "floor_")), ("clones.png", ("clones_",)),
                              ("cold.png", ("cold_",))):
            if not any(series[k] for k in series if k.startswith(prefixes)):
                continue
            if os.path.getsize(os.path.join(out, png)) if os.path.exists(os.path.join(out, png)) else 0:
                passed += 1
            else:
                failed += 1
                print("bench-smoke: FAIL: %s was not drawn" % png)
        print("bench-smoke: %d passed, %d failed" % (passed, failed))
        rc = 1 if failed else 0
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
