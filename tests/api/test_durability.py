"""Restarts and crashes: each test starts a registry of its own (own_registry) on its own data
dir, kills it with SIGKILL and starts it again on the same data dir and ports."""

import hashlib
import http.client
import socket
from urllib.parse import urlsplit

from conftest import (assert_oci_error, det_bytes, edgepier_only, header, sha256, with_query)

MIB = 1 << 20


def chunk_headers(start, data):
    return {"Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{start + len(data) - 1}"}


def path_of(url):
    p = urlsplit(url)
    return p.path + (("?" + p.query) if p.query else "")


def test_committed_content_survives_kill_9(own_registry):
    reg = own_registry
    body, d = reg.push_image("durable/app", "v1", seed="durable")
    blob = det_bytes(MIB, "durable-blob")
    bd = reg.push_blob("durable/app", blob)
    reg.restart_after_kill()
    r = reg.get_manifest("durable/app", "v1")
    assert r.status_code == 200 and r.content == body
    assert header(r, "Docker-Content-Digest") == d
    assert reg.get(f"/v2/durable/app/blobs/{bd}").content == blob
    assert reg.get("/v2/durable/app/tags/list").json()["tags"] == ["v1"]


@edgepier_only("resuming an upload session after the process restarts")
def test_upload_resumes_after_kill_9_and_restart(own_registry):
    reg = own_registry
    repo = "resume/app"
    data = det_bytes(3 * MIB + 12345, "resume")
    half = len(data) // 2
    loc = reg.start_upload(repo)
    r = reg.patch(loc, data=data[:half], headers=chunk_headers(0, data[:half]))
    assert r.status_code == 202
    assert header(r, "Range") == f"0-{half - 1}"
    loc = reg.resolve(header(r, "Location"), r.url)

    reg.restart_after_kill()

    r = reg.get(loc)
    assert r.status_code == 204, f"{r.status_code} {r.content[:300]!r}"
    assert header(r, "Range") == f"0-{half - 1}"
    loc = reg.resolve(header(r, "Location"), r.url)
    r = reg.patch(loc, data=data[half:], headers=chunk_headers(half, data[half:]))
    assert r.status_code == 202, f"{r.status_code} {r.content[:300]!r}"
    assert header(r, "Range") == f"0-{len(data) - 1}"
    loc = reg.resolve(header(r, "Location"), r.url)
    r = reg.put(with_query(loc, digest=sha256(data)))
    assert r.status_code == 201, f"{r.status_code} {r.content[:300]!r}"
    g = reg.get(f"/v2/{repo}/blobs/{sha256(data)}")
    assert g.status_code == 200 and g.content == data


class BigBlob:
    """~200 MiB of deterministic content, streamed in 1 MiB blocks, never held whole."""

    def __init__(self, mib=200):
        self.mib = mib
        self.size = mib * MIB
        self._base = det_bytes(MIB - 16, "big-base")
        h = hashlib.sha256()
        for b in self.blocks():
            h.update(b)
        self.digest = "sha256:" + h.hexdigest()

    def block(self, i):
        return b"%016d" % i + self._base

    def blocks(self, upto=None):
        for i in range(self.mib if upto is None else upto):
            yield self.block(i)


def post_monolithic(reg, repo, blob, stop_after_mib=None):
    """POST ?digest= with Content-Length = the whole blob; optionally stop sending after
    `stop_after_mib` MiB and return the still-open connection instead of a response."""
    conn = http.client.HTTPConnection("127.0.0.1", reg.port, timeout=60)
    conn.putrequest("POST", f"/v2/{repo}/blobs/uploads/?digest={blob.digest}")
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Content-Length", str(blob.size))
    conn.endheaders()
    for b in blob.blocks(stop_after_mib):
        conn.send(b)
    if stop_after_mib is not None:
        return conn
    r = conn.getresponse()
    r.read()
    conn.close()
    return r


@edgepier_only("crash safety of a monolithic upload (docker-registry has no single-POST push)")
def test_kill_9_mid_upload_serves_nothing_then_full_push_succeeds(own_registry):
    reg = own_registry
    repo = "crash/app"
    blob = BigBlob(200)
    reg.push_blob(repo, b"the repository exists")
    conn = post_monolithic(reg, repo, blob, stop_after_mib=100)
    reg.kill9()
    try:
        conn.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()
    reg.start()

    assert_oci_error(reg.get(f"/v2/{repo}/blobs/{blob.digest}"), 404, "BLOB_UNKNOWN")
    assert reg.head(f"/v2/{repo}/blobs/{blob.digest}").status_code == 404

    r = post_monolithic(reg, repo, blob)
    assert r.status == 201, r.status
    assert r.getheader("Docker-Content-Digest") == blob.digest
    g = reg.get(f"/v2/{repo}/blobs/{blob.digest}", stream=True)
    assert g.status_code == 200
    assert header(g, "Content-Length") == str(blob.size)
    h = hashlib.sha256()
    for c in g.iter_content(MIB):
        h.update(c)
    g.close()
    assert "sha256:" + h.hexdigest() == blob.digest
