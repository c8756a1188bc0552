"""The origin (cloud) registry and the systems compared by site-bench.

A system decides where the client on node k pulls from and which processes it runs.
To add one (e.g. EdgePier with the site/P2P data plane, Spegel, a Dragonfly-like
setup), subclass System, implement start/stop/endpoint/ctr_hosts and register it in
SYSTEMS; scenarios, metrics, fault suite and figures pick it up by name.

    class System:
        name                       # short id used in CSV files and figures
        start(run_dir)             # fresh state (new data dirs) for one measured run
        stop()
        endpoint(k) -> "ip:port"   # registry the skopeo client on node k pulls from
        ctr_hosts(k) -> (server, [mirror base URLs])  # containerd hosts.toml for the cloud host
        measured() -> [(label, Popen)]  # processes whose peak RSS/CPU are reported
"""

import json
import os
import subprocess
import time

from netsite import CLOUD_IP, CLOUD_NS, node_ip, node_ns
from util import BenchError, in_ns, kill_tree, proc_stats, spawn, vlog

DOCKER_REGISTRY = "/usr/bin/docker-registry"
CLOUD_PORT = 5000
CLOUD_HOST = "%s:%d" % (CLOUD_IP, CLOUD_PORT)
CLOUD_URL = "http://" + CLOUD_HOST
EP_PORT = 5000
PROXY_PORT = 5001


def docker_registry_config(path, data_dir, addr, proxy_url=None):
    with open(path, "w") as f:
        f.write("version: 0.1\n"
                "log:\n  level: error\n  accesslog:\n    disabled: true\n"
                "storage:\n  filesystem:\n    rootdirectory: %s\n"
                "  delete:\n    enabled: true\n"
                "  cache:\n    blobdescriptor: inmemory\n"
                "http:\n  addr: %s\n" % (data_dir, addr))
        if proxy_url:
            f.write("proxy:\n  remoteurl: %s\n" % proxy_url)


class Origin:
    """Debian's docker-registry in the cloud namespace: the registry CI pushes to."""

    def __init__(self, site, data_dir, log_dir):
        self.site, self.data_dir, self.log_dir = site, data_dir, log_dir
        self.proc = None

    def start(self):
        os.makedirs(self.data_dir, exist_ok=True)
        cfg = os.path.join(self.log_dir, "cloud-registry.yml")
        docker_registry_config(cfg, self.data_dir, "0.0.0.0:%d" % CLOUD_PORT)
        logf = os.path.join(self.log_dir, "cloud-registry.log")
        with open(logf, "ab") as lf:
            self.proc = spawn(in_ns(CLOUD_NS, [DOCKER_REGISTRY, "serve", cfg]),
                              stdout=lf, stderr=lf)
        self.site.wait_http(CLOUD_NS, "http://127.0.0.1:%d/v2/" % CLOUD_PORT, self.proc,
                            logfile=logf)

    def stop(self):
        if self.proc:
            kill_tree(self.proc)
            self.proc = None


class System:
    name = "?"
    description = ""

    def __init__(self, bench):
        self.bench = bench          # gives .site, .args
        self.procs = {}             # label -> Popen

    @property
    def site(self):
        return self.bench.site

    def start(self, run_dir):
        raise NotImplementedError

    def stop(self):
        for p in self.procs.values():
            kill_tree(p)
        self.procs = {}

    def endpoint(self, k):
        raise NotImplementedError

    def ctr_hosts(self, k):
        raise NotImplementedError

    def measured(self):
        return sorted(self.procs.items())

    def logfiles(self):
        """{label: path} of the system's logs (kept in bench/out/logs/ when a run fails)."""
        return {}

    def crashed(self):
        """[(label, returncode)] of measured processes that exited on their own."""
        return [(l, p.returncode) for l, p in self.measured() if p.poll() is not None]

    def process_stats(self):
        """[(label, pid, peak_rss_mb, cpu_s)] of the measured processes (alive ones)."""
        out = []
        for label, p in self.measured():
            st = proc_stats(p.pid) if p.poll() is None else None
            out.append((label, p.pid, st[0] if st else None, st[1] if st else None))
        return out


class Direct(System):
    name = "direct"
    description = "every node pulls straight from the cloud registry over the uplink"

    def start(self, run_dir):
        pass

    def endpoint(self, k):
        return CLOUD_HOST

    def ctr_hosts(self, k):
        return CLOUD_URL, [CLOUD_URL]


