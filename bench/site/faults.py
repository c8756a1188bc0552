"""Fault suite: failures of the uplink and of nodes during and after pulls.

Every scenario starts a fresh site state (new edgepier data dirs), ends by verifying
every client's pulled image digest by digest, and reports PASS / FAIL / PENDING with
the time to recover. Scenarios that need the site (membership, P2P data plane) are
reported as PENDING with what was observed on today's standalone mirror nodes; a
PENDING is never counted as a pass.

The client is skopeo; a pull that fails is retried by the harness (like a kubelet
would: back-off, pull again), and every attempt is reported.
"""

import copy
import os
import shutil
import threading
import time

import clients
import netsite
import systems
from util import MiB, PYTHON, fmt, in_ns, log, run, sh

PASS, FAIL, PENDING = "PASS", "FAIL", "PENDING"
P2P = "pending: needs P2P data plane"
SITE = "pending: needs site (membership, site key)"


class Result:
    def __init__(self, fid, title, status, recover_s=None, detail="", observed=""):
        self.fid, self.title, self.status = fid, title, status
        self.recover_s, self.detail, self.observed = recover_s, detail, observed


class Puller:
    """Pulls with harness retries on one node, in a thread; records every attempt."""

    def __init__(self, ctx, k, endpoint_node=None, deadline_s=300, attempt_timeout=240,
                 retry_to=None, image=None):
        self.ctx, self.k = ctx, k
        self.image = image or ctx.image
        self.endpoint_node = endpoint_node or k
        self.retry_to = retry_to            # node whose endpoint retries use (failover)
        self.deadline_s, self.attempt_timeout = deadline_s, attempt_timeout
        self.attempts = []
        self.final = None
        self.thread = None
        self.max_attempts = 30

    def _system_for(self, node):
        ep = self.ctx.system

        class Fixed:                        # the client asks endpoint(k): answer `node`'s
            def endpoint(self, _k):
                return ep.endpoint(node)
        return Fixed()

    def run(self):
        t_end = time.monotonic() + self.deadline_s
        node = self.endpoint_node
        for a in range(1, self.max_attempts + 1):
            left = t_end - time.monotonic()
            if left <= 5:
                break
            r = self.ctx.client.pull(self.k, self._system_for(node), self.image, attempt=a,
                                     timeout=min(self.attempt_timeout, left))
            r["via"], r["attempt"] = node, a
            if r["ok"]:
                r["verified"], r["detail"] = self.ctx.client.verify(self.k, r, self.image)
            else:
                r["verified"], r["detail"] = False, "rc=%s %s" % (r["rc"], r["err"])
            self.attempts.append(r)
            if r["verified"]:
                self.final = r
                return
            if self.retry_to:
                node = self.retry_to
            # kubelet-like back-off between attempts: 1, 2, 4, 8, 16, 30, 30 ... s
            time.sleep(min(30.0, 2.0 ** (a - 1)))

    def start(self):
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def join(self):
        self.thread.join()
        return self

    @property
    def ok(self):
        return self.final is not None

    @property
    def end(self):
        return self.final["end"] if self.final else None

    def describe(self):
        parts = []
        for r in self.attempts:
            if r["verified"]:
                parts.append("attempt %d via node%d ok in %.1fs"
                             % (r["attempt"], r["via"], r["secs"]))
            else:
                parts.append("attempt %d via node%d FAILED after %.1fs: %s"
                             % (r["attempt"], r["via"], r["secs"], r["detail"][:200]))
        return "node%d: " % self.k + ("; ".join(parts) or "no attempt")


