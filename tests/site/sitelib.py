"""Building blocks of the multi-node site tests.

Real processes only: every node is build/bin/edgepier, joined to a site with a
key written by build/bin/epctl keygen; images are made by tools/mkimage.py and
pushed by skopeo; epctl is the real admin tool. One `Env` per test owns a
temporary directory and everything started in it; `Env.close()` stops every
process, deletes every network namespace it made and removes the directory.

  Node    one edgepier on free 127.0.0.1 ports (or, with a Lan, inside its own
          network namespace on 10.78.0.N, reached from here through nsfwd.py)
  Lan     network namespaces: one per node plus a bridge namespace, each node
          linked to the bridge by a veth pair; cut()/heal() a node's link
  Image   a deterministic OCI layout pushed with skopeo
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
from eptest import (CmdError, EP_BIN, EPCTL, MKIMAGE, PYTHON, REPO, SYSTEM_BLOB_CACHE,  # noqa: E402,F401
                    RunningWorlds, free_port, log_tail, run, stop_process, with_blob_cache)
from eptest import wait_for_timed as wait_for  # noqa: E402  (returns (value, seconds))

NSFWD = HERE / "nsfwd.py"
NETNS_PREFIX = "epst"  # + "<pid>x<n>-": namespaces this suite makes (never anyone else's)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MANIFEST_ACCEPT = {"Accept": ", ".join([
    "application/vnd.oci.image.index.v1+json", OCI_MANIFEST,
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json"])}

# Measured numbers, printed in the terminal summary (conftest.py).
RESULTS = []


def record(what, value):
    line = "%s: %s" % (what, value)
    RESULTS.append(line)
    print("MEASURED " + line)


# ----------------------------------------------------------------------------- basics


def parse_metrics(text):
    """{'name{labels}': float} of a Prometheus text page."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            out[key] = float(value)
        except ValueError:
            pass
    return out


# ---------------------------------------------------------------------------- images

class Image:
    """A deterministic OCI layout (tools/mkimage.py)."""

    def __init__(self, outdir, seed, tag="v1", layer_mb=0.05, layers=1):
        p = run([PYTHON, MKIMAGE, outdir, "--seed", seed, "--layers", layers, "--layer-mb", layer_mb,
                 "--tag", tag], timeout=120, quiet=True)
        info = json.loads(p.out)
        self.dir = Path(outdir)
        self.tag = tag
        self.digest = info["manifest"]
        self.manifest_raw = (self.dir / "blobs" / "sha256" / self.digest.split(":", 1)[1]).read_bytes()



# ------------------------------------------------------------------------------ nodes

