"""Stopping nodes: a site-wide restart, and nodes stopped in the middle of a pull.

Every node given SIGTERM (or SIGINT) must exit with status 0 within 5 s, in any
state, while its peers stop at the same moment; nothing may crash or hang.
Also measured here, for the record: threads and idle CPU of each node.
EP_STOP_NODES (default 30) and EP_STOP_ROUNDS (default 2) size the site test.
"""

import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

import sitelib as sl

NODES = int(os.environ.get("EP_STOP_NODES", "30"))
ROUNDS = int(os.environ.get("EP_STOP_ROUNDS", "2"))
STOP_LIMIT_S = 5.0


def threads_of(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


STACKS = {}


def dump_stacks(pid, name):
    if shutil.which("gdb"):
        out = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt 12"],
                             capture_output=True, text=True, timeout=60).stdout
        STACKS[name] = "\n".join(l for l in out.splitlines() if l.startswith(("#", "Thread")))


def stop_all_at_once(nodes, sig=signal.SIGTERM):
    """Signals every node in the same instant; returns [(name, exit status, seconds)]."""
    procs = [(n.name, n.proc) for n in nodes]
    t0 = time.monotonic()
    for _, p in procs:
        p.send_signal(sig)
    results = [None] * len(procs)

    def wait(i, name, p):
        try:
            rc = p.wait(timeout=STOP_LIMIT_S * 2)
        except subprocess.TimeoutExpired:
            dump_stacks(p.pid, name)  # where it hangs, for the failure message
            try:
                rc = p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = "hung"
        results[i] = (name, rc, time.monotonic() - t0)

    threads = [threading.Thread(target=wait, args=(i, name, p)) for i, (name, p) in enumerate(procs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def assert_clean(results, nodes, what):
    bad = [(name, rc, round(dt, 2)) for name, rc, dt in results if rc != 0 or dt > STOP_LIMIT_S]
    slowest = max(dt for _, _, dt in results)
    sl.record("%s: %d nodes stopped, %d unclean, slowest %.2f s" % (what, len(results), len(bad), slowest), "")
    if bad:
        by_name = {n.name: n for n in nodes}
        tails = "\n".join("--- %s\n%s\n%s" % (name, sl.log_tail(by_name[name].log, 15), STACKS.get(name, ""))
                          for name, _, _ in bad[:3])
        pytest.fail("%s: unclean stops (name, status, seconds): %s\n%s" % (what, bad, tails))


def test_a_site_stopped_at_once_exits_cleanly(env):
    for r in range(ROUNDS):
        nodes, _ = env.site(NODES, join_timeout=90,
                            names=["r%dn%02d" % (r, i) for i in range(1, NODES + 1)])
        time.sleep(15)  # idle, as a site is most of the time: past the short beats of its joins
        threads = [threads_of(n.proc.pid) for n in nodes]
        cpu0 = [cpu_seconds(n.proc.pid) for n in nodes]
        t0 = time.monotonic()
        time.sleep(10)  # CPU time is counted in 10 ms ticks: a long window for a small share
        idle = [(cpu_seconds(n.proc.pid) - c) / (time.monotonic() - t0) * 100 for n, c in zip(nodes, cpu0)]
        sl.record("round %d: threads per idle node (max of %d)" % (r, NODES), max(threads))
        sl.record("round %d: idle CPU per node, %% of a core (median, max)" % r,
                  "%.2f, %.2f" % (sorted(idle)[len(idle) // 2], max(idle)))
        results = stop_all_at_once(nodes, signal.SIGTERM if r % 2 == 0 else signal.SIGINT)
        assert_clean(results, nodes, "round %d (%s)" % (r, "SIGTERM" if r % 2 == 0 else "SIGINT"))


@pytest.mark.parametrize("moment", ["starting", "moving"])
def test_nodes_stopped_during_a_concurrent_pull_exit_cleanly_and_resume(env, moment):
    nodes, _ = env.site(6, join_timeout=60)
    image = sl.Image(env.dir / "images-stop", "edgepier-site-stop", layer_mb=160)
    nodes[0].push(image, "team/stop", "v1")
    sl.wait_for(lambda: all(n.manifest_digest("team/stop", "v1") for n in nodes), 30, what="tag everywhere")
    pulls = []

    def pull(n):
        try:
            env.skopeo(["copy", "--src-tls-verify=false", "docker://%s/team/stop:v1" % n.registry_address,
                        "oci:%s:v1" % (env.dir / ("pull-" + n.name))], check=False, timeout=120)
        except Exception:  # noqa: BLE001 - the node may be gone mid-pull; that is the point
            pass

    for n in nodes[1:]:
        t = threading.Thread(target=pull, args=(n,))
        t.start()
        pulls.append(t)
    victims = nodes[3:]
    if moment == "moving":  # once the victims are moving chunks between them
        sl.wait_for(lambda: all(v.metric("edgepier_peer_bytes_total{direction=\"from_peers\"}") > 0
                                for v in victims), 60, interval=0.02, what="chunks moving")
    else:  # as soon as each victim answered its client's manifest: its blob fetches are starting
        sl.wait_for(lambda: all(v.metric('edgepier_http_requests_total{route="manifest",status="200"}')
                                for v in victims), 30, interval=0.01, what="pulls starting")
    still_pulling = sum(t.is_alive() for t in pulls)
    assert_clean(stop_all_at_once(victims), victims, "mid-pull (%s)" % moment)
    sl.record("mid-pull (%s): pulls still running when the victims were stopped" % moment,
              "%d of %d" % (still_pulling, len(pulls)))
    assert still_pulling >= len(victims), "the pulls ended before the stop: nothing was tested"
    for t in pulls:
        t.join()
    # Restarted, they resume and serve the image whole.
    for n in victims:
        n.start()
    for n in victims:
        r = n.session.get(n.url + "/v2/team/stop/manifests/v1", headers=sl.MANIFEST_ACCEPT, timeout=30)
        assert r.status_code == 200, (n.name, r.status_code, r.text[:200])
    assert_clean(stop_all_at_once(nodes), nodes, "after resume")
