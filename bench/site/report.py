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


def systems_in(g):
    names = []
    for systems in g.values():
        for n in systems:
            if n not in names:
                names.append(n)
    return names


def ratio_rows(g):
    """[(scenario, uplink, nodes, MiB, {system: median s}, {system: ratio to direct})]"""
    out = []
    for (sc, up, nodes, mb), systems in g.items():
        med = {n: med_min_max(d["dist"])[0] for n, d in systems.items()}
        ratios = {n: _ratio(v, med.get("direct")) for n, v in med.items() if n != "direct"}
        out.append((sc, uplink_label(up), nodes, mb, med, ratios))
    return out


SHORT = {"docker-registry-proxy": "reg-proxy", "edgepier-site": "ep-site"}


def short(n):
    return SHORT.get(n, n)[:12]


def ratio_table(g):
    names = systems_in(g)
    others = [n for n in names if n != "direct"]
    L = ["distribution time, median s, and ratio to direct (< 1 = faster than direct):",
         "%-24s %9s %5s %6s " % ("scenario", "uplink", "nodes", "MiB")
         + " ".join("%12s" % short(n) for n in names) + "  "
         + " ".join("%16s" % (short(n) + "/direct") for n in others)]
    for sc, up, nodes, mb, med, ratios in ratio_rows(g):
        L.append("%-24s %9s %5s %6s " % (sc, up, nodes, mb)
                 + " ".join("%12s" % fmt(med.get(n)) for n in names) + "  "
                 + " ".join("%16s" % fmt(ratios.get(n), 2) for n in others))
    L.append("(" + ", ".join("%s = %s" % (v, k) for k, v in SHORT.items()) + ")")
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
    names = systems_in(g)
    others = [n for n in names if n != "direct"]
    L.append("| scenario | uplink Mbit/s | nodes | image MiB | "
             + " | ".join("%s s" % n for n in names) + " | "
             + " | ".join("%s/direct" % n for n in others) + " |")
    L.append("|---|---|---|---|" + "---|" * (len(names) + len(others)))
    for sc, up, nodes, mb, med, ratios in ratio_rows(g):
        L.append("| %s | %s | %s | %s | " % (sc, up, nodes, mb)
                 + " | ".join(fmt(med.get(n)) for n in names) + " | "
                 + " | ".join(fmt(ratios.get(n), 2) for n in others) + " |")
    return "\n".join(L)
