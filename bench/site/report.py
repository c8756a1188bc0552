"""Tables from bench/out/*.csv: the human table (medians, min-max, ratios to direct) and
its Markdown form for RESULTS.md."""

import csv
import os
from collections import OrderedDict

from util import fmt, med_min_max

MiB = 1 << 20


def read_csv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def fnum(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def uplink_label(u):
    u = int(float(u))
    return "unlimited" if u == 0 else "%d" % u


def group(outdir):
    """OrderedDict (scenario, uplink, nodes, image_mb) -> {system: stats}."""
    rows = read_csv(os.path.join(outdir, "summary.csv"))
    extra = {(r["scenario"], r["system"], r["uplink_mbit"], r["nodes"], r["image_mb"], r["run"]): r
             for r in read_csv(os.path.join(outdir, "uplink.csv"))}
    g = OrderedDict()
    for r in rows:
        key = (r["scenario"], r["uplink_mbit"], r["nodes"], r["image_mb"])
        d = g.setdefault(key, OrderedDict()).setdefault(r["system"], {
            "dist": [], "mean": [], "bytes": [], "rss": [], "runs": 0, "failed": 0, "img": None})
        d["runs"] += 1
        if r["distribution_s"] == "":
            d["failed"] += 1
        d["dist"].append(fnum(r["distribution_s"]))
        d["mean"].append(fnum(r["mean_pull_s"]))
        d["bytes"].append(fnum(r["uplink_bytes"]))
        d["rss"].append(fnum(r["peak_rss_mb"]))
        e = extra.get((r["scenario"], r["system"], r["uplink_mbit"], r["nodes"], r["image_mb"],
                       r["run"]))
        if e:
            d["img"] = fnum(e["image_bytes"])
    return g


def _ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def human_table(outdir):
    g = group(outdir)
    if not g:
        return "(no results in %s)" % outdir
    L = []
    hdr = ("%-24s %9s %5s %6s  %-22s %22s %9s %10s %7s %8s"
           % ("scenario", "uplink", "nodes", "MiB", "system", "distribution s med [min-max]",
              "mean pull", "uplink MiB", "x image", "peakRSS"))
    L.append(hdr)
    L.append("-" * len(hdr))
    for (sc, up, nodes, mb), systems in g.items():
        for name, d in systems.items():
            m, lo, hi = med_min_max(d["dist"])
            bm = med_min_max(d["bytes"])[0]
            L.append("%-24s %9s %5s %6s  %-22s %22s %9s %10s %7s %8s" % (
                sc, uplink_label(up), nodes, mb, name,
                ("%s [%s-%s]" % (fmt(m), fmt(lo), fmt(hi)) if m is not None else "FAILED")
                + ("" if not d["failed"] else " %d/%d failed" % (d["failed"], d["runs"])),
                fmt(med_min_max(d["mean"])[0]), fmt(bm / MiB if bm else None),
                fmt(bm / d["img"] if bm and d["img"] else None, 2),
                fmt(med_min_max(d["rss"])[0], 0)))
    L.append("")
    L.append(ratio_table(g))
    return "\n".join(L)


def ratio_rows(g):
    out = []
    for (sc, up, nodes, mb), systems in g.items():
        med = {n: med_min_max(d["dist"])[0] for n, d in systems.items()}
        out.append((sc, uplink_label(up), nodes, mb, med.get("direct"),
                    med.get("docker-registry-proxy"), med.get("edgepier"),
                    _ratio(med.get("edgepier"), med.get("direct")),
                    _ratio(med.get("docker-registry-proxy"), med.get("direct"))))
    return out


def ratio_table(g):
    L = ["%-24s %9s %5s %6s %9s %9s %9s %16s %22s" % (
        "scenario", "uplink", "nodes", "MiB", "direct s", "proxy s", "edgepier s",
        "edgepier/direct", "registry-proxy/direct")]
    for sc, up, nodes, mb, d, p, e, re_, rp in ratio_rows(g):
        L.append("%-24s %9s %5s %6s %9s %9s %9s %16s %22s" % (
            sc, up, nodes, mb, fmt(d), fmt(p), fmt(e), fmt(re_, 2), fmt(rp, 2)))
    return "\n".join(L)


def markdown_table(outdir):
    g = group(outdir)
    L = ["| scenario | uplink Mbit/s | nodes | image MiB | system | distribution s median [min-max] "
         "| mean pull s | uplink MiB (x image) | peak RSS MiB |",
         "|---|---|---|---|---|---|---|---|---|"]
    for (sc, up, nodes, mb), systems in g.items():
        for name, d in systems.items():
            m, lo, hi = med_min_max(d["dist"])
            bm = med_min_max(d["bytes"])[0]
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                sc, uplink_label(up), nodes, mb, name,
                ("%s [%s-%s]" % (fmt(m), fmt(lo), fmt(hi)) if m is not None else "FAILED")
                + ("" if not d["failed"] else " (%d/%d runs failed)" % (d["failed"], d["runs"])),
                fmt(med_min_max(d["mean"])[0]),
                "%s (%s)" % (fmt(bm / MiB if bm else None),
                             fmt(bm / d["img"] if bm and d["img"] else None, 2)),
                fmt(med_min_max(d["rss"])[0], 0)))
    L.append("")
    L.append("| scenario | uplink Mbit/s | nodes | image MiB | direct s | docker-registry-proxy s "
             "| edgepier s | edgepier/direct | docker-registry-proxy/direct |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for sc, up, nodes, mb, d, p, e, re_, rp in ratio_rows(g):
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            sc, up, nodes, mb, fmt(d), fmt(p), fmt(e), fmt(re_, 2), fmt(rp, 2)))
    return "\n".join(L)
