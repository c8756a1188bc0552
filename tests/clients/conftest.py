"""Fixtures for the real-client tests (skopeo, podman, containerd/ctr).

Target registry, chosen by EP_TARGET:
  edgepier (default)  start $EP_BIN (default <repo>/build/bin/edgepier) on free
                      loopback ports and wait for GET /healthz -> 200
  docker-registry     start Debian's /usr/bin/docker-registry (reference impl.)
  external            use an already running registry at $EP_REGISTRY (host:port)

Everything runs on 127.0.0.1 only, in temporary directories.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
from eptest import (EP_BIN, MKIMAGE, PYTHON, REPO, SYSTEM_BLOB_CACHE, CmdError, Containerd,  # noqa: E402,F401
                    blob_cache_isolation_works, free_port, log_tail, make_tls, run, sha256_file, stop_process,
                    unmount_all_under, with_blob_cache, write_htpasswd)

TARGET = os.environ.get("EP_TARGET", "edgepier")


# --------------------------------------------------------------------------- helpers

def http_status(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:
        return None

def oci_layout_blobs(layout_dir):
    """{digest: size} of every blob in an OCI layout, verifying each file's hash."""
    blobs = {}
    d = Path(layout_dir) / "blobs" / "sha256"
    for f in sorted(d.iterdir()):
        digest = "sha256:" + f.name
        actual = sha256_file(f)
        assert actual == digest, "blob %s has content digest %s" % (f, actual)
        blobs[digest] = f.stat().st_size
    return blobs