class DockerRegistryProxy(System):
    name = "docker-registry-proxy"
    description = "docker-registry as pull-through cache on node 1, every node pulls from it"
    node = 1

    def start(self, run_dir):
        d = os.path.join(run_dir, "proxy")
        os.makedirs(os.path.join(d, "data"))
        cfg = os.path.join(d, "config.yml")
        docker_registry_config(cfg, os.path.join(d, "data"),
                               "%s:%d" % (node_ip(self.node), PROXY_PORT), proxy_url=CLOUD_URL)
        logf = os.path.join(d, "registry.log")
        with open(logf, "ab") as lf:
            p = spawn(in_ns(node_ns(self.node), [DOCKER_REGISTRY, "serve", cfg]),
                      stdout=lf, stderr=lf)
        self.procs = {"node%d" % self.node: p}
        self.log = logf
        self.site.wait_http(node_ns(self.node), "http://%s/v2/" % self.endpoint(self.node),
                            p, logfile=logf)

    def logfiles(self):
        return {"proxy": self.log}

    def endpoint(self, k):
        return "%s:%d" % (node_ip(self.node), PROXY_PORT)

    def ctr_hosts(self, k):
        return None, ["http://" + self.endpoint(k)]


class EdgePier(System):
    """EdgePier on every node, each client pulling from its own node.

    Today's nodes are standalone pull-through mirrors. For the site issue, a subclass
    (or --edgepier-arg) adds the site flags through node_args(): seeds and site key,
    e.g.  --edgepier.seeds=["10.77.0.11:7946"]  --edgepier.site-key-file=<run_dir>/site.key
    """
    name = "edgepier"
    p2p = False
    description = "edgepier on every node (standalone pull-through mirrors today)"

    def __init__(self, bench):
        super().__init__(bench)
        self.run_dir = None
        self.logs = {}
        self.data_dirs = {}

    # -- hook for the site issue: extra per-node flags (seeds, site key, ...) --------
    def site_args(self, k, run_dir):
        """Flags that join node k to the site. Standalone nodes: none.
        Site version: return ['--edgepier.seeds=[...]', '--edgepier.site-key-file=...']."""
        return []

    def upstreams(self):
        # "cloud" is the default upstream (no ?ns=, skopeo); containerd's hosts.toml
        # mirror config adds ?ns=<registry host>, so the cloud host is a namespace too
        return ["cloud=" + CLOUD_URL, "%s=%s" % (CLOUD_HOST, CLOUD_URL)]

    def node_args(self, k, run_dir):
        ip = node_ip(k)
        ups = ",".join('"%s"' % u for u in self.upstreams())
        args = ["--edgepier.node-name=node%d" % k,
                "--edgepier.registry-address=%s:%d" % (ip, EP_PORT),
                "--edgepier.data-dir=%s" % self.data_dirs[k],
                "--edgepier.admin-address=127.0.0.1:5050",
                "--edgepier.cluster-address=%s:7946" % ip,
                "--edgepier.data-address=%s:7947" % ip,
                "--edgepier.upstreams=[%s]" % ups,
                "--edgepier.default-upstream=cloud"]
        args += self.site_args(k, run_dir)
        args += list(self.bench.args.edgepier_arg or [])
        return args

    def start(self, run_dir, nodes=None):
        self.run_dir = run_dir
        nodes = nodes or range(1, self.site.nodes + 1)
        for k in nodes:
            d = os.path.join(run_dir, "edgepier-node%d" % k)
            os.makedirs(os.path.join(d, "data"))
            self.data_dirs[k] = os.path.join(d, "data")
            self.logs[k] = os.path.join(d, "edgepier.log")
            self.start_node(k, wait=False)
        for k in nodes:
            self.wait_node(k)

    def add_node(self, k):
        """Start node k later (a node joining): fresh data dir, same flags."""
        d = os.path.join(self.run_dir, "edgepier-node%d" % k)
        os.makedirs(os.path.join(d, "data"))
        self.data_dirs[k] = os.path.join(d, "data")
        self.logs[k] = os.path.join(d, "edgepier.log")
        self.start_node(k)

    def start_node(self, k, wait=True):
        cmd = [self.bench.args.edgepier] + self.node_args(k, self.run_dir)
        with open(self.logs[k], "ab") as lf:
            lf.write(("$ " + " ".join(cmd) + "\n").encode())
            lf.flush()
            self.procs["node%d" % k] = spawn(in_ns(node_ns(k), cmd), stdout=lf, stderr=lf)
        if wait:
            self.wait_node(k)

    def wait_node(self, k, timeout=30):
        self.site.wait_http(node_ns(k), "http://%s/healthz" % self.endpoint(k),
                            self.procs["node%d" % k], timeout=timeout, logfile=self.logs[k])

    def logfiles(self):
        return {"node%d" % k: path for k, path in self.logs.items()}

    def kill_node(self, k):
        """kill -9 node k's edgepier (fault suite)."""
        p = self.procs["node%d" % k]
        kill_tree(p, grace=0, sig=9)
        vlog("killed edgepier node%d (pid %d)" % (k, p.pid))

    def metrics(self, k):
        """Prometheus text of node k's /metrics ('' if it does not answer)."""
        r = subprocess.run(in_ns(node_ns(k), ["curl", "-s", "-m", "5",
                                              "http://%s/metrics" % self.endpoint(k)]),
                           capture_output=True, stdin=subprocess.DEVNULL)
        return r.stdout.decode(errors="replace")

    def endpoint(self, k):
        return "%s:%d" % (node_ip(k), EP_PORT)

    def ctr_hosts(self, k):
        return None, ["http://" + self.endpoint(k)]


