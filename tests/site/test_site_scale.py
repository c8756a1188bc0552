"""A 50-node site on loopback (EP_SLOW=1): joining, replication, memory."""

import os
import statistics
import threading
import time

import pytest

import sitelib as sl

N = int(os.environ.get("EP_SITE_NODES", "50"))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parallel(fn, items):
    out = [None] * len(items)

    def work(i, x):
        try:
            out[i] = fn(x)
        except Exception as e:  # noqa: BLE001 - returned to the caller
            out[i] = e

    threads = [threading.Thread(target=work, args=(i, x)) for i, x in enumerate(items)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@pytest.mark.slow
def test_fifty_node_site(env):
    names = ["n%02d" % i for i in range(1, N + 1)]
    t0 = time.monotonic()
    nodes, _ = env.site(N, names=names)  # n01 first, the others at once with n01 as the seed
    started = time.monotonic() - t0
    sl.record("%d nodes: all processes ready (healthz)" % N, "%.1f s" % started)

    def alive_count(n):
        return sum(1 for s in n.states().values() if s == "alive")

    t1 = time.monotonic()
    history = []
    while True:
        counts = parallel(alive_count, nodes)
        counts = [c if isinstance(c, int) else -1 for c in counts]
        history.append((time.monotonic() - t1, min(counts)))
        if min(counts) == N - 1:
            break
        if time.monotonic() - t1 > 30:
            raise AssertionError("after 30 s not every node sees %d alive peers; per node: %s" % (
                N - 1, dict(zip(names, counts))))
        time.sleep(0.25)
    joined = time.monotonic() - t1
    sl.record("%d nodes: every node sees %d alive peers" % (N, N - 1),
              "%.1f s after all were ready (%.1f s after the first started)" % (joined, time.monotonic() - t0))
    assert joined < 30

    # a tag pushed on one node resolves on all within 2 s
    img = env.image("scale")
    src = nodes[N // 2]
    src.push(img, "team/scale", "staging")
    pending = set(range(N))
    t2 = time.monotonic()
    src.put_manifest("team/scale", "v1", img.manifest_raw)
    while pending and time.monotonic() - t2 < 10:
        ok = parallel(lambda i: nodes[i].manifest_digest("team/scale", "v1") == img.digest, sorted(pending))
        pending -= {i for i, good in zip(sorted(pending), ok) if good is True}
        if pending:
            time.sleep(0.01)
    spread = time.monotonic() - t2
    assert not pending, "after 10 s the tag is missing on %s" % [names[i] for i in sorted(pending)]
    sl.record("%d nodes: tag pushed on %s resolves on all" % (N, src.name), "%.0f ms" % (spread * 1000))

    # steady state, measured before the asserts so a failing run still reports it
    time.sleep(3)
    counts = parallel(alive_count, nodes)
    rss = [rss_kib(n.proc.pid) for n in nodes]
    sl.record("%d nodes: RSS per node" % N, "min %d / median %d / max %d KiB (sum %.0f MiB)" % (
        min(rss), statistics.median(rss), max(rss), sum(rss) / 1024))
    sent = [n.metric('edgepier_control_messages_total{direction="sent"}') for n in nodes]
    sl.record("%d nodes: control messages sent per node" % N,
              "median %d in %.0f s" % (statistics.median(sent), time.monotonic() - t0))
    cpu0 = [cpu_seconds(n.proc.pid) for n in nodes]
    time.sleep(5)
    cpu1 = [cpu_seconds(n.proc.pid) for n in nodes]
    per = [(b - a) / 5 * 100 for a, b in zip(cpu0, cpu1)]
    sl.record("%d nodes: CPU per node at rest" % N, "mean %.1f%% (sum %.0f%% of one core)" % (
        statistics.mean(per), sum(per)))
    # reported, not asserted: on a small shared machine starvation shows up here
    flaps = sum(n.log_text().count(" is suspect") for n in nodes)
    sl.record("%d nodes: 'is suspect' events logged while everyone was up" % N, flaps)
    assert spread < 2.0, "the tag took %.0f ms to reach all %d nodes" % (spread * 1000, N)
    assert all(c == N - 1 for c in counts), "not a full mesh 3 s later: %s" % dict(zip(names, counts))
