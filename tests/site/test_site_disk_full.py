"""A full disk never bricks a node (a 48 MiB tmpfs as the data dir).

A push that would pass min-free-space is refused at once with 507 and a
message that says so, and leaves nothing behind; a push that hits ENOSPC
mid-stream (no Content-Length) gives its space back. With the disk filled
by something else: reads go on, /readyz, /metrics and epctl stats say the
storage is full (the log says it once), SIGTERM exits 0 and a restart on
the full disk serves reads. Once space is freed, writes work again with no
restart, and the site's writes a full node could not make (the index, tags
and manifests replicated to it meanwhile) land then too.
"""
import hashlib
import json
import os
import shutil
import subprocess
import time

import pytest
import requests

import sitelib as sl
from sitelib import wait_for

MIB = 1 << 20
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs: needs root")


@pytest.fixture
def small_disk():
    env = sl.Env()
    mount = env.dir / "small"
    mount.mkdir()
    sl.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)])
    try:
        yield env, mount
    finally:
        for node in env.nodes:  # before the unmount: a node must not hold the file system
            node.stop()
        subprocess.run(["umount", "-l", str(mount)], check=False)
        env.close()


def fill(path):
    subprocess.run(["dd", "if=/dev/zero", "of=%s" % path, "bs=1M"], capture_output=True)


def fill_until_it_stays_full(node, mount):
    """Fills the disk again whenever something gave space back, until /readyz
    says full twice, half a second apart."""
    def full():
        return node.session.get(node.url + "/readyz", timeout=5).json()["storage"] == "full"
    for k in range(2, 12):
        fill(mount / ("filler%d" % k))
        if full():
            time.sleep(0.5)
            if full():
                return
    raise AssertionError("the disk did not stay full")


def push_bytes(node, tmp, data, chunked=False):
    """POST a monolithic upload with curl (which reads a reply sent before the
    whole body went); with chunked, without Content-Length. (status, body)"""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = tmp / "body.bin"
    path.write_bytes(data)
    cmd = ["curl", "-s", "-o", str(tmp / "reply.json"), "-w", "%{http_code}", "-X", "POST",
           "-H", "Content-Type: application/octet-stream", "--data-binary", "@%s" % path]
    if chunked:
        cmd += ["-H", "Transfer-Encoding: chunked"]
    p = subprocess.run(cmd + [node.url + "/v2/team/big/blobs/uploads/?digest=" + digest],
                       capture_output=True, text=True, timeout=60)
    reply = (tmp / "reply.json").read_text() if (tmp / "reply.json").exists() else ""
    return int(p.stdout or 0), reply


def test_full_disk_refuses_writes_keeps_reads_and_recovers(small_disk):
    env, mount = small_disk
    node = env.node("n1", key=env.key, extra=["--edgepier.data-dir=%s" % (mount / "data"),
                                               "--edgepier.min-free-space=%d" % (8 * MIB)])
    small = env.image("small")
    node.push(small, "team/app", "v1")

    # Too big for what is left: refused before a byte is written.
    status, reply = push_bytes(node, env.dir, os.urandom(60 * MIB))
    assert status == 507, reply
    [error] = json.loads(reply)["errors"]
    assert error["code"] == "UNKNOWN" and "out of storage space" in error["message"], error
    # No Content-Length: the write hits ENOSPC, and gives its space back.
    status, reply = push_bytes(node, env.dir, os.urandom(60 * MIB), chunked=True)
    assert status == 507 and "No space left" in reply, reply
    assert shutil.disk_usage(mount).free > 30 * MIB, "the failed upload left its bytes behind"

    # Something else fills the disk.
    fill(mount / "filler")
    for _ in range(3):
        assert push_bytes(node, env.dir, b"x" * 1000)[0] == 507
    assert node.session.get(node.url + "/readyz", timeout=5).json()["storage"] == "full"
    assert node.metric("edgepier_storage_full") == 1
    assert "FULL" in node.epctl("stats").out
    assert node.log_text().count("is full") == 1, node.log_text()
    assert node.manifest_digest("team/app", "v1") == small.digest  # reads go on

    # Stop and start on the full disk.
    node.proc.send_signal(15)
    assert node.proc.wait(10) == 0, sl.log_tail(node.log)
    node.start()
    assert node.manifest_digest("team/app", "v1") == small.digest
    for layer in json.loads(small.manifest_raw)["layers"]:
        assert node.session.get(node.url + "/v2/team/app/blobs/" + layer["digest"], timeout=5).status_code == 200
    # After the start RocksDB gives back, at its own pace, what its old log had
    # reserved: fill that too, until the disk stays full.
    fill_until_it_stays_full(node, mount)
    assert node.session.get(node.url + "/readyz", timeout=5).json()["storage"] == "full"
    assert push_bytes(node, env.dir, b"x" * 1000)[0] == 507

    # Space comes back: writes work, without a restart.
    for filler in mount.glob("filler*"):
        os.remove(filler)
    node.push(env.image("after"), "team/app", "v2")
    wait_for(lambda: node.session.get(node.url + "/readyz", timeout=5).json()["storage"] == "ok", 5,
             what="/readyz says the storage is fine again")
    assert node.metric("edgepier_storage_full") == 0
    assert "has room again" in node.log_text()


def test_site_writes_made_while_the_disk_was_full_land_when_space_returns(small_disk):
    """n2's disk is full while n1 takes a push: n2 learns the tag but cannot
    store it. Once space returns, n2 serves the tag, with no restart: the
    writes it could not make were kept and retried."""
    env, mount = small_disk
    n1 = env.node("n1", key=env.key)
    n2 = env.node("n2", key=env.key, seeds=[n1.cluster_address],
                  extra=["--edgepier.data-dir=%s" % (mount / "data"), "--edgepier.min-free-space=%d" % (4 * MIB)])
    wait_for(lambda: sl.full_mesh([n1, n2]), 30, what="a two-node site")
    fill(mount / "filler")
    image = env.image("while-full")
    n1.push(image, "team/app", "v9")
    wait_for(lambda: "kept and retried" in n2.log_text(), 20, what="n2 says it keeps the writes it cannot make")
    assert n2.http_status("/v2/team/app/manifests/v9") == 404  # not stored: the disk is full

    os.remove(mount / "filler")
    wait_for(lambda: n2.http_status("/v2/team/app/manifests/v9") == 200, 30,
             what="n2 serves the tag once space returned")
    assert n2.manifest_digest("team/app", "v9") == image.digest
    assert "the kept ones landed" in n2.log_text()
    # And they are on disk: after a restart n2 still has the tag.
    n2.stop()
    n2.start()
    assert n2.manifest_digest("team/app", "v9") == image.digest
