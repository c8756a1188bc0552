"""Helpers shared by every Python test suite (tests/api, clients, mirror, site) and
the site benchmark (bench/site): running commands, processes, ports, hashes,
polling, skopeo's blob-info-cache isolation, mounts, and a private containerd.

Imported by putting this directory on sys.path (each suite's conftest or library
does it); everything here uses only the standard library."""

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
MKIMAGE = REPO / "tools" / "mkimage.py"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
EP_BIN = os.environ.get("EP_BIN", str(REPO / "build" / "bin" / "edgepier"))
EPCTL = os.environ.get("EPCTL_BIN", str(Path(EP_BIN).parent / "epctl"))
DOCKER_REGISTRY = "/usr/bin/docker-registry"
SYSTEM_BLOB_CACHE = "/var/lib/containers/cache"  # containers/image blob-info-cache (root)


# ----------------------------------------------------------------------------- ports

def _ephemeral_range():
    try:
        lo, hi = open("/proc/sys/net/ipv4/ip_local_port_range").read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


_port_lock = threading.Lock()
_next_port = [None]


def free_port():
    """A free 127.0.0.1 port below the ephemeral range. Ports from bind(0) are
    ephemeral ones, and many outgoing connections (a site's, a client's) take
    ephemeral ports too: a server could find its port taken between our pick and
    its bind."""
    lo_eph, _ = _ephemeral_range()
    lo, hi = 10000, max(12000, lo_eph)
    with _port_lock:
        if _next_port[0] is None:
            _next_port[0] = lo + (os.getpid() * 7919) % (hi - lo)
        for _ in range(hi - lo):
            port = _next_port[0]
            _next_port[0] = lo + (port + 1 - lo) % (hi - lo)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port in %d-%d" % (lo, hi))


# -------------------------------------------------------------------------- commands

class CmdError(AssertionError):
    pass


def run(cmd, timeout=60, check=True, env=None, input=None, quiet=False):
    """Run a command, capture its output (p.out, p.err, p.seconds); on failure raise
    with everything shown."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    t0 = time.monotonic()
    try:
        p = subprocess.run([str(c) for c in cmd], capture_output=True, timeout=timeout, env=full_env,
                           input=input, stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise CmdError("timeout after %ss: %s\nstdout:\n%s\nstderr:\n%s" % (
            timeout, " ".join(map(str, cmd)), (e.stdout or b"").decode(errors="replace")[-3000:],
            (e.stderr or b"").decode(errors="replace")[-3000:]))
    p.out = p.stdout.decode(errors="replace")
    p.err = p.stderr.decode(errors="replace")
    p.seconds = time.monotonic() - t0
    if not quiet:
        print("$ %s  [rc=%d, %.2fs]" % (" ".join(map(str, cmd)), p.returncode, p.seconds))
    if check and p.returncode != 0:
        raise CmdError("command failed (rc=%d): %s\nstdout:\n%s\nstderr:\n%s" % (
            p.returncode, " ".join(map(str, cmd)), p.out[-3000:], p.err[-3000:]))
    return p


def log_tail(path, n=60):
    try:
        return "\n".join(Path(path).read_bytes().decode(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def stop_process(proc, grace=10):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def kill_process(proc):
    """SIGKILL: no graceful close of anything."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(5)


def wait_for_timed(predicate, timeout, interval=0.05, what="condition"):
    """Poll until predicate() is truthy; returns (value, seconds waited)."""
    t0 = time.monotonic()
    while True:
        value = predicate()
        if value:
            return value, time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    """Poll until predicate() is truthy; returns its value."""
    return wait_for_timed(predicate, timeout, interval, what)[0]


# ---------------------------------------------------------------------------- hashes