class Ctx:
    def __init__(self, bench, image, system_name):
        self.bench, self.image = bench, image
        self.system_cls = systems.SYSTEMS[system_name]
        self.p2p = getattr(self.system_cls, "p2p", False)
        self.site = bench.site
        self.system = None
        self.client = None
        self.run_dir = None

    def fresh(self, label, nodes=None):
        self.run_dir = self.bench.new_run_dir("%s-%s" % (self.system_cls.name, label))
        self.site.restore_uplink()
        self.site.set_uplink(self.bench.args.fault_uplink)
        self.system = self.system_cls(self.bench)
        self.system.start(self.run_dir, nodes)
        self.client = clients.Skopeo(self.bench)
        self.client.prepare(self.run_dir, self.system)

    def close(self):
        if self.site.cut:
            self.site.restore_uplink()
        if self.system:
            label = os.path.basename(self.run_dir).rsplit("-", 1)[0]
            metrics, states = {}, {}
            for k in sorted(self.system.logs):
                p = self.system.procs.get("node%d" % k)
                states[k] = "alive" if p is not None and p.poll() is None else \
                    "exited rc=%s" % (p.returncode if p is not None else "?")
                metrics[k] = self.system.metrics(k) if states[k] == "alive" else ""
            self.system.stop()
            # keep the nodes' logs of every fault scenario: bench/out/fault-logs/<label>/
            dst = os.path.join(self.bench.args.out, "fault-logs", label)
            shutil.rmtree(dst, ignore_errors=True)
            os.makedirs(dst)
            for k, lf in sorted(self.system.logs.items()):
                if os.path.exists(lf):
                    shutil.copy(lf, os.path.join(dst, "node%d.log" % k))
            for k, text in metrics.items():
                with open(os.path.join(dst, "node%d.metrics" % k), "w") as f:
                    f.write(text)
            with open(os.path.join(dst, "process-states.txt"), "w") as f:
                f.write("".join("node%d: %s at the end of the scenario\n" % kv
                                for kv in sorted(states.items())))
        if self.run_dir:
            netsite.remove_tree(self.run_dir)
        self.system = self.client = self.run_dir = None

    def wait_uplink_tx(self, nbytes, tx0, timeout=600):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.site.uplink_bytes()[0] - tx0 >= nbytes:
                return True
            time.sleep(0.05)
        return False


def _verify_all(pullers):
    bad = [p for p in pullers if not p.ok]
    return not bad, bad


# ------------------------------------------------------------------------ scenarios

