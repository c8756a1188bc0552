"""The distribution benchmark: scenarios x systems x runs on the emulated site.

A scenario is (name, mode, client, uplink, nodes, image). For each one, each run and
each system (order rotated per run), a measured run is:
  fresh system state (new data dirs) [+ fresh containerd per node for ctr]
  -> uplink counters -> pulls (sequential: one node after another; concurrent: all
  nodes at once) -> uplink counters, peak RSS/CPU of the system's processes
  -> stop -> verify every pulled image digest by digest (not timed) -> delete.
Rows are appended to the CSV files as they are measured.
"""

import csv
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict, namedtuple

import clients
import netsite
import systems
from util import MiB, fmt, log

Scenario = namedtuple("Scenario", "name mode client uplink nodes image")

SUMMARY_COLS = ["scenario", "system", "uplink_mbit", "nodes", "image_mb", "run",
                "distribution_s", "mean_pull_s", "uplink_bytes", "peak_rss_mb"]
PULL_COLS = ["scenario", "system", "uplink_mbit", "nodes", "image_mb", "run", "node",
             "start_s", "end_s", "pull_s", "ok", "verified", "error"]
PROC_COLS = ["scenario", "system", "uplink_mbit", "nodes", "image_mb", "run", "process",
             "pid", "peak_rss_mb", "cpu_s"]
EXTRA_COLS = ["scenario", "system", "uplink_mbit", "nodes", "image_mb", "run",
              "uplink_tx_bytes", "uplink_rx_bytes", "image_bytes", "pulls_ok", "pulls_verified",
              "cpu_s_total"]


class CsvOut:
    def __init__(self, path, cols, append=False):
        self.path, self.cols = path, cols
        exists = append and os.path.exists(path)
        self.f = open(path, "a" if exists else "w", newline="")
        self.w = csv.writer(self.f)
        if not exists:
            self.w.writerow(cols)
            self.f.flush()

    def row(self, d):
        self.w.writerow(["" if d.get(c) is None else d.get(c) for c in self.cols])
        self.f.flush()

    def close(self):
        self.f.close()


class Bench:
    """Shared state of one site-bench invocation (benchmark or fault suite)."""

    def __init__(self, args, workdir):
        self.args, self.workdir = args, workdir
        self.site = None
        self.origin = None
        self.images = OrderedDict()
        self.pushed = set()

    # --------------------------------------------------------------- site and images
    def add_image(self, img):
        if img.key not in self.images:
            self.images[img.key] = img
        return self.images[img.key]

    def generate_images(self):
        d = os.path.join(self.workdir, "images")
        os.makedirs(d, exist_ok=True)
        for img in self.images.values():
            if img.info is None:
                t0 = time.monotonic()
                img.generate(d)
                log("image %-22s %3d blobs %7.1f MiB  (generated in %.1fs)"
                    % (img.key, len(img.blobs), img.bytes / MiB, time.monotonic() - t0))

    def build_site(self, nodes):
        self.teardown_site()
        self.site = netsite.Site(nodes)
        self.site.create()
        self.origin = systems.Origin(self.site, os.path.join(self.workdir, "cloud-data"),
                                     self.workdir)
        self.origin.start()
        self.site.set_uplink(0)
        for img in self.images.values():
            if img.key not in self.pushed:
                t0 = time.monotonic()
                img.push(os.path.join(self.workdir, "bic-push-" + img.key))
                self.pushed.add(img.key)
                log("pushed %s to the cloud registry in %.1fs" % (img.key, time.monotonic() - t0))
        log("site: %d node namespaces + cloud, bridge in %s, cloud registry %s"
            % (nodes, netsite.SITE_NS, systems.CLOUD_HOST))

    def teardown_site(self):
        if self.origin:
            self.origin.stop()
            self.origin = None
        if self.site:
            self.site.destroy()
            self.site = None

    def new_run_dir(self, label):
        d = tempfile.mkdtemp(prefix=label + "-", dir=self.workdir)
        return d


# --------------------------------------------------------------------------- pulls