class Node:
    """One edgepier process. With `lan`, it runs in the Lan's namespace number
    `index` on 10.78.0.<index>, and self.url/self.admin_url are 127.0.0.1 ports
    of an nsfwd.py relay into that namespace."""

    def __init__(self, env, name, key=None, seeds=(), lan=None, index=None, extra=(), start=True):
        self.env, self.name, self.key, self.lan, self.index = env, name, key, lan, index
        self.dir = env.dir / name
        k = 1
        while self.dir.exists():  # two processes may claim one name (an impostor)
            k += 1
            self.dir = env.dir / ("%s.%d" % (name, k))
        self.dir.mkdir()
        self.data = self.dir / "data"
        self.log = self.dir / "edgepier.log"
        self.proc = None
        self.fwd = None
        if lan is None:
            host = "127.0.0.1"
            self.registry_address = "%s:%d" % (host, free_port())
            self.admin_address = "%s:%d" % (host, free_port())
            self.cluster_address = "%s:%d" % (host, free_port())
            self.data_address = "%s:%d" % (host, free_port())
        else:
            host = lan.address(index)
            self.registry_address = "%s:5000" % host
            self.admin_address = "127.0.0.1:5050"  # loopback of the node's own namespace
            self.cluster_address = "%s:7946" % host
            self.data_address = "%s:7947" % host
        self.seeds = list(seeds)
        # EP_NODE_EXTRA: more flags for every node (diagnosis, e.g. CAF scheduler settings)
        self.extra = list(extra) + os.environ.get("EP_NODE_EXTRA", "").split()
        self.starts = 0
        if lan is not None:
            self._start_forwarder()
        else:
            self.url = "http://" + self.registry_address
            self.admin_url = "http://" + self.admin_address
        self.session = requests.Session()
        if start:
            self.start()

    # -- process
    def command(self):
        cmd = [EP_BIN,
               "--edgepier.node-name=" + self.name,
               "--edgepier.data-dir=%s" % self.data,
               "--edgepier.registry-address=" + self.registry_address,
               "--edgepier.admin-address=" + self.admin_address,
               "--edgepier.cluster-address=" + self.cluster_address,
               "--edgepier.data-address=" + self.data_address]
        if self.key:
            cmd.append("--edgepier.site-key-file=%s" % self.key)
        if self.seeds:
            cmd.append("--edgepier.seeds=%s" % json.dumps(self.seeds))
        cmd += self.extra
        if self.lan is not None:
            cmd = ["ip", "netns", "exec", self.lan.ns(self.index)] + cmd
        return cmd

    def _start_forwarder(self):
        targets = [self.registry_address, self.admin_address]
        self.fwd = subprocess.Popen([PYTHON, str(NSFWD), self.lan.ns(self.index)] + targets,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.env.closers.append(lambda: stop_process(self.fwd, grace=2))
        line = self.fwd.stdout.readline()
        if not line:
            raise RuntimeError("nsfwd did not start: %s" % self.fwd.stderr.read().decode(errors="replace"))
        ports = json.loads(line)
        self.url = "http://127.0.0.1:%d" % ports[self.registry_address]
        self.admin_url = "http://127.0.0.1:%d" % ports[self.admin_address]

    def start(self, wait=True, timeout=20):
        self.starts += 1
        cmd = self.command()
        with open(self.log, "ab") as lf:
            lf.write(("$ " + " ".join(cmd) + "\n").encode())
            lf.flush()
            self.proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.started_at = time.monotonic()
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while self.http_status("/healthz") != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                rc = self.proc.poll()
                raise RuntimeError("%s did not start (%s):\n%s" % (
                    self.name, "exit status %s" % rc if rc is not None else "no /healthz after %ss" % timeout,
                    log_tail(self.log)))
            time.sleep(0.02)
        self.ready_at = time.monotonic()

    def stop(self):
        stop_process(self.proc)

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    # -- HTTP
    def http_status(self, path, timeout=2):
        try:
            return self.session.get(self.url + path, timeout=timeout).status_code
        except requests.RequestException:
            return None

    def manifest(self, repo, tag, timeout=5):
        """(status, digest header) of GET /v2/<repo>/manifests/<tag>."""
        r = self.session.get("%s/v2/%s/manifests/%s" % (self.url, repo, tag),
                             headers=MANIFEST_ACCEPT, timeout=timeout)
        return r.status_code, r.headers.get("Docker-Content-Digest"), r.content

    def manifest_digest(self, repo, tag):
        """The digest this node resolves repo:tag to, or None (404)."""
        try:
            status, digest, _ = self.manifest(repo, tag)
        except requests.RequestException:
            return None
        return digest if status == 200 else None

    def put_manifest(self, repo, ref, raw, media_type=OCI_MANIFEST):
        r = self.session.put("%s/v2/%s/manifests/%s" % (self.url, repo, ref), data=raw,
                             headers={"Content-Type": media_type}, timeout=10)
        assert r.status_code == 201, (r.status_code, r.text)
        return r

    def delete_tag(self, repo, tag):
        r = self.session.delete("%s/v2/%s/manifests/%s" % (self.url, repo, tag), timeout=10)
        assert r.status_code == 202, (r.status_code, r.text)
        return r

    def metrics(self):
        r = self.session.get(self.url + "/metrics", timeout=5)
        assert r.status_code == 200, r.status_code
        return parse_metrics(r.text)

    def metric(self, key):
        return self.metrics().get(key)

    def rejected(self):
        return self.metric('edgepier_control_messages_total{direction="rejected"}') or 0

    # -- admin API (HTTP, for polling) and epctl (the real tool)
    def admin(self, path, timeout=5):
        r = self.session.get(self.admin_url + path, timeout=timeout)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def members(self):
        """{name: member} of GET /admin/v1/members (self included)."""
        return {m["name"]: m for m in self.admin("/admin/v1/members")["members"]}

    def states(self):
        """{name: state} of the other members; {} if the admin API does not answer."""
        try:
            return {n: m["state"] for n, m in self.members().items() if not m["self"]}
        except (requests.RequestException, AssertionError, ValueError):
            return {}

    def tags(self, repo=None):
        path = "/admin/v1/tags" + ("?repo=" + repo if repo else "")
        return self.admin(path)["tags"]

    def epctl(self, *args, check=True, json_out=False, input=None, timeout=30):
        cmd = [EPCTL, "--admin", self.admin_url] + (["--json"] if json_out else []) + list(args)
        p = run(cmd, check=check, input=input, timeout=timeout)
        if json_out and p.returncode == 0:
            p.doc = json.loads(p.out)
        return p

    # -- pushing
    def push(self, image, repo, tag):
        """skopeo copy an Image to this node as repo:tag."""
        self.env.skopeo(["copy", "--retry-times", "0", "--dest-tls-verify=false",
                         "oci:%s:%s" % (image.dir, image.tag),
                         "docker://%s/%s:%s" % (self.url.split("//", 1)[1], repo, tag)])
        return image.digest


def member_states_everywhere(nodes):
    """{node name: {peer: state}} as each running node sees it."""
    return {n.name: n.states() for n in nodes}


def full_mesh(nodes, expected=None):
    """True if every node sees every other one of `expected` (default: nodes) alive."""
    names = [n.name for n in (expected or nodes)]
    for n in nodes:
        st = n.states()
        for other in names:
            if other != n.name and st.get(other) != "alive":
                return False
    return True


# -------------------------------------------------------------------------------- Lan

def _sh(*cmd, check=True):
    return run(list(cmd), check=check, timeout=20, quiet=True)


def cleanup_stale_namespaces():
    """Delete namespaces an earlier, killed run of this suite left (by our prefix and a dead pid)."""
    p = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in p.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(r"^%s(\d+)x\d+-" % NETNS_PREFIX, name)
        if m and not os.path.exists("/proc/%s" % m.group(1)):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


class Lan:
    """n node namespaces on 10.78.0.0/24, each linked by a veth pair to a bridge
    in its own namespace. cut(i) takes node i's port on the bridge down (the
    cable pulled at the switch: the node keeps its address, loses its peers)."""

    _count = 0

    def __init__(self, env, n):
        Lan._count += 1
        self.prefix = "%s%dx%d-" % (NETNS_PREFIX, os.getpid(), Lan._count)
        self.n = n
        self.names = []
        env.closers.append(self.close)
        self.br = self._add_ns("br")
        _sh("ip", "-n", self.br, "link", "add", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0")
        _sh("ip", "-n", self.br, "link", "set", "br0", "up")
        for i in range(1, n + 1):
            ns = self._add_ns("n%d" % i)
            _sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "p%d" % i,
                "netns", self.br)
            _sh("ip", "-n", ns, "addr", "add", "%s/24" % self.address(i), "dev", "eth0")
            _sh("ip", "-n", ns, "link", "set", "eth0", "up")
            _sh("ip", "-n", self.br, "link", "set", "p%d" % i, "master", "br0")
            _sh("ip", "-n", self.br, "link", "set", "p%d" % i, "up")

    def _add_ns(self, suffix):
        name = self.prefix + suffix
        _sh("ip", "netns", "add", name)
        self.names.append(name)
        _sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def ns(self, i):
        return self.prefix + "n%d" % i

    @staticmethod
    def address(i):
        return "10.78.0.%d" % i

    def cut(self, i):
        _sh("ip", "-n", self.br, "link", "set", "p%d" % i, "down")

    def heal(self, i):
        _sh("ip", "-n", self.br, "link", "set", "p%d" % i, "up")

    def can_connect(self, i, j, port=7946, timeout=1):
        """True if a TCP connect from node i's namespace to node j's port succeeds."""
        return _sh("ip", "netns", "exec", self.ns(i), "timeout", str(timeout), "bash", "-c",
                   "echo > /dev/tcp/%s/%d" % (self.address(j), port), check=False).returncode == 0

    def close(self):
        for name in reversed(self.names):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.names = []


# -------------------------------------------------------------------------------- Env

class Env:
    """One test's world: a temporary directory and everything started in it."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="ep-site-"))
        self.closers = []
        self.nodes = []
        self._key = None

    @property
    def logs(self):
        return [("node %s" % n.name, n.log) for n in self.nodes]

    def keygen(self, name="site.key"):
        path = self.dir / name
        run([EPCTL, "keygen", path])
        return path

    @property
    def key(self):
        if self._key is None:
            self._key = self.keygen()
        return self._key

    def node(self, name, start=True, **kw):
        n = Node(self, name, start=False, **kw)
        self.nodes.append(n)  # before starting: close() stops it even if start() fails
        if start:
            n.start()
        return n

    def site(self, count, lan=None, join_timeout=None, names=None):
        """count nodes with this Env's key, node 1 the seed of the others; returns
        (nodes, seconds from the last node being ready until the full mesh)."""
        names = names or ["n%d" % i for i in range(1, count + 1)]
        first = self.node(names[0], key=self.key, lan=lan, index=1 if lan else None)
        others = [self.node(names[i], key=self.key, seeds=[first.cluster_address], lan=lan,
                            index=i + 1 if lan else None, start=False) for i in range(1, count)]
        for n in others:
            n.start(wait=False)
        for n in others:
            n.wait_ready(timeout=60)
        nodes = [first] + others
        if join_timeout is None:
            return nodes, None
        _, dt = wait_for(lambda: full_mesh(nodes), join_timeout, interval=0.05,
                         what="full mesh of %s; views: %s" % (names, "see the message below"))
        return nodes, dt

    def image(self, seed, tag="v1"):
        d = self.dir / "images" / seed
        d.parent.mkdir(exist_ok=True)
        return Image(d, "edgepier-site-" + seed, tag=tag)

    def skopeo(self, args, check=True, timeout=120):
        return run(with_blob_cache(self.dir / "blob-info-cache", ["skopeo"] + list(args)), check=check,
                   timeout=timeout)

    def close(self):
        """Stop every node (in parallel: a 50-node site would take long), then run
        the other closers (relays, namespaces) newest first, then remove the dir."""
        errors = []
        threads = [threading.Thread(target=_safe, args=(n.stop, errors)) for n in self.nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for close in reversed(self.closers):
            _safe(close, errors)
        shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise errors[0]


def _safe(fn, errors):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - collected and re-raised by close()
        errors.append(e)