def f_uplink_cut_after_pull(ctx):
    """The image reached the site (half of the nodes pulled it), then the uplink is cut;
    every node pulls by tag again."""
    n = ctx.site.nodes
    warm = list(range(1, (n + 1) // 2 + 1))
    cold = [k for k in range(warm[-1] + 1, n + 1)]
    ctx.fresh("uplink-cut-after-pull")
    try:
        for k in warm:
            p = Puller(ctx, k, deadline_s=600)
            p.run()
            if not p.ok:
                return [Result("F1", "uplink cut after the image reached the site", FAIL,
                               detail="warm-up pull failed: " + p.describe())]
        ttl = ctx.bench.args.fault_tag_ttl
        time.sleep(ttl + 1)                 # tag answers are stale: a pull must revalidate
        ctx.site.cut_uplink()
        t_cut = time.monotonic()
        ps = [Puller(ctx, k, deadline_s=ctx.bench.args.fault_offline_wait,
                     attempt_timeout=ctx.bench.args.fault_offline_wait)
              for k in range(1, n + 1)]
        for p in ps:
            if p.k in cold and not ctx.p2p:
                p.max_attempts = 1          # standalone: nothing to wait for, one attempt
            p.start()
        for p in ps:
            p.join()
        wp = [p for p in ps if p.k in warm]
        cp = [p for p in ps if p.k in cold]
        ok_w = all(p.ok for p in wp)
        worst = max((p.end - t_cut for p in wp if p.ok), default=None)
        res = [Result("F1a", "uplink cut after pull: nodes that pulled before pull again by tag",
                      PASS if ok_w else FAIL, recover_s=worst if ok_w else None,
                      detail="nodes %s, tag-ttl %ss expired before the cut" % (
                          ",".join(map(str, warm)), ttl),
                      observed=" | ".join(p.describe() for p in wp))]
        if cp:
            got = sum(p.ok for p in cp)
            title = "uplink cut after pull: nodes that never pulled get it from the site"
            obs = "nodes %s: %d/%d pulls succeeded | %s" % (
                ",".join(map(str, cold)), got, len(cp), " | ".join(p.describe() for p in cp))
            if ctx.p2p:
                worst_c = max((p.end - t_cut for p in cp if p.ok), default=None)
                res.append(Result("F1b", title, PASS if got == len(cp) else FAIL,
                                  recover_s=worst_c if got == len(cp) else None,
                                  detail="cold nodes %s" % ",".join(map(str, cold)),
                                  observed=obs))
            else:
                res.append(Result("F1b", title, PENDING, detail=P2P,
                                  observed="standalone " + obs))
        return res
    finally:
        ctx.close()


def f_uplink_cut_mid_pull(ctx):
    """Cold concurrent pulls on every node; the uplink is cut when ~30% of one image has
    crossed it, restored after --fault-cut seconds; pulls must complete."""
    n = ctx.site.nodes
    ctx.fresh("uplink-cut-mid-pull")
    try:
        tx0 = ctx.site.uplink_bytes()[0]
        wait = ctx.bench.args.fault_cut + 600
        ps = [Puller(ctx, k, deadline_s=wait, attempt_timeout=wait).start()
              for k in range(1, n + 1)]
        if not ctx.wait_uplink_tx(0.3 * ctx.image.bytes, tx0):
            return [Result("F2", "uplink cut mid cold pull, then restored", FAIL,
                           detail="pulls never reached 30% of the image")]
        ctx.site.cut_uplink()
        mid = ctx.site.uplink_bytes()[0] - tx0
        time.sleep(ctx.bench.args.fault_cut)
        ctx.site.restore_uplink()
        t_up = time.monotonic()
        for p in ps:
            p.join()
        ok, bad = _verify_all(ps)
        retried = [p for p in ps if len(p.attempts) > 1]
        rec = max(p.end for p in ps) - t_up if ok else None
        return [Result("F2", "uplink cut mid cold pull, restored after %ss" % ctx.bench.args.fault_cut,
                       PASS if ok else FAIL, recover_s=rec,
                       detail="cut at %.0f MiB over the uplink; %d/%d pulls needed a retry; "
                              "time to recover = last pull done - uplink restored"
                              % (mid / MiB, len(retried), n),
                       observed=" | ".join(p.describe() for p in ps))]
    finally:
        ctx.close()


def f_node_restart_mid_pull(ctx):
    """Cold concurrent pulls; node 1's edgepier is killed (-9) mid-pull and restarted
    with the same data dir; its client pulls again."""
    n = ctx.site.nodes
    ctx.fresh("node-restart-mid-pull")
    try:
        tx0 = ctx.site.uplink_bytes()[0]
        ps = [Puller(ctx, k, deadline_s=900).start() for k in range(1, n + 1)]
        if not ctx.wait_uplink_tx(0.3 * ctx.image.bytes, tx0):
            return [Result("F3", "node restarted during a pull", FAIL,
                           detail="pulls never reached 30% of the image")]
        ctx.system.kill_node(1)
        t_kill = time.monotonic()
        restart_err = None
        try:
            ctx.system.start_node(1)
        except Exception as e:
            restart_err = str(e)
        t_ready = time.monotonic()
        for p in ps:
            p.join()
        ok, bad = _verify_all(ps)
        rec = ps[0].end - t_kill if ps[0].ok else None
        return [Result("F3", "node 1 killed (-9) mid-pull and restarted, pull again",
                       PASS if ok and not restart_err else FAIL, recover_s=rec,
                       detail=("restart FAILED: %s" % restart_err) if restart_err else
                       "restarted and healthy %.1fs after the kill; time to recover = kill -> "
                       "node 1's pull verified" % (t_ready - t_kill),
                       observed=" | ".join(p.describe() for p in ps))]
    finally:
        ctx.close()


def f_serving_node_killed(ctx):
    """Standalone nodes: the node serving the pull is the client's own node. It is
    killed (-9) mid-pull and stays down; the client fails over to another node (as
    containerd does with a second mirror in hosts.toml). P2P variant: a peer that
    serves chunks to the pulling node dies, the pull goes on with no client error."""
    n = ctx.site.nodes
    ctx.fresh("serving-node-killed")
    try:
        tx0 = ctx.site.uplink_bytes()[0]
        other = 2 if n >= 2 else None
        p = Puller(ctx, 1, deadline_s=900, retry_to=other).start()
        if not ctx.wait_uplink_tx(0.3 * ctx.image.bytes, tx0):
            return [Result("F4", "serving node killed mid-pull", FAIL,
                           detail="pull never reached 30% of the image")]
        ctx.system.kill_node(1)
        t_kill = time.monotonic()
        p.join()
        rec = p.end - t_kill if p.ok else None
        res = [Result("F4a", "serving node (client's own) killed mid-pull, client fails over "
                      "to node %s" % other, PASS if p.ok else FAIL, recover_s=rec,
                      detail="node 1 stays down; time to recover = kill -> pull verified",
                      observed=p.describe())]
        return res
    finally:
        ctx.close()


def f_peer_killed(ctx):
    """Site only: node 1 pulls cold; node 2 (a peer: a designated fetcher of some of
    the chunks) is killed (-9) mid-pull and stays down; the pull must go on without
    a client error."""
    title = "peer serving chunks killed mid-pull, pull continues without client error"
    if not ctx.p2p or ctx.site.nodes < 2:
        return [Result("F4b", title, PENDING, detail=P2P)]
    ctx.fresh("peer-killed")
    try:
        tx0 = ctx.site.uplink_bytes()[0]
        p = Puller(ctx, 1, deadline_s=900).start()
        if not ctx.wait_uplink_tx(0.3 * ctx.image.bytes, tx0):
            return [Result("F4b", title, FAIL, detail="pull never reached 30% of the image")]
        ctx.system.kill_node(2)
        t_kill = time.monotonic()
        p.join()
        clean = p.ok and len(p.attempts) == 1
        return [Result("F4b", title, PASS if clean else FAIL,
                       recover_s=p.end - t_kill if p.ok else None,
                       detail="node 2 stays down; time to recover = kill -> pull verified"
                              + ("" if clean or not p.ok else "; the client saw an error and "
                                 "needed a retry"),
                       observed=p.describe())]
    finally:
        ctx.close()


def _site_but_last_node_with_image(ctx, fid, title, label):
    """Starts nodes 1..N-1 and pulls the image on node 1; a failure Result list, or None."""
    ctx.fresh(label, nodes=range(1, ctx.site.nodes))
    p = Puller(ctx, 1, deadline_s=600)
    p.run()
    if not p.ok:
        return [Result(fid, title, FAIL, detail="first pull on node 1 failed: " + p.describe())]
    return None


def f_new_node(ctx):
    """Site only: nodes 1..N-1 run, node 1 pulls the image; node N joins the site and
    its client pulls: the bytes must come from the site, not over the uplink."""
    title = "new node joins and pulls from the site, not the uplink"
    n = ctx.site.nodes
    if not ctx.p2p or n < 2:
        return [Result("F6", title, PENDING, detail=SITE)]
    try:
        failed = _site_but_last_node_with_image(ctx, "F6", title, "new-node")
        if failed:
            return failed
        t0 = time.monotonic()
        ctx.system.add_node(n)
        t_joined = time.monotonic()
        tx0 = ctx.site.uplink_bytes()[0]
        q = Puller(ctx, n, deadline_s=600)
        q.run()
        up = ctx.site.uplink_bytes()[0] - tx0
        ok = q.ok and up < 0.1 * ctx.image.bytes
        return [Result("F6", title, PASS if ok else FAIL,
                       recover_s=q.end - t0 if q.ok else None,
                       detail="node%d joined (full mesh) in %.1fs; %.1f MiB crossed the uplink "
                              "during its pull (limit 10%% of the image); time = start of the "
                              "new node -> pull verified" % (n, t_joined - t0, up / MiB),
                       observed=q.describe())]
    finally:
        ctx.close()


def _push_to_node(ctx, k, image, repo, tag):
    """skopeo copy the image's OCI layout to node k's edgepier as repo:tag (from node k)."""
    cmd = in_ns(netsite.node_ns(k), ["skopeo", "copy", "-q", "--retry-times", "0",
                                     "--dest-tls-verify=false", "oci:%s:%s" % (image.dir, image.tag),
                                     "docker://%s/%s:%s" % (ctx.system.endpoint(k), repo, tag)])
    rc, _, err, _ = run(cmd, timeout=600, check=False)
    return rc == 0, err.strip()[-300:]


def _manifest_status(ctx, k, repo, tag):
    return ctx.site.http_status(netsite.node_ns(k), "http://%s/v2/%s/manifests/%s"
                                % (ctx.system.endpoint(k), repo, tag))


def _retagged(image, repo, tag):
    img = copy.copy(image)
    img.repo, img.tag = repo, tag
    return img


def f_partition(ctx):
    """Site only: node N's link to the site goes down. A tag is pushed on node 1 and
    another on node N while they are apart; both sides keep accepting and serving.
    After healing, both tags resolve on both sides (recover = heal -> both visible), and
    node N's client pulls the image pushed on node 1, verified digest by digest."""
    title = "site partition: both halves keep serving, index converges after healing"
    n = ctx.site.nodes
    if not ctx.p2p or n < 2:
        return [Result("F5", title, PENDING, detail=SITE)]
    ctx.fresh("partition")
    port = "n%d" % n
    try:
        sh(["ip", "-n", netsite.SITE_NS, "link", "set", port, "down"])
        ok1, err1 = _push_to_node(ctx, 1, ctx.image, "f5/app", "main-side")
        okn, errn = _push_to_node(ctx, n, ctx.image, "f5/app", "cut-side")
        if not (ok1 and okn):
            return [Result("F5", title, FAIL, detail="push during the partition failed: node1: %s; "
                           "node%d: %s" % (err1 or "ok", n, errn or "ok"))]
        leaked = _manifest_status(ctx, n, "f5/app", "main-side") == 200
        t0 = time.monotonic()
        sh(["ip", "-n", netsite.SITE_NS, "link", "set", port, "up"])
        recovered = None
        while time.monotonic() - t0 < 60:
            if (_manifest_status(ctx, n, "f5/app", "main-side") == 200 and
                    _manifest_status(ctx, 1, "f5/app", "cut-side") == 200):
                recovered = time.monotonic() - t0
                break
            time.sleep(0.2)
        if recovered is None:
            return [Result("F5", title, FAIL, detail="tags not on both sides 60 s after healing")]
        ctx.image_for_pull = _retagged(ctx.image, "f5/app", "main-side")
        q = Puller(ctx, n, deadline_s=300, image=ctx.image_for_pull)
        q.run()
        ok = q.ok and not leaked
        return [Result("F5", title, PASS if ok else FAIL, recover_s=recovered,
                       detail="tags on both sides %.1fs after healing%s; node%d pulled the image "
                              "pushed on node 1" % (recovered, " (BUT the cut side saw the other "
                                                    "side's tag during the partition)" if leaked else "", n),
                       observed=q.describe())]
    finally:
        sh(["ip", "-n", netsite.SITE_NS, "link", "set", port, "up"], check=False)
        ctx.close()


INTRUDER_PROBE = r"""
import os, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(os.urandom(32))          # an X25519 public key
got = b""
try:
    while len(got) < 64:
        b = s.recv(64 - len(got))
        if not b:
            break
        got += b
    s.sendall(os.urandom(32))      # a transcript MAC made without the site key
    s.sendall(b"\x00\x00\x00\x40" + os.urandom(64))   # and a chunk request frame anyway
    s.settimeout(5)
    rest = s.recv(65536)
except OSError:
    rest = b""
print(len(got), len(rest))
"""


def f_intruder(ctx):
    """Site only: nodes 1..N-1 form the site and node 1 pulls the image. On node N an
    edgepier with another site key is seeded at node 1; a raw client also tries the data
    port with a made-up handshake. Pass: the intruder never becomes a member on either
    side, it cannot pull the image with the uplink cut (nothing comes from the site), and
    the data port answers the raw client with nothing beyond the handshake."""
    title = "intruder without the site key can neither join nor read chunks"
    n = ctx.site.nodes
    if not ctx.p2p or n < 2:
        return [Result("F7", title, PENDING, detail=SITE)]
    try:
        failed = _site_but_last_node_with_image(ctx, "F7", title, "intruder")
        if failed:
            return failed
        ctx.system.key_file = os.path.join(ctx.run_dir, "intruder.key")
        run([ctx.bench.args.epctl, "keygen", ctx.system.key_file])
        EdgePierBase = systems.EdgePier
        EdgePierBase.add_node(ctx.system, n)   # the intruder: same flags, other key, no mesh wait
        ctx.site.cut_uplink()
        time.sleep(8)                          # several heartbeats and join attempts
        seen_by_site = "node%d" % n in ctx.system.members(1)
        intruder_sees = ctx.system.members(n)
        q = Puller(ctx, n, deadline_s=20, attempt_timeout=15)
        q.max_attempts = 1
        q.run()
        r = run(in_ns(netsite.node_ns(n), [PYTHON, "-c", INTRUDER_PROBE, netsite.node_ip(1), "7947"]),
                check=False, timeout=30)
        got, rest = (int(x) for x in (r[1].split() or ["0", "-1"]))
        refused = "edgepier_peer_handshakes_refused_total" in ctx.system.metrics(1)
        ok = not seen_by_site and not intruder_sees and not q.ok and rest == 0 and got == 64
        return [Result("F7", title, PASS if ok else FAIL,
                       detail="site lists intruder: %s; intruder sees members: %s; intruder pull "
                              "with the uplink cut: %s; raw data-port client got %d handshake bytes, "
                              "then %d bytes%s" % (seen_by_site, sorted(intruder_sees) or "none",
                                                   "succeeded (LEAK)" if q.ok else "failed",
                                                   got, rest, "" if refused else " (no refusal metric)"),
                       observed=q.describe())]
    finally:
        ctx.close()


FAULTS = [("uplink-cut-after-pull", f_uplink_cut_after_pull),
          ("uplink-cut-mid-pull", f_uplink_cut_mid_pull),
          ("node-restart-mid-pull", f_node_restart_mid_pull),
          ("serving-node-killed", f_serving_node_killed),
          ("peer-killed", f_peer_killed),
          ("new-node", f_new_node),
          ("partition", f_partition),
          ("intruder", f_intruder)]


def run_faults(bench, image, system_names, only=None):
    bench.build_site(bench.args.nodes_faults)
    results = []
    for sysname in system_names:
        ctx = Ctx(bench, image, sysname)
        log("== fault suite against %s (%d nodes, uplink %d Mbit/s, image %.0f MiB)"
            % (sysname, ctx.site.nodes, bench.args.fault_uplink, image.bytes / MiB))
        for name, fn in FAULTS:
            if only and name not in only:
                continue
            t0 = time.monotonic()
            log("fault %s ..." % name)
            try:
                rs = fn(ctx)
            except Exception as e:
                rs = [Result(name, name, FAIL, detail="harness error: %s" % e)]
            for r in rs:
                r.system = sysname
                log("  %-7s %-4s %s%s" % (r.status, r.fid, r.title,
                                           "  [recover %.1fs]" % r.recover_s
                                           if r.recover_s is not None else ""))
                if r.status == FAIL:
                    log("          %s\n          observed: %s" % (r.detail, r.observed))
            log("  (%.0fs)" % (time.monotonic() - t0))
            results += rs
    bench.teardown_site()
    return results


def print_report(results, out=None):
    lines = []
    for sysname in dict.fromkeys(r.system for r in results):
        lines += ["", "FAULT SUITE: %s" % sysname,
                  "%-4s %-8s %-10s %s" % ("id", "status", "recover_s", "scenario")]
        for r in sorted((r for r in results if r.system == sysname), key=lambda r: r.fid):
            lines.append("%-4s %-8s %-10s %s" % (r.fid, r.status, fmt(r.recover_s), r.title))
            if r.detail:
                lines.append("%24s %s" % ("", r.detail))
            if r.observed:
                lines.append("%24s observed: %s" % ("", r.observed))
    n = {s: sum(r.status == s for r in results) for s in (PASS, FAIL, PENDING)}
    lines.append("")
    lines.append("faults: %d passed, %d failed, %d pending (pending is never counted as pass)"
                 % (n[PASS], n[FAIL], n[PENDING]))
    text = "\n".join(lines)
    print(text, flush=True)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
    return n