def do_pulls(bench, system, client, image, mode, nodes, timeout):
    results = {}
    if mode == "sequential":
        for k in nodes:
            results[k] = client.pull(k, system, image, timeout=timeout)
    else:
        def one(k):
            results[k] = client.pull(k, system, image, timeout=timeout)
        ths = [threading.Thread(target=one, args=(k,), daemon=True) for k in nodes]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
    return [results[k] for k in nodes]


def pull_timeout(image, uplink, nodes):
    rate = (uplink or 1000) * 1e6 / 8
    return int(120 + 4 * nodes * image.bytes / rate)


def measured_run(bench, sc, system, run_no, outs):
    args = bench.args
    site = bench.site
    label = "%s-%s-%s-r%d" % (sc.name, system.name, sc.uplink or "unl", run_no)
    run_dir = bench.new_run_dir(label)
    client = clients.CLIENTS[sc.client](bench)
    nodes = list(range(1, sc.nodes + 1))
    image = sc.image
    try:
        system.start(run_dir)
        client.prepare(run_dir, system)
        tx0, rx0 = site.uplink_bytes()
        tracer = TcpTracer(nodes, os.path.join(run_dir, "tcp-trace.txt")) \
            if args.trace_tcp else None
        try:
            res = do_pulls(bench, system, client, image, sc.mode, nodes,
                           pull_timeout(image, sc.uplink, sc.nodes))
        finally:
            if tracer:
                tracer.stop()
        tx1, rx1 = site.uplink_bytes()
        pstats = system.process_stats()
        crashed = system.crashed()
        system.stop()
        # verification: not timed
        for r in res:
            if r["ok"]:
                ok, detail = client.verify(r["node"], r, image)
            else:
                ok, detail = False, "pull failed rc=%s: %s" % (r["rc"], r["err"])
            r["verified"], r["detail"] = ok, detail
            client.discard(r)
        if crashed or not all(r["verified"] for r in res) or args.trace_tcp:
            keep_logs(bench, system, label, run_dir)
    finally:
        client.finish()
        system.stop()
        netsite.remove_tree(run_dir)

    t_first = min(r["start"] for r in res)
    all_ok = all(r["verified"] for r in res)
    dist = max(r["end"] for r in res) - t_first
    mean = sum(r["secs"] for r in res) / len(res)
    rss = [s[2] for s in pstats if s[2] is not None]
    cpu = [s[3] for s in pstats if s[3] is not None]
    base = {"scenario": sc.name, "system": system.name, "uplink_mbit": sc.uplink or 0,
            "nodes": sc.nodes, "image_mb": image.mb, "run": run_no}
    row = dict(base, distribution_s="%.3f" % dist if all_ok else None,
               mean_pull_s="%.3f" % mean if all_ok else None,
               uplink_bytes=(tx1 - tx0) + (rx1 - rx0),
               peak_rss_mb="%.1f" % max(rss) if rss else None)
    outs["summary"].row(row)
    outs["extra"].row(dict(base, uplink_tx_bytes=tx1 - tx0, uplink_rx_bytes=rx1 - rx0,
                           image_bytes=image.bytes,
                           pulls_ok=sum(r["ok"] for r in res),
                           pulls_verified=sum(r["verified"] for r in res),
                           cpu_s_total="%.2f" % sum(cpu) if cpu else None))
    for r in res:
        outs["pulls"].row(dict(base, node=r["node"], start_s="%.3f" % (r["start"] - t_first),
                               end_s="%.3f" % (r["end"] - t_first), pull_s="%.3f" % r["secs"],
                               ok=int(r["ok"]), verified=int(r["verified"]),
                               error="" if r["verified"] else r["detail"]))
    for lbl, pid, prss, pcpu in pstats:
        outs["procs"].row(dict(base, process=lbl, pid=pid,
                               peak_rss_mb=fmt(prss), cpu_s=fmt(pcpu, 2)))
    bad = [r for r in res if not r["verified"]]
    if crashed:
        log("  !! %s: process(es) exited during the run: %s (logs in %s/logs/%s)" % (
            system.name, ", ".join("%s rc=%s" % c for c in crashed),
            os.path.relpath(args.out), label))
    log("  %-24s run %d: distribution %6.1fs  mean pull %6.1fs  uplink %7.1f MiB (%.2fx image)"
        "%s%s" % (system.name, run_no, dist, mean, ((tx1 - tx0) + (rx1 - rx0)) / MiB,
                  ((tx1 - tx0) + (rx1 - rx0)) / image.bytes,
                  "  peak RSS %.0f MiB" % max(rss) if rss else "",
                  "" if not bad else "  FAILED on %d node(s): %s" % (
                      len(bad), "; ".join("node%d: %s" % (r["node"], r["detail"]) for r in bad))))
    return all_ok


