"""Faults between the node and its upstream (a fault-injecting proxy): a blob
cut mid-body, flipped bytes, garbage manifests. A client must never receive a
complete body that does not match its digest, nothing wrong may be stored,
and the node stays up."""

import hashlib
import time

import requests

import mirrorlib as ml


def fetch(url, timeout=30):
    """GET, reading the body to the end or to the error: a dict with status,
    declared length, bytes received, their digest, and the error if any."""
    out = {"status": None, "declared": None, "received": 0, "digest": None, "error": None}
    h = hashlib.sha256()
    try:
        with requests.get(url, stream=True, timeout=timeout) as r:
            out["status"] = r.status_code
            if r.headers.get("Content-Length") is not None:
                out["declared"] = int(r.headers["Content-Length"])
            for chunk in r.raw.stream(1 << 16, decode_content=False):
                h.update(chunk)
                out["received"] += len(chunk)
    except Exception as e:  # requests and urllib3 errors (ProtocolError, IncompleteRead, ...)
        out["error"] = repr(e)[:200]
    out["digest"] = "sha256:" + h.hexdigest()
    return out


def complete(res):
    return (res["status"] == 200 and res["error"] is None and res["declared"] is not None
            and res["received"] == res["declared"])


def assert_never_wrong(res, digest, what):
    """The invariant: a complete 200 body always has the right digest."""
    if complete(res):
        assert res["digest"] == digest, "%s: complete body with WRONG digest delivered: %s" % (what, res)


def assert_failed_transfer(res, digest, what):
    print("%s: %s" % (what, res))
    assert_never_wrong(res, digest, what)
    assert not complete(res), "%s: expected an error or a truncated transfer, got %s" % (what, res)


def test_faults_mid_transfer(env, images):
    img = images["c"]
    cfg = img["config"]["digest"]
    layer0, layer1 = img["layer_digests"]
    up = env.upstream()
    up.push(img, "app")
    proxy = env.proxy(up)
    node = env.node({"faulty": proxy.url, "direct": up.url, "offline": "http://127.0.0.1:%d" % ml.free_port()},
                    default="faulty", tag_ttl="60s")

    def blob_url(digest, ns):
        return node.v2("app/blobs/%s" % digest, ns)

    def wait_faulty_available():
        # after a network failure the upstream is backed off (1 s); wait it out
        time.sleep(1.2)

    # (c) garbage manifests -------------------------------------------------
    proxy.set((lambda m, p: m == "GET" and "/manifests/" in p, ("garbage",)))
    for ref in ("v1", img["manifest"]):
        r = node.manifest("app", ref, ns="faulty")
        assert r.status_code >= 400, ("garbage manifest served", ref, r.status_code, r.content[:100])
        assert node.alive()
    # ... also when the upstream gives no digest to check against
    proxy.set((lambda m, p: m == "HEAD" and "/manifests/" in p, ("strip", "docker-content-digest")),
              (lambda m, p: m == "GET" and "/manifests/" in p, ("garbage", True)))
    r = node.manifest("app", "v1", ns="faulty")
    assert r.status_code >= 400, ("garbage manifest without digest served", r.status_code, r.content[:100])
    assert node.alive()
    # nothing was stored: with the upstream failing, the tag is unknown
    proxy.set((lambda m, p: "/manifests/" in p, ("status", 503)))
    for ref in ("v1", img["manifest"]):
        r = node.manifest("app", ref, ns="faulty")
        assert r.status_code == 404 and ml.oci_error(r)[0] == "MANIFEST_UNKNOWN", (ref, r.status_code, r.text)
    # healthy again: the right manifest
    proxy.set()
    ml.wait_for(lambda: node.manifest("app", "v1", ns="faulty").status_code == 200, 5, 0.2,
                "the faulty upstream to come back")
    r = node.manifest("app", "v1", ns="faulty")
    assert r.headers["Docker-Content-Digest"] == img["manifest"]
    assert ml.sha256_bytes(r.content) == img["manifest"]

    # (a) connection cut halfway through a blob -----------------------------
    proxy.set((lambda m, p: m == "GET" and layer0 in p, ("cut", 0.5)))
    res = fetch(blob_url(layer0, "faulty"))
    assert_failed_transfer(res, layer0, "cut blob")
    assert res["received"] <= img["blobs"][layer0] // 2 + (1 << 20), res
    assert node.alive()
    res = fetch(blob_url(layer0, "faulty"))  # again, while still cut (or backing off)
    assert_failed_transfer(res, layer0, "cut blob, second try")
    # not stored: a namespace whose upstream is down has no copy to share
    r = node.blob("app", layer0, ns="offline")
    assert r.status_code == 503 and ml.oci_error(r)[0] == "UNAVAILABLE", (r.status_code, r.text[:200])
    # a healthy path gets the right bytes, and then the faulty one shares them
    res = fetch(blob_url(layer0, "direct"))
    assert complete(res) and res["digest"] == layer0, res
    res = fetch(blob_url(layer0, "faulty"))
    assert complete(res) and res["digest"] == layer0, res

    # (b) flipped bytes in a blob body ---------------------------------------
    wait_faulty_available()
    proxy.set((lambda m, p: m == "GET" and layer1 in p, ("flip", 3)))
    for attempt in range(2):
        res = fetch(blob_url(layer1, "faulty"))
        assert_failed_transfer(res, layer1, "flipped blob #%d" % attempt)
        assert node.alive()
    assert any(e["done"] for e in proxy.requests("GET", layer1)), "the proxy never relayed the whole body"
    r = node.blob("app", layer1, ns="offline")
    assert r.status_code == 503 and ml.oci_error(r)[0] == "UNAVAILABLE", (r.status_code, r.text[:200])
    # a HEAD must not claim the corrupt blob either
    r = requests.head(node.v2("app/blobs/%s" % layer1, "offline"), timeout=5)
    assert r.status_code == 503, r.status_code
    res = fetch(blob_url(layer1, "direct"))
    assert complete(res) and res["digest"] == layer1, res
    res = fetch(blob_url(layer1, "faulty"))
    assert complete(res) and res["digest"] == layer1, res

    # a real client through the faults: skopeo fails, then succeeds once healed
    proxy.set((lambda m, p: m == "GET" and cfg in p, ("flip", 1)))
    p = node.pull("app", "v1", env.dir / "faulty-pull", check=False)
    assert p.returncode != 0, "skopeo pulled an image whose config blob was corrupted"
    assert node.alive()
    r = node.blob("app", cfg, ns="offline")
    assert r.status_code == 503, (r.status_code, r.text[:200])
    proxy.set()
    out = env.dir / "healed-pull"
    node.pull("app", "v1", out)
    assert ml.oci_layout_manifest_digest(out) == img["manifest"]
    assert ml.oci_layout_blobs(out) == img["blobs"]
    assert node.alive()