def oci_layout_manifest(layout_dir, tag=None):
    """(digest, parsed manifest, raw bytes) of the (tagged) manifest in a layout."""
    index = json.loads((Path(layout_dir) / "index.json").read_text())
    descs = index["manifests"]
    if tag is not None:
        descs = [m for m in descs
                 if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    assert len(descs) == 1, "expected exactly one manifest for tag %r in %s" % (tag, index)
    digest = descs[0]["digest"]
    raw = (Path(layout_dir) / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()
    return digest, json.loads(raw), raw


# ------------------------------------------------------------------ blob-info-cache


# ----------------------------------------------------------------------- registry

class Registry:
    def __init__(self, host, proc=None, log=None, name=TARGET):
        self.host = host            # "127.0.0.1:PORT"
        self.proc = proc
        self.log = log
        self.name = name

    @property
    def url(self):
        return "http://" + self.host

    def ref(self, repo, tag_or_digest="latest"):
        sep = "@" if tag_or_digest.startswith("sha256:") else ":"
        return "%s/%s%s%s" % (self.host, repo, sep, tag_or_digest)

    def alive(self):
        return self.proc is None or self.proc.poll() is None


def _wait_ready(proc, urls, log, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("registry exited with %s during startup; log:\n%s"
                               % (proc.returncode, log_tail(log)))
        for u in urls:
            if http_status(u) == 200:
                return u
        time.sleep(0.1)
    raise RuntimeError("registry not ready after %ss (%s); log:\n%s"
                       % (timeout, urls, log_tail(log)))


def _start_docker_registry(workdir):
    port = free_port()
    data = workdir / "data"
    data.mkdir()
    cfg = workdir / "config.yml"
    cfg.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n"
        "storage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n"
        "http:\n  addr: 127.0.0.1:%d\n" % (data, port))
    log = workdir / "registry.log"
    with open(log, "wb") as lf:
        proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(cfg)],
                                stdout=lf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    host = "127.0.0.1:%d" % port
    _wait_ready(proc, ["http://%s/v2/" % host], log)
    return Registry(host, proc, log, "docker-registry")


def _start_edgepier(workdir, extra=(), scheme="http"):
    if not os.access(EP_BIN, os.X_OK):
        raise RuntimeError("EP_TARGET=edgepier but %s is not an executable "
                           "(build it, set EP_BIN, or use EP_TARGET=docker-registry)" % EP_BIN)
    ports = {k: free_port() for k in ("registry", "admin", "cluster", "data")}
    data = workdir / "data"
    data.mkdir()
    log = workdir / "edgepier.log"
    cmd = [EP_BIN,
           "--edgepier.registry-address=127.0.0.1:%d" % ports["registry"],
           "--edgepier.data-dir=%s" % data,
           "--edgepier.admin-address=127.0.0.1:%d" % ports["admin"],
           "--edgepier.cluster-address=127.0.0.1:%d" % ports["cluster"],
           "--edgepier.data-address=127.0.0.1:%d" % ports["data"]] + list(extra)
    with open(log, "wb") as lf:
        lf.write(("$ " + " ".join(cmd) + "\n").encode())
        lf.flush()
        proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    host = "127.0.0.1:%d" % ports["registry"]
    # over HTTPS, the plain-HTTP admin listener's status page says the node is up
    _wait_ready(proc, ["http://%s/healthz" % host] if scheme == "http" else
                ["http://127.0.0.1:%d/" % ports["admin"]], log)
    reg = Registry(host, proc, log, "edgepier")
    reg.admin = "http://127.0.0.1:%d" % ports["admin"]
    reg.scheme = scheme
    return reg


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("registry")
    if TARGET == "docker-registry":
        reg = _start_docker_registry(workdir)
    elif TARGET == "edgepier":
        reg = _start_edgepier(workdir)
    elif TARGET == "external":
        host = os.environ.get("EP_REGISTRY")
        if not host:
            raise RuntimeError("EP_TARGET=external needs EP_REGISTRY=host:port")
        reg = Registry(host, None, None, "external")
    else:
        raise RuntimeError("unknown EP_TARGET %r" % TARGET)
    _registry_for_reports.append(reg)
    try:
        yield reg
    finally:
        stop_process(reg.proc)


_registry_for_reports = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of the registry's log to the report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _registry_for_reports:
        reg = _registry_for_reports[-1]
        state = "running" if reg.alive() else "EXITED rc=%s" % reg.proc.returncode
        if reg.log:
            rep.sections.append(("registry (%s, %s) log tail: %s" % (reg.name, state, reg.log),
                                 log_tail(reg.log, 80)))


def pytest_report_header(config):
    return "edgepier client tests: EP_TARGET=%s%s" % (
        TARGET, " EP_BIN=%s" % EP_BIN if TARGET == "edgepier" else "")


# ------------------------------------------------------------------------- images

def make_image(outdir, seed, layers, layer_mb, tag="latest", small_layers=0, small_kb=4):
    cmd = [PYTHON, str(MKIMAGE), str(outdir), "--seed", seed, "--layers", str(layers),
           "--layer-mb", str(layer_mb), "--tag", tag]
    if small_layers:
        cmd += ["--small-layers", str(small_layers), "--small-kb", str(small_kb)]
    p = run(cmd, timeout=120)
    info = json.loads(p.out)
    info["dir"] = Path(outdir)
    info["blobs"] = oci_layout_blobs(outdir)
    info["layer_digests"] = [l["digest"] for l in info["layers"]]
    info["diff_ids"] = [l["diff_id"] for l in info["layers"]]
    _, info["manifest_json"], info["manifest_raw"] = oci_layout_manifest(outdir, tag)
    return info


@pytest.fixture(scope="session")
def small_image(tmp_path_factory):
    """3 layers x 2 MiB, generated once per session."""
    return make_image(tmp_path_factory.mktemp("img") / "small", "edgepier-clients-small", 3, 2)


@pytest.fixture(scope="session")
def pushed_image(registry, small_image, tmp_path_factory):
    """small_image pushed by skopeo to <registry>/test/img:latest (unchanged OCI manifest)."""
    cache = tmp_path_factory.mktemp("bic-pushed")
    run(with_blob_cache(cache, [
        "skopeo", "copy", "--retry-times", "0", "--dest-tls-verify=false",
        "oci:%s:latest" % small_image["dir"], "docker://" + registry.ref("test/img", "latest")]))
    return dict(small_image, repo="test/img", tag="latest",
                ref=registry.ref("test/img", "latest"), blob_cache=cache)


@pytest.fixture
def blob_cache(tmp_path):
    """Factory of private containers/image blob-info-cache dirs (see with_blob_cache)."""
    def make(name="default"):
        d = tmp_path / ("bic-" + name)
        d.mkdir(exist_ok=True)
        return d
    return make


# ---------------------------------------------------------------------- containerd

@pytest.fixture
def containerd():
    """A private containerd (own root/state/socket/config), stopped and removed after the test."""
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.fail("containerd/ctr not installed (apt-get install containerd)")
    c = Containerd()
    try:
        yield c
    finally:
        c.close()


# ------------------------------------------------------------------------- podman

@pytest.fixture
def podman():
    """Run podman as root with private storage (vfs), runroot, tmpdir and registries.conf."""
    if shutil.which("podman") is None:
        pytest.fail("podman not installed (apt-get install podman)")
    # short path: podman refuses a --runroot longer than 50 characters
    base = Path(tempfile.mkdtemp(prefix="ep-pm-"))
    (base / "tmp").mkdir()
    regconf = base / "registries.conf"
    regconf.write_text('unqualified-search-registries = []\n')
    env = {"TMPDIR": str(base / "tmp"), "CONTAINERS_REGISTRIES_CONF": str(regconf)}
    common = ["podman", "--root", str(base / "root"), "--runroot", str(base / "run"),
              "--storage-driver", "vfs", "--tmpdir", str(base / "libpod"),
              "--events-backend", "none", "--cgroup-manager", "cgroupfs"]

    def pm(*args, cache=None, timeout=60, check=True):
        return run(with_blob_cache(cache, common + list(args)), timeout=timeout,
                   check=check, env=env)

    try:
        probe = pm("info", "--format", "json", check=False, timeout=60)
        if probe.returncode != 0:
            pytest.skip("podman cannot work in this sandbox: `podman info` failed (rc=%d): %s"
                        % (probe.returncode, (probe.err.strip() or probe.out.strip())[-800:]))
        yield pm
    finally:
        unmount_all_under(base)   # vfs keeps no mounts, but be safe
        shutil.rmtree(base, ignore_errors=True)