class EdgePierSite(EdgePier):
    """EdgePier nodes joined into one site (shared key from `epctl keygen`, node 1 the
    seed of the others): the P2P data plane shares chunks between nodes. A run starts
    only when every node sees every other one alive (full mesh)."""
    name = "edgepier-site"
    p2p = True          # the fault suite tests the site/P2P scenarios against it
    description = "edgepier on every node, joined into one site (P2P data plane)"
    mesh_timeout = 60

    def site_args(self, k, run_dir):
        args = ["--edgepier.site-key-file=%s" % self.key_file]
        if k != 1:
            args.append('--edgepier.seeds=["%s:7946"]' % node_ip(1))
        return args

    def start(self, run_dir, nodes=None):
        self.key_file = os.path.join(run_dir, "site.key")
        r = subprocess.run([self.bench.args.epctl, "keygen", self.key_file], capture_output=True)
        if r.returncode != 0:
            raise BenchError("epctl keygen failed: %s" % r.stderr.decode(errors="replace"))
        super().start(run_dir, nodes)
        self.wait_mesh()

    def add_node(self, k):
        super().add_node(k)
        self.wait_mesh()

    def members(self, k):
        """{name: state} of the others as node k sees them ({} if no answer)."""
        r = subprocess.run(in_ns(node_ns(k), ["curl", "-s", "-m", "2",
                                              "http://127.0.0.1:5050/admin/v1/members"]),
                           capture_output=True, stdin=subprocess.DEVNULL)
        try:
            ms = json.loads(r.stdout.decode())["members"]
        except (ValueError, KeyError, TypeError):
            return {}
        return {m["name"]: m["state"] for m in ms if not m.get("self")}

    def wait_mesh(self, timeout=None):
        """Until every running node sees every other running node alive."""
        nodes = sorted(self.data_dirs)
        want = {"node%d" % k for k in nodes}
        deadline = time.monotonic() + (timeout or self.mesh_timeout)
        while True:
            views = {k: self.members(k) for k in nodes}
            if all({n for n, st in v.items() if st == "alive"} >= want - {"node%d" % k}
                   for k, v in views.items()):
                return
            if time.monotonic() > deadline:
                raise BenchError("site did not form a full mesh in %ss: %s"
                                 % (timeout or self.mesh_timeout, views))
            time.sleep(0.2)


class EdgePierOne(EdgePier):
    """One standalone edgepier on node 1 and every node's client pulling through it: the
    same setup as docker-registry-proxy, to compare how often each moves the image over the
    uplink when clients arrive at once (the mirror issue's single-flight goal)."""
    name = "edgepier-one"
    description = "one edgepier on node 1 as pull-through mirror, every node pulls from it"
    node = 1

    def start(self, run_dir, nodes=None):
        super().start(run_dir, [self.node])

    def endpoint(self, k):
        return super().endpoint(self.node)


SYSTEMS = {cls.name: cls for cls in (Direct, DockerRegistryProxy, EdgePier, EdgePierSite, EdgePierOne)}
DEFAULT_SYSTEMS = ["direct", "docker-registry-proxy", "edgepier", "edgepier-site"]
