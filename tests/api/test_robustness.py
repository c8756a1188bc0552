"""Robustness: JSON error bodies everywhere, hostile/oversized requests, disconnects,
keep-alive after errors, concurrency. After each, the server still answers /v2/."""

import http.client
import json
import socket
import threading

import pytest
import requests

from conftest import (OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, assert_oci_error, descriptor, det_bytes,
                      dr_deviation, header, oci_manifest, sha256, with_query)


@pytest.fixture(autouse=True)
def still_answers(registry):
    yield
    r = registry.get("/v2/")
    assert r.status_code == 200, "the registry stopped answering /v2/"


# ------------------------------------------------------------------ every error is OCI JSON

def _unknown_blob(reg, repo):
    return reg.get(f"/v2/{repo}/blobs/{sha256(b'none')}"), 404


def _delete_unknown_blob(reg, repo):
    return reg.delete(f"/v2/{repo}/blobs/{sha256(b'none')}"), 404


def _unknown_manifest(reg, repo):
    return reg.get_manifest(repo, "nope"), 404


def _unknown_repo_tags(reg, repo):
    return reg.get(f"/v2/{repo}/never/tags/list"), 404


def _malformed_digest(reg, repo):
    return reg.get(f"/v2/{repo}/blobs/sha256:nothex"), (400, 404)


def _unknown_upload(reg, repo):
    return reg.get(f"/v2/{repo}/blobs/uploads/0b6c7b1e-2b0b-4bb0-8b8c-2b0b4bb08b8c"), 404


def _wrong_digest(reg, repo):
    loc = reg.start_upload(repo)
    return reg.put(with_query(loc, digest=sha256(b"a")), data=b"b"), 400


def _invalid_manifest(reg, repo):
    return reg.put(f"/v2/{repo}/manifests/x", data=b"{{{",
                   headers={"Content-Type": OCI_MANIFEST}), 400


def _manifest_blob_unknown(reg, repo):
    body = oci_manifest(descriptor(OCI_CONFIG, b"{}"), [descriptor(OCI_LAYER, b"nope")])
    return reg.put(f"/v2/{repo}/manifests/x", data=body,
                   headers={"Content-Type": OCI_MANIFEST}), 400


def _method_not_allowed(reg, repo):
    return reg.patch(f"/v2/{repo}/manifests/latest", data=b"{}"), (404, 405)


def _unknown_route(reg, repo):
    return reg.get(f"/v2/{repo}/nonsense/route"), (400, 404)