def sha256_bytes(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


# ----------------------------------------------------------- skopeo blob-info-cache

_isolation = {}


def blob_cache_isolation_works():
    """skopeo and podman (containers/image) remember where blobs were seen in a
    root-wide bolt DB under /var/lib/containers/cache and use it to decide between
    cross-repo mount, reuse and full upload. There is no flag to move it, so each
    client command runs in a private mount namespace with a per-test directory
    bind-mounted over that path: behaviour is then deterministic and the host's
    cache is left alone. False (shared cache) if unshare/mount is not permitted."""
    if "ok" not in _isolation:
        ok = False
        try:
            os.makedirs(SYSTEM_BLOB_CACHE, exist_ok=True)
            d = tempfile.mkdtemp(prefix="ep-bic-probe-")
            p = subprocess.run(
                ["unshare", "-m", "--propagation", "private", "sh", "-c",
                 'mount --bind "$0" %s && touch %s/.probe' % (SYSTEM_BLOB_CACHE, SYSTEM_BLOB_CACHE), d],
                capture_output=True, timeout=10)
            ok = p.returncode == 0 and os.path.exists(os.path.join(d, ".probe")) \
                and not os.path.exists(os.path.join(SYSTEM_BLOB_CACHE, ".probe"))
            shutil.rmtree(d, ignore_errors=True)
        except Exception:
            ok = False
        _isolation["ok"] = ok
    return _isolation["ok"]


def with_blob_cache(cache_dir, cmd):
    """cmd run with its own blob-info-cache in cache_dir (when isolation works)."""
    if cache_dir is None or not blob_cache_isolation_works():
        return list(cmd)
    os.makedirs(cache_dir, exist_ok=True)
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" %s && exec "$@"' % SYSTEM_BLOB_CACHE, str(cache_dir)] + list(cmd)


# ---------------------------------------------------------------------------- mounts

def mounts_under(root):
    root = os.path.realpath(root)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == root or mp.startswith(root + "/"):
                out.append(mp)
    return out


def unmount_all_under(root):
    for _ in range(5):
        mps = mounts_under(root)
        if not mps:
            return
        for mp in sorted(mps, key=len, reverse=True):
            subprocess.run(["umount", mp], capture_output=True)
    for mp in sorted(mounts_under(root), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)


# ------------------------------------------------------------------------ containerd

# A containerd without CRI and with only the overlay/native snapshotters:
# root, state and sockets under one directory {r}; {s} is the gRPC socket.
CONTAINERD_CONFIG = """version = 2
root = "{r}/root"
state = "{r}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{s}"
[ttrpc]
  address = "{s}.ttrpc"
[debug]
  address = "{r}/debug.sock"
  level = "info"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{r}/opt"
"""


# ------------------------------------------------------------------- credentials

def write_htpasswd(path, users):
    """An htpasswd file of bcrypt entries, as an operator writes it (`htpasswd -B`)."""
    lines = [run(["htpasswd", "-Bbn", user, password], quiet=True).out.strip()
             for user, password in users.items()]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def make_tls(directory, hosts=("127.0.0.1",), name="ca"):
    """A private CA and a server certificate it signed for `hosts` (IPs or names).
    Returns {"ca": path, "cert": path, "key": path}."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca, ca_key = d / (name + ".pem"), d / (name + "-key.pem")
    cert, key, csr = d / (name + "-server.pem"), d / (name + "-server-key.pem"), d / (name + ".csr")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         "/CN=edgepier test " + name, "-keyout", ca_key, "-out", ca], quiet=True)
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + hosts[0],
         "-keyout", key, "-out", csr], quiet=True)
    sans = ",".join(("IP:" if h.replace(".", "").isdigit() else "DNS:") + h for h in hosts)
    ext = d / (name + ".ext")
    ext.write_text("subjectAltName=%s\nbasicConstraints=CA:FALSE\n" % sans)
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-days", "2", "-extfile", ext, "-out", cert], quiet=True)
    return {"ca": ca, "cert": cert, "key": key}


class Containerd:
    """A private containerd: own root, state, socket and config; close() stops it and
    removes everything (and fails if mounts are left behind)."""

    def __init__(self, prefix="ep-ctd-"):
        # short path: the unix socket path must stay under ~108 bytes
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.sock = str(self.root / "containerd.sock")
        self.log = self.root / "containerd.log"
        cfg = self.root / "config.toml"
        cfg.write_text(CONTAINERD_CONFIG.format(r=self.root, s=self.sock))
        self.proc = None
        try:
            with open(self.log, "wb") as lf:
                self.proc = subprocess.Popen(
                    ["containerd", "--config", str(cfg), "--root", str(self.root / "root"),
                     "--state", str(self.root / "state"), "--address", self.sock],
                    stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            deadline = time.monotonic() + 20
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError("containerd exited rc=%s:\n%s" % (self.proc.returncode, log_tail(self.log)))
                if os.path.exists(self.sock) and subprocess.run(
                        ["ctr", "-a", self.sock, "version"], capture_output=True, timeout=10).returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("containerd not ready:\n" + log_tail(self.log))
                time.sleep(0.1)
        except Exception:
            self.close()
            raise

    def ctr(self, *args, namespace="test", timeout=60, check=True):
        return run(["ctr", "-a", self.sock, "-n", namespace] + list(args), timeout=timeout, check=check)

    def close(self):
        stop_process(self.proc, grace=15)
        unmount_all_under(self.root)
        left = mounts_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)
        assert not left, "mounts left under %s: %s" % (self.root, left)


# ----------------------------------------------------------------------- pytest glue

class RunningWorlds:
    """The per-test worlds (an `Env` of a suite) that are running, so a failing
    test's report can carry the tails of their logs (`env.logs`: (label, path))."""

    def __init__(self):
        self.running = []

    def run(self, make):
        """Body of a suite's `env` fixture: yields make(), closes it after the test."""
        env = make()
        self.running.append(env)
        try:
            yield env
        finally:
            self.running.remove(env)
            env.close()

    def attach_logs(self, rep, max_logs=None, lines=40):
        if rep.failed and self.running:
            for label, path in self.running[-1].logs[:max_logs]:
                rep.sections.append(("log of %s: %s" % (label, path), log_tail(path, lines)))
