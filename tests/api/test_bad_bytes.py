"""Bytes that are not UTF-8, or not allowed, anywhere in a request: never a crash.

One such request used to stop a node: an error message quoting the request was
dumped as JSON, the dump threw on the invalid UTF-8, and nothing caught it.
Each case here is sent byte for byte over a raw socket (http.client would
refuse the bytes), and must get an OCI JSON error with the code the
distribution spec gives; the node must keep serving afterwards.
"""

import json
import socket

import pytest

from conftest import EDGEPIER, OCI_MANIFEST, dr_deviation

# Byte sequences a client can put into a request, raw or percent-encoded.
BAD = {
    "raw-ff": b"\xff",
    "pct-ff": b"%ff",
    "pct-aa": b"%aa",
    "pct-overlong-slash": b"%c0%af",
    "raw-overlong-slash": b"\xc0\xaf",
    "raw-overlong-3byte": b"\xe0\x80\xaf",
    "raw-surrogate": b"\xed\xa0\x80",
    "pct-nul": b"%00",
    "pct-crlf": b"%0d%0a",
}


def send_raw(port, request: bytes, timeout=10.0):
    """Sends `request` as is; returns (status, headers, body) or None if the node closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)  # a request that claims more body than it has gets EOF, not a wait
        data = b""
        while True:
            try:
                part = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not part:
                break
            data += part
    if not data:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    return status, headers, body


def request(method: bytes, target: bytes, headers=b"", body=b""):
    return (method + b" " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def oci_error(resp):
    """The first OCI error code of a reply, checking that the body is JSON."""
    status, headers, body = resp
    assert headers.get("content-type", "").split(";")[0] == "application/json", (status, headers, body[:200])
    doc = json.loads(body)  # must be valid JSON (and so valid UTF-8)
    body.decode("utf-8")
    assert doc["errors"] and all(isinstance(e["code"], str) for e in doc["errors"]), doc
    return doc["errors"][0]["code"]


def assert_alive(registry):
    assert registry.alive(), registry.stderr_tail()
    assert registry.get("/v2/").status_code == 200


# (where, method, target template, expected statuses, expected OCI codes); X is the bad bytes.
CASES = [
    ("name-manifest-get", b"GET", b"/v2/lib/appX/manifests/latest", {400, 404}, {"NAME_INVALID", "NAME_UNKNOWN"}),
    ("name-blob-head", b"HEAD", b"/v2/lib/Xapp/blobs/sha256:" + b"a" * 64, {400, 404}, None),
    ("name-tags", b"GET", b"/v2/Xlib/tags/list", {400, 404}, {"NAME_INVALID", "NAME_UNKNOWN"}),
    ("name-upload-post", b"POST", b"/v2/lib/appX/blobs/uploads/", {400, 404}, {"NAME_INVALID"}),
    ("reference-get", b"GET", b"/v2/lib/app/manifests/latXest", {404}, {"MANIFEST_UNKNOWN"}),
    ("reference-digest-get", b"GET", b"/v2/lib/app/manifests/sha256:X", {404}, {"MANIFEST_UNKNOWN"}),
    ("reference-delete", b"DELETE", b"/v2/lib/app/manifests/Xv1", {404}, {"MANIFEST_UNKNOWN"}),
    ("digest-blob-get", b"GET", b"/v2/lib/app/blobs/sha256:X", {400, 404}, {"DIGEST_INVALID", "BLOB_UNKNOWN"}),
    ("digest-blob-delete", b"DELETE", b"/v2/lib/app/blobs/sha256:X", {400, 404}, {"DIGEST_INVALID", "BLOB_UNKNOWN"}),
    ("digest-referrers", b"GET", b"/v2/lib/app/referrers/sha256:X", {400, 404}, {"DIGEST_INVALID", "MANIFEST_UNKNOWN"}),
    ("upload-id", b"GET", b"/v2/lib/app/blobs/uploads/Xabc", {404}, {"BLOB_UPLOAD_UNKNOWN"}),
    ("query-ns", b"GET", b"/v2/lib/app/manifests/latest?ns=Xdocker.io", {404}, {"MANIFEST_UNKNOWN"}),
    ("query-last", b"GET", b"/v2/lib/app/tags/list?n=1&last=X", {200, 404}, {"NAME_UNKNOWN"}),
    ("query-n", b"GET", b"/v2/_catalog?n=X", {400}, None),
    ("query-mount", b"POST", b"/v2/lib/app/blobs/uploads/?mount=sha256:X&from=lib/Xo", {202, 400}, None),
]


@dr_deviation("distribution 2.8 answers text/plain 404 to paths its router does not match")
@pytest.mark.parametrize("bad", list(BAD.values()), ids=list(BAD.keys()))
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_bytes_get_an_oci_error_not_a_crash(registry, case, bad):
    where, method, template, statuses, codes = case
    resp = send_raw(registry.port, request(method, template.replace(b"X", bad)))
    assert resp is not None, f"{where}: the node closed the connection without an answer"
    status = resp[0]
    assert status in statuses, (where, resp[0], resp[2][:300])
    if status >= 400 and method != b"HEAD":
        code = oci_error(resp)
        if codes:
            assert code in codes, (where, code)
    assert_alive(registry)


@pytest.mark.parametrize("bad", list(BAD.values()), ids=list(BAD.keys()))
def test_bad_bytes_in_a_pushed_tag_are_400_tag_invalid(registry, bad):
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}).encode()
    resp = send_raw(registry.port, request(b"PUT", b"/v2/lib/app/manifests/vX".replace(b"X", bad),
                                           b"Content-Type: " + OCI_MANIFEST.encode() + b"\r\n", body))
    assert resp is not None and resp[0] == 400, resp
    assert oci_error(resp) in ("TAG_INVALID", "MANIFEST_INVALID")
    assert_alive(registry)


@pytest.mark.parametrize("bad", [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80"], ids=["ff", "overlong", "surrogate"])
def test_bad_bytes_in_headers_are_4xx_not_a_crash(registry, repo, bad):
    data = b"layer"
    digest = registry.push_blob(repo, data)
    reqs = [
        request(b"GET", f"/v2/{repo}/blobs/{digest}".encode(), b"Range: bytes=" + bad + b"\r\n"),
        request(b"PUT", f"/v2/{repo}/manifests/v1".encode(), b"Content-Type: application/" + bad + b"\r\n",
                b"{}"),
        request(b"PATCH", f"/v2/{repo}/blobs/uploads/nope".encode(), b"Content-Range: " + bad + b"\r\n", b"x"),
        request(b"GET", b"/v2/", b"X-Anything: " + bad + b"\r\n"),
    ]
    for raw in reqs:
        resp = send_raw(registry.port, raw)
        assert resp is not None, raw[:80]
        assert resp[0] < 500, (raw[:80], resp)
        if resp[0] >= 400:
            oci_error(resp)
    assert_alive(registry)


@pytest.mark.skipif(not EDGEPIER, reason="edgepier's media-type check")
def test_a_manifest_media_type_that_is_not_a_token_is_refused(registry, repo):
    """The media type is sent back as Content-Type: bytes outside the RFC 6838 grammar
    (here a CR LF from a JSON escape) would split the header."""
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/x\r\nX-Injected: 1",
                       "config": {}, "layers": []}).encode()
    resp = send_raw(registry.port, request(b"PUT", f"/v2/{repo}/manifests/v1".encode(),
                                           b"Content-Type: application/json\r\n", body))
    assert resp is not None and resp[0] == 400, resp
    assert oci_error(resp) == "MANIFEST_INVALID"


@pytest.mark.skipif(not EDGEPIER, reason="edgepier's ?ns= echo")
def test_a_namespace_is_echoed_only_when_it_is_a_host_name(registry):
    resp = send_raw(registry.port, request(b"GET", b"/v2/lib/app/tags/list?ns=a%0d%0aX-Injected:%201"))
    assert resp is not None
    assert "x-injected" not in resp[1] and "oci-namespace" not in resp[1], resp[1]
    resp = send_raw(registry.port, request(b"GET", b"/v2/lib/app/tags/list?ns=docker.io"))
    assert resp[1].get("oci-namespace") == "docker.io"


@pytest.mark.skipif(not EDGEPIER, reason="edgepier's admin API")
def test_bad_bytes_to_the_admin_api_get_a_json_error(registry):
    port = registry.admin_port
    cases = [
        request(b"GET", b"/admin/v1/\xff"),
        request(b"GET", b"/admin/v1/tags?repo=%ff%c0%af"),
        request(b"DELETE", b"/admin/v1/pins?ref=%ff"),
        request(b"POST", b"/admin/v1/pins", b"Content-Type: application/json\r\n", b'{"ref": "\xff"}'),
        request(b"POST", b"/admin/v1/pins", b"Content-Type: application/json\r\n", b'{"ref": "a\\u0000b:c"}'),
        request(b"POST", b"/admin/v1/pins", b"Content-Type: application/json\r\n", b'{"ref": "no tag"}'),
        request(b"POST", b"/admin/v1/pins", b"Content-Type: application/json\r\n", b'{"ref": 5}'),
        request(b"POST", b"/admin/v1/pins", b"", b"\xff\xfe{"),
    ]
    for raw in cases:
        resp = send_raw(port, raw)
        assert resp is not None, raw[:60]
        status, headers, body = resp
        assert 400 <= status < 500 and status != 429, (raw[:60], status, body[:200])
        doc = json.loads(body)
        assert isinstance(doc.get("error"), str) and doc["error"], doc
    assert_alive(registry)
    # The refused refs were never pinned.
    r = registry.http.get(f"http://127.0.0.1:{port}/admin/v1/pins", timeout=10)
    assert r.status_code in (200, 503)
    if r.status_code == 200:
        assert all(" " not in p["ref"] and "\x00" not in p["ref"] for p in r.json()["pins"]), r.text
