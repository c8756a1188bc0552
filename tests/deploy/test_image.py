"""The container image: scripts/image.sh writes BUILD/edgepier-image.tar (oci-archive).

Builds it (EP_BUILD_DIR, default <repo>/build), checks the archive's layout and config,
runs the node from the image's own rootfs, and pushes the image into a node and pulls
it back with skopeo. Skipped only when umoci or skopeo is missing.

Run mode "rootfs": the image's layers are extracted in order into a temp dir and
/usr/bin/edgepier runs there under chroot (same network namespace, so loopback ports
work; no /dev or /proc is given, so nothing from the host is used but the kernel).
podman is not used: on this machine podman loads the image but cannot start any
container (crun and runc fail on setrlimit RLIMIT_NOFILE/NPROC with EPERM: no
CAP_SYS_RESOURCE here). Every process and temp dir is removed by finalizers.
"""

import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("EP_BUILD_DIR", REPO / "build")).resolve()
ARCHIVE = BUILD / "edgepier-image.tar"
VERSION = re.search(r"project\([^)]*VERSION\s+([0-9.]+)", (REPO / "CMakeLists.txt").read_text()).group(1)


def run(cmd, timeout=120, check=True):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def temp_dir(request, prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
    return Path(d)


def free_ports(n):
    """n free loopback ports below the usual ephemeral range."""
    ports = []
    while len(ports) < n:
        port = random.randrange(10000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports


def get(url, headers=None):
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as r:
        return r.status, dict(r.headers), r.read()


def start_node(request, cmd, log, port):
    """Starts cmd (stderr to log), waits for /healthz on port; killed at teardown."""
    proc = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"))

    def stop():
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    request.addfinalizer(stop)
    deadline = time.monotonic() + 20
    while True:
        assert proc.poll() is None, f"node exited {proc.returncode}: {Path(log).read_text()}"
        try:
            if get(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                return proc
        except OSError:
            pass
        assert time.monotonic() < deadline, f"no /healthz within 20 s: {Path(log).read_text()}"
        time.sleep(0.1)


def node_args(reg, admin, cluster, data):
    return [f"--edgepier.registry-address=127.0.0.1:{reg}", f"--edgepier.admin-address=127.0.0.1:{admin}",
            f"--edgepier.cluster-address=127.0.0.1:{cluster}", f"--edgepier.data-address=127.0.0.1:{data}"]


def stop_node(proc, log):
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"node still running 5 s after SIGTERM: {Path(log).read_text()}")
    assert rc == 0, f"node exited {rc} after SIGTERM: {Path(log).read_text()}"


@pytest.fixture(scope="module")
def image(request):
    """Runs scripts/image.sh; the archive extracted: dir, index, manifest, config."""
    for tool in ("umoci", "skopeo"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install -y umoci skopeo)")
    p = run([REPO / "scripts" / "image.sh", BUILD], timeout=300)
    assert ARCHIVE.is_file(), p.stdout + p.stderr
    d = temp_dir(request, "ep-image-")
    with tarfile.open(ARCHIVE) as t:
        t.extractall(d)
    blob = lambda desc: d / "blobs" / desc["digest"].replace(":", "/")
    index = json.loads((d / "index.json").read_text())
    manifest = json.loads(blob(index["manifests"][0]).read_text())
    config = json.loads(blob(manifest["config"]).read_text())
    digest = index["manifests"][0]["digest"]
    assert f"digest: {digest}" in p.stdout, p.stdout
    return {"dir": d, "index": index, "manifest": manifest, "config": config, "digest": digest,
            "layers": [blob(layer) for layer in manifest["layers"]]}


def test_image_sh_needs_built_binaries(request):
    p = run([REPO / "scripts" / "image.sh", temp_dir(request, "ep-nobuild-")], check=False)
    assert p.returncode != 0 and "edgepier is missing" in p.stderr, p.stderr


def test_archive_is_an_oci_archive(image):
    with tarfile.open(ARCHIVE) as t:
        names = set(t.getnames())
    assert {"oci-layout", "index.json"} <= names
    assert json.loads((image["dir"] / "oci-layout").read_text())["imageLayoutVersion"] == "1.0.0"
    entry = image["index"]["manifests"][0]
    assert len(image["index"]["manifests"]) == 1
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == f"edgepier:{VERSION}"
    for path in [image["dir"] / "blobs" / entry["digest"].replace(":", "/")] + image["layers"]:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
    cfg = image["config"]
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    assert (cfg["os"], cfg["architecture"]) == ("linux", arch)
    c = cfg["config"]
    assert c["Entrypoint"] == ["/usr/bin/edgepier"]
    assert c["Cmd"] == ["--config-file=/etc/edgepier/edgepier.ini"]
    assert set(c["ExposedPorts"]) == {"5000/tcp", "7946/tcp", "7947/tcp"}
    assert set(c["Volumes"]) == {"/var/lib/edgepier"} and c["WorkingDir"] == "/"
    assert c["Labels"]["org.opencontainers.image.title"] == "edgepier"
    assert c["Labels"]["org.opencontainers.image.version"] == VERSION
    with tarfile.open(image["layers"][0]) as t:
        members = {m.name: m for m in t.getmembers()}
    for path in ("usr/bin/edgepier", "usr/bin/epctl", "etc/edgepier/edgepier.ini", "etc/passwd",
                 "etc/group", "etc/nsswitch.conf", "etc/hosts", "etc/ssl/certs/ca-certificates.crt",
                 "usr/lib/ssl/cert.pem", "var/lib/edgepier"):
        assert path in members, path
    assert any("/ld-linux" in name for name in members), "no dynamic loader"
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777


def test_image_rootfs_runs_the_node(image, request, record_property):
    if os.geteuid() != 0:
        pytest.skip("chroot into the image's rootfs needs root")
    record_property("run_mode", "rootfs")
    print("run mode: rootfs (chroot into the image's extracted layers; podman cannot start containers here)")
    work = temp_dir(request, "ep-rootfs-")
    rootfs, log = work / "rootfs", work / "node.log"
    rootfs.mkdir()
    for layer in image["layers"]:  # in order; one layer today, no whiteouts to apply
        run(["tar", "-C", rootfs, "--numeric-owner", "-xf", layer])
    reg, admin, cluster, data = free_ports(4)
    proc = start_node(request, ["chroot", rootfs, "/usr/bin/edgepier", *image["config"]["config"]["Cmd"],
                                *node_args(reg, admin, cluster, data)], log, reg)
    status, headers, _ = get(f"http://127.0.0.1:{reg}/v2/")
    assert status == 200 and headers.get("Docker-Distribution-API-Version") == "registry/2.0"
    assert get(f"http://127.0.0.1:{reg}/healthz")[0] == 200
    members = run(["chroot", rootfs, "/usr/bin/epctl", "--admin", f"http://127.0.0.1:{admin}", "members"])
    assert f"127.0.0.1:{reg}" in members.stdout
    assert any((rootfs / "var/lib/edgepier").iterdir()), "the node did not use the image's data-dir"
    stop_node(proc, log)


def test_push_and_pull_back_through_a_node(image, request):
    work = temp_dir(request, "ep-image-push-")
    reg, admin, cluster, data = free_ports(4)
    node_bin = BUILD / "bin" / "edgepier"
    proc = start_node(request, [node_bin, f"--edgepier.data-dir={work / 'data'}", *node_args(reg, admin, cluster, data)],
                      work / "node.log", reg)
    ref = f"docker://127.0.0.1:{reg}/edgepier/edgepier:test"
    run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci-archive:{ARCHIVE}", ref])
    _, headers, _ = get(f"http://127.0.0.1:{reg}/v2/edgepier/edgepier/manifests/test",
                        {"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert headers["Docker-Content-Digest"] == image["digest"]
    run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", ref, f"oci:{work / 'pulled'}:test"])
    pulled_index = json.loads((work / "pulled" / "index.json").read_text())
    assert pulled_index["manifests"][0]["digest"] == image["digest"]
    manifest = json.loads((work / "pulled/blobs" / image["digest"].replace(":", "/")).read_text())
    assert manifest == image["manifest"]
    for desc in [manifest["config"], *manifest["layers"]]:
        blob = (work / "pulled/blobs" / desc["digest"].replace(":", "/")).read_bytes()
        assert "sha256:" + hashlib.sha256(blob).hexdigest() == desc["digest"] and len(blob) == desc["size"]
    stop_node(proc, work / "node.log")
