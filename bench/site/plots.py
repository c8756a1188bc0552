"""Figures from bench/out/*.csv with Debian's python3-matplotlib, redrawing the paper's:

  fig3a  distribution time vs uplink, sequential pulls      (all systems, min-max bars)
  fig3b  distribution time vs uplink, concurrent pulls
  fig4a  per-node pull time, concurrent pulls at the slowest uplink measured
  fig4b  bytes over the uplink (multiples of the image) vs uplink, sequential and concurrent
  fig5   distribution time vs image size (concurrent pulls)
"""

import os
import statistics
from collections import defaultdict

from report import fnum, read_csv, uplink_label

COLORS = {"direct": "#888888", "docker-registry-proxy": "#1f77b4", "edgepier": "#ff9896",
          "edgepier-site": "#d62728", "edgepier-one": "#9467bd"}
ORDER = ["direct", "docker-registry-proxy", "edgepier-one", "edgepier", "edgepier-site"]


def _sorted_systems(names):
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _color(name):
    return COLORS.get(name)


def _main_keys(rows):
    """Most common (nodes, image_mb) among skopeo sequential/concurrent rows."""
    cnt = defaultdict(int)
    for r in rows:
        if r["scenario"] in ("sequential", "concurrent"):
            cnt[(r["nodes"], r["image_mb"])] += 1
    return max(cnt, key=cnt.get) if cnt else (None, None)


def _uplink_order(u):
    u = int(float(u))
    return 1e9 if u == 0 else u


def _series(rows, scenario, nodes, image_mb, xkey, yfn):
    """{system: [(x, median, min, max)]}"""
    acc = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["scenario"] != scenario or (nodes and r["nodes"] != nodes) or \
                (image_mb and r["image_mb"] != image_mb):
            continue
        y = yfn(r)
        if y is not None:
            acc[r["system"]][r[xkey]].append(y)
    out = {}
    for sysname, d in acc.items():
        pts = []
        for x, ys in d.items():
            pts.append((x, statistics.median(ys), min(ys), max(ys)))
        out[sysname] = pts
    return out


def _errplot(ax, series, xs_order, xlabels):
    pos = {x: i for i, x in enumerate(xs_order)}
    n = max(1, len(series))
    w = 0.8 / n
    for j, name in enumerate(_sorted_systems(series)):
        pts = series[name]
        pts = sorted(pts, key=lambda p: pos[p[0]])
        xs = [pos[p[0]] - 0.4 + w * (j + 0.5) for p in pts]
        ax.bar(xs, [p[1] for p in pts], width=w, color=_color(name), label=name,
               yerr=[[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]], capsize=3)
    ax.set_xticks(range(len(xs_order)))
    ax.set_xticklabels(xlabels)
    ax.legend(fontsize="small", framealpha=0.85)
    ax.grid(axis="y", alpha=0.3)