def _range_not_satisfiable(reg, repo):
    d = reg.push_blob(repo, b"0123456789")
    return reg.get(f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=50-60"}), 416


def _patch_out_of_order(reg, repo):
    loc = reg.start_upload(repo)
    return reg.patch(loc, data=b"abc", headers={"Content-Range": "10-12",
                                                "Content-Type": "application/octet-stream"}), 416


def _manifest_too_large(reg, repo):
    body = b'{"schemaVersion":2,"annotations":{"x":"' + b"y" * (4 << 20) + b'"}}'
    return reg.put(f"/v2/{repo}/manifests/big", data=body,
                   headers={"Content-Type": OCI_MANIFEST}), 413


ERROR_CASES = [
    pytest.param(_unknown_blob, id="blob-unknown"),
    pytest.param(_delete_unknown_blob, id="delete-blob-unknown"),
    pytest.param(_unknown_manifest, id="manifest-unknown"),
    pytest.param(_unknown_repo_tags, id="name-unknown"),
    pytest.param(_malformed_digest, id="digest-malformed"),
    pytest.param(_unknown_upload, id="upload-unknown"),
    pytest.param(_wrong_digest, id="digest-mismatch"),
    pytest.param(_invalid_manifest, id="manifest-invalid"),
    pytest.param(_manifest_blob_unknown, id="manifest-blob-unknown"),
    pytest.param(_method_not_allowed, id="method-not-allowed",
                 marks=dr_deviation("405 with a text/plain body")),
    pytest.param(_unknown_route, id="unknown-route",
                 marks=dr_deviation("text/plain '404 page not found'")),
    pytest.param(_range_not_satisfiable, id="range-416",
                 marks=dr_deviation("416 with text/plain and no OCI body")),
    pytest.param(_patch_out_of_order, id="patch-416",
                 marks=dr_deviation("no 416 at all for out-of-order PATCH")),
    pytest.param(_manifest_too_large, id="manifest-413",
                 marks=dr_deviation("400 instead of 413")),
]


@pytest.mark.parametrize("case", ERROR_CASES)
def test_error_response_is_application_json_oci_error(registry, repo, case):
    registry.push_blob(repo, b"the repository exists")
    resp, status = case(registry, repo)
    assert_oci_error(resp, status)
    assert b"<html" not in resp.content.lower()


# ------------------------------------------------------------------ hostile requests

def raw_exchange(port, payload: bytes, timeout=10.0):
    """Send raw bytes (ignoring a server that closes early) and return what comes back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(payload)
        except OSError:
            pass  # the server may close as soon as it has seen enough
        chunks = []
        try:
            while True:
                c = s.recv(65536)
                if not c:
                    break
                chunks.append(c)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
        except OSError:
            pass
        return b"".join(chunks)
    finally:
        s.close()


def status_of(reply: bytes):
    if not reply.startswith(b"HTTP/1."):
        return None
    return int(reply.split(b" ", 2)[1])


def test_oversized_header_is_4xx_not_a_crash(registry):
    req = (b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (2 << 20) +
           b"\r\n\r\n")
    assert status_of(raw_exchange(registry.port, req)) in (400, 413, 431)


def test_many_headers_are_4xx_not_a_crash(registry):
    hdrs = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(20_000))
    req = b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n" + hdrs + b"\r\n"
    assert status_of(raw_exchange(registry.port, req)) in (400, 413, 431)


def test_oversized_request_line_is_4xx_not_a_crash(registry):
    req = b"GET /v2/" + b"a" * (2 << 20) + b"/tags/list HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    assert status_of(raw_exchange(registry.port, req)) in (400, 404, 414, 431)


@pytest.mark.parametrize("junk", [b"NOT HTTP AT ALL\r\n\r\n", b"\x00\x01\x02\xff" * 64 + b"\r\n\r\n",
                                  b"GET /v2/ HTTP/9.9\r\n\r\n",
                                  b"GET /v2/ HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                                  b"PUT /v2/x/manifests/y HTTP/1.1\r\nHost: a\r\n"
                                  b"Content-Type: application/vnd.oci.image.manifest.v1+json\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"],
                         ids=["text", "binary", "bad-version", "negative-length", "bad-chunk"])
def test_malformed_request_gets_4xx_or_close(registry, junk):
    st = status_of(raw_exchange(registry.port, junk))
    assert st is None or 400 <= st < 500 or st == 505, st


def test_half_sent_headers_then_disconnect(registry):
    s = socket.create_connection(("127.0.0.1", registry.port), timeout=5)
    s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Partial: ")
    s.close()


def test_disconnect_mid_upload_leaves_no_blob_and_server_up(registry, repo):
    data = det_bytes(2 << 20, "half")
    d = sha256(data)
    loc = registry.start_upload(repo)
    conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=10)
    path = with_query(loc, digest=d).split(f":{registry.port}", 1)[-1]
    conn.putrequest("PUT", path)
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Content-Length", str(len(data)))
    conn.endheaders()
    conn.send(data[: len(data) // 2])
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    assert_oci_error(registry.get(f"/v2/{repo}/blobs/{d}"), 404, "BLOB_UNKNOWN")
    registry.push_blob(repo, data)
    assert registry.get(f"/v2/{repo}/blobs/{d}").content == data


def test_keepalive_connection_stays_in_sync_after_error_with_body(registry, repo):
    registry.push_image(repo, "v1", seed="keepalive")
    conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=10)
    try:
        junk = b"{" + b"x" * 100_000  # invalid manifest, the body must be consumed or closed
        conn.request("PUT", f"/v2/{repo}/manifests/bad", body=junk,
                     headers={"Content-Type": OCI_MANIFEST})
        r = conn.getresponse()
        assert r.status == 400
        r.read()
        conn.request("HEAD", f"/v2/{repo}/blobs/{sha256(b'none')}")
        r = conn.getresponse()
        assert r.status == 404
        r.read()
        conn.request("GET", "/v2/")
        r = conn.getresponse()
        assert r.status == 200
        r.read()
        conn.request("PUT", f"/v2/{repo}/blobs/uploads/0b6c7b1e-2b0b-4bb0-8b8c-2b0b4bb08b8c"
                     f"?digest={sha256(b'z')}", body=b"z" * 50_000)
        r = conn.getresponse()
        assert r.status == 404
        r.read()
        conn.request("GET", f"/v2/{repo}/tags/list")
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["name"] == repo
    finally:
        conn.close()


def test_concurrent_pushes_and_pulls(registry, repo):
    errors = []

    def worker(i):
        try:
            name = f"{repo}/w{i}"
            for j in range(4):
                data = det_bytes(50_000 + j * 1000, f"conc-{i}-{j}")
                d = registry.push_blob(name, data)
                shared = det_bytes(30_000, "conc-shared")
                registry.push_blob(name, shared)
                r = registry.get(f"/v2/{name}/blobs/{d}")
                assert r.status_code == 200 and r.content == data
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"worker {i}: {e!r}")

    # one requests.Session per thread: a Session is not thread-safe
    orig, local, sessions = registry.http, threading.local(), []

    class PerThread:
        def __getattr__(self, name):
            if not hasattr(local, "s"):
                local.s = requests.Session()
                local.s.trust_env = False
                sessions.append(local.s)
            return getattr(local.s, name)

    registry.http = PerThread()
    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        registry.http = orig
        for s in sessions:
            s.close()
    assert not errors, errors


def test_unknown_method_is_not_a_server_error(registry):
    status, _, _ = registry.raw("BREW", "/v2/")
    assert status < 500 or status == 501


def test_location_headers_are_usable_as_given(registry, repo):
    r = registry.post(f"/v2/{repo}/blobs/uploads/")
    loc = header(r, "Location")
    assert loc.startswith("/") or loc.startswith(f"http://127.0.0.1:{registry.port}/"), loc