class TcpTracer:
    """--trace-tcp: every 0.5 s, `ss -tin` of every node namespace for connections to
    the cloud registry (bytes received, lastrcv, rto, retransmits), to tell a stalled
    upstream stream from a slow one. Kept with the logs when a run fails."""

    def __init__(self, nodes, path):
        self.nodes, self.path = nodes, path
        self.stopping = threading.Event()
        self.t0 = time.monotonic()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        with open(self.path, "w") as f:
            while not self.stopping.is_set():
                for k in self.nodes:
                    r = subprocess.run(["ip", "netns", "exec", netsite.node_ns(k), "ss", "-tinH",
                                        "dst", systems.CLOUD_IP], capture_output=True)
                    out = r.stdout.decode(errors="replace").strip()
                    if out:
                        f.write("t=%.1f node%d\n%s\n" % (time.monotonic() - self.t0, k, out))
                f.flush()
                self.stopping.wait(0.5)

    def stop(self):
        self.stopping.set()
        self.thread.join()


def keep_logs(bench, system, label, run_dir=None):
    dst = os.path.join(bench.args.out, "logs", label)
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    if run_dir and os.path.exists(os.path.join(run_dir, "tcp-trace.txt")):
        shutil.copy(os.path.join(run_dir, "tcp-trace.txt"), dst)
    for name, path in system.logfiles().items():
        if path and os.path.exists(path):
            shutil.copy(path, os.path.join(dst, name + ".log"))


def run_benchmark(bench, plan, system_names, outdir):
    args = bench.args
    os.makedirs(outdir, exist_ok=True)
    outs = {"summary": CsvOut(os.path.join(outdir, "summary.csv"), SUMMARY_COLS),
            "pulls": CsvOut(os.path.join(outdir, "pulls.csv"), PULL_COLS),
            "procs": CsvOut(os.path.join(outdir, "processes.csv"), PROC_COLS),
            "extra": CsvOut(os.path.join(outdir, "uplink.csv"), EXTRA_COLS)}
    failures = 0
    t_start = time.monotonic()
    try:
        by_nodes = OrderedDict()
        for sc in plan:
            by_nodes.setdefault(sc.nodes, []).append(sc)
        for nodes, scs in by_nodes.items():
            bench.build_site(nodes)
            sysobjs = [systems.SYSTEMS[n](bench) for n in system_names]
            for i, sc in enumerate(scs):
                bench.site.set_uplink(sc.uplink)
                log("[%d/%d] %s, %s client, uplink %s, %d nodes, image %s (%.0f MiB)  [%.0fs elapsed]"
                    % (plan.index(sc) + 1, len(plan), sc.name, sc.client,
                       "%d Mbit/s" % sc.uplink if sc.uplink else "unlimited", sc.nodes,
                       sc.image.key, sc.image.bytes / MiB, time.monotonic() - t_start))
                for run_no in range(1, args.runs + 1):
                    rot = (run_no - 1) % len(sysobjs)
                    for system in sysobjs[rot:] + sysobjs[:rot]:
                        if not measured_run(bench, sc, system, run_no, outs):
                            failures += 1
            bench.teardown_site()
    finally:
        for o in outs.values():
            o.close()
    log("benchmark took %.0fs" % (time.monotonic() - t_start))
    return failures
