"""Benches that measure edgepier binaries one after the other on a loopback site and print
them side by side (bench/idle-cpu, bench/absent-digests): their --edgepier, --epctl and --vs
arguments, tests/site/sitelib set up for each binary in turn, and the table with the ratio of
each figure to the baseline's."""

import os
import sys


def add_binary_arguments(ap, repo):
    ap.add_argument("--edgepier", default=os.path.join(repo, "build", "bin", "edgepier"))
    ap.add_argument("--epctl", default=os.path.join(repo, "build", "bin", "epctl"))
    ap.add_argument("--vs", help="a baseline edgepier binary, measured in the same run")


def measure_each(args, repo, measure):
    """[(name, binary)] and {name: measure(sitelib)}, with sitelib starting `binary`'s nodes."""
    os.environ["EP_BIN"] = os.path.realpath(args.edgepier)
    os.environ["EPCTL_BIN"] = os.path.realpath(args.epctl)
    sys.path.insert(0, os.path.join(repo, "tests", "site"))
    import sitelib  # noqa: E402 - reads EP_BIN when imported

    runs = [("edgepier", os.path.realpath(args.edgepier))]
    if args.vs:
        runs.append(("baseline", os.path.realpath(args.vs)))
    results = {}
    for name, binary in runs:
        sitelib.EP_BIN = binary  # read when each node's command line is made
        results[name] = measure(sitelib)
    return runs, results


def print_table(runs, results, label_width, cell_width, cell, headline=lambda value: value):
    """One row per figure: `cell(value)` for each binary, then edgepier's `headline(value)`
    over the baseline's."""
    with_baseline = "baseline" in results
    print(" " * label_width + "".join(name.ljust(cell_width) for name, _ in runs) + ("ratio" if with_baseline else ""))
    for what in results["edgepier"]:
        cells = "".join(cell(results[name][what]).ljust(cell_width) for name, _ in runs)
        ratio = ""
        if with_baseline and headline(results["baseline"][what]):
            ratio = "%.2fx" % (headline(results["edgepier"][what]) / headline(results["baseline"][what]))
        print(what.ljust(label_width) + cells + ratio)