def draw_all(outdir):
    rows = read_csv(os.path.join(outdir, "summary.csv"))
    if not rows:
        return []
    try:
        plt = _plt()
    except ImportError:
        print("matplotlib missing: apt-get install python3-matplotlib (figures skipped)")
        return []
    extra = {(r["scenario"], r["system"], r["uplink_mbit"], r["nodes"], r["image_mb"], r["run"]):
             fnum(r["image_bytes"]) for r in read_csv(os.path.join(outdir, "uplink.csv"))}
    pulls = read_csv(os.path.join(outdir, "pulls.csv"))
    nodes, image_mb = _main_keys(rows)
    made = []

    def dist(r):
        return fnum(r["distribution_s"])

    # fig3a / fig3b: distribution time vs uplink
    for fig, scen in (("fig3a", "sequential"), ("fig3b", "concurrent")):
        s = _series(rows, scen, nodes, image_mb, "uplink_mbit", dist)
        if not s:
            continue
        ups = sorted({p[0] for pts in s.values() for p in pts}, key=_uplink_order)
        f, ax = plt.subplots(figsize=(7, 4.2))
        _errplot(ax, s, ups, [uplink_label(u) for u in ups])
        ax.set_xlabel("uplink (Mbit/s)")
        ax.set_ylabel("distribution time (s), first start to last finish")
        ax.set_title("%s pulls, %s nodes, %s MiB image (median, min-max)" % (scen, nodes, image_mb))
        path = os.path.join(outdir, "%s-%s-distribution-vs-uplink.png" % (fig, scen))
        f.tight_layout()
        f.savefig(path, dpi=110)
        plt.close(f)
        made.append(path)

    # fig4a: per-node pull time, concurrent, slowest uplink
    conc = [r for r in pulls if r["scenario"] == "concurrent" and r["nodes"] == nodes
            and r["image_mb"] == image_mb]
    if conc:
        ups = sorted({r["uplink_mbit"] for r in conc}, key=_uplink_order)
        up = ups[0]
        acc = defaultdict(lambda: defaultdict(list))
        for r in conc:
            if r["uplink_mbit"] == up and r["verified"] == "1":
                acc[r["system"]][r["node"]].append(float(r["pull_s"]))
        s = {name: [(n, statistics.median(v), min(v), max(v)) for n, v in d.items()]
             for name, d in acc.items()}
        if s:
            ns = sorted({p[0] for pts in s.values() for p in pts}, key=int)
            f, ax = plt.subplots(figsize=(7, 4.2))
            _errplot(ax, s, ns, ["node%s" % n for n in ns])
            ax.set_ylabel("pull time (s)")
            ax.set_title("per-node pull time, concurrent, uplink %s Mbit/s, %s MiB"
                         % (uplink_label(up), image_mb))
            path = os.path.join(outdir, "fig4a-per-node-pull-time.png")
            f.tight_layout()
            f.savefig(path, dpi=110)
            plt.close(f)
            made.append(path)

    # fig4b: bytes over the uplink in image multiples
    def ximg(r):
        ib = extra.get((r["scenario"], r["system"], r["uplink_mbit"], r["nodes"], r["image_mb"],
                        r["run"]))
        b = fnum(r["uplink_bytes"])
        return b / ib if b is not None and ib else None
    f, axs = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    drawn = False
    for ax, scen in zip(axs, ("sequential", "concurrent")):
        s = _series(rows, scen, nodes, image_mb, "uplink_mbit", ximg)
        if not s:
            continue
        drawn = True
        ups = sorted({p[0] for pts in s.values() for p in pts}, key=_uplink_order)
        _errplot(ax, s, ups, [uplink_label(u) for u in ups])
        ax.set_xlabel("uplink (Mbit/s)")
        ax.set_title("%s, %s nodes" % (scen, nodes))
    axs[0].set_ylabel("bytes over the uplink / image size")
    if drawn:
        path = os.path.join(outdir, "fig4b-uplink-bytes.png")
        f.tight_layout()
        f.savefig(path, dpi=110)
        made.append(path)
    plt.close(f)

    # fig5: distribution time vs image size, concurrent
    sized = [r for r in rows if r["scenario"] == "concurrent" and r["nodes"] == nodes]
    ups = defaultdict(set)
    for r in sized:
        ups[r["uplink_mbit"]].add(r["image_mb"])
    best = max(ups, key=lambda u: (len(ups[u]), -_uplink_order(u)), default=None)
    if best is not None and len(ups[best]) >= 2:
        acc = [r for r in sized if r["uplink_mbit"] == best]
        s = _series(acc, "concurrent", nodes, None, "image_mb", dist)
        f, ax = plt.subplots(figsize=(7, 4.2))
        for name in _sorted_systems(s):
            pts = sorted(s[name], key=lambda p: float(p[0]))
            ax.errorbar([float(p[0]) for p in pts], [p[1] for p in pts],
                        yerr=[[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]],
                        marker="o", capsize=3, color=_color(name), label=name)
        ax.set_xlabel("image size (MiB)")
        ax.set_ylabel("distribution time (s)")
        ax.set_title("concurrent, %s nodes, uplink %s Mbit/s" % (nodes, uplink_label(best)))
        ax.legend()
        ax.grid(alpha=0.3)
        path = os.path.join(outdir, "fig5-distribution-vs-image-size.png")
        f.tight_layout()
        f.savefig(path, dpi=110)
        plt.close(f)
        made.append(path)
    return made
