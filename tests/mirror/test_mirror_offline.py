"""Uplink loss: cached content is served at once with the upstream killed,
answering 5xx or hanging, also after a node restart; what is not cached fails
fast with a clear error."""

import time

import requests

import mirrorlib as ml

FAST = 1.0  # seconds: "at once"


def assert_serves_cached(node, img, repo="app", tag="v1", label=""):
    """Every request of a pull (tag with and without ?ns=, digest, blobs) is
    answered correctly in under FAST seconds."""
    for ns in ("ns1", None):
        r = node.manifest(repo, tag, ns=ns)
        assert r.status_code == 200, (label, ns, r.status_code, r.text)
        assert r.headers["Docker-Content-Digest"] == img["manifest"], label
        assert r.seconds < FAST, "%s: manifest by tag (ns=%s) took %.2fs" % (label, ns, r.seconds)
        r = node.manifest(repo, img["manifest"], ns=ns)
        assert r.status_code == 200 and ml.sha256_bytes(r.content) == img["manifest"], label
        assert r.seconds < FAST, "%s: manifest by digest took %.2fs" % (label, r.seconds)
    for digest in img["blobs"]:
        if digest == img["manifest"]:
            continue
        b = node.blob(repo, digest, ns="ns1")
        assert b.status_code == 200 and ml.sha256_bytes(b.content) == digest, (label, b.status_code)
        assert b.seconds < FAST, "%s: blob took %.2fs" % (label, b.seconds)


def assert_uncached_fails_fast(node, up, other):
    """An unknown image: 404 MANIFEST_UNKNOWN; an uncached blob: 503 UNAVAILABLE
    naming the upstream. Both in under FAST seconds."""
    for repo, ref in (("app", "nosuchtag"), ("other", "v1"), ("app", other["manifest"])):
        r = node.manifest(repo, ref, ns="ns1")
        assert r.status_code == 404 and ml.oci_error(r)[0] == "MANIFEST_UNKNOWN", (repo, ref, r.text)
        assert r.seconds < FAST, "unknown image %s:%s took %.2fs" % (repo, ref, r.seconds)
    b = node.blob("other", other["layer_digests"][0], ns="ns1")
    code, message = ml.oci_error(b)
    assert b.status_code == 503 and code == "UNAVAILABLE", (b.status_code, b.text)
    assert "ns1" in message or up.host in message, message
    assert b.seconds < FAST, "uncached blob took %.2fs" % b.seconds


def test_upstream_killed_cached_content_served_at_once(env, images):
    a, other = images["a"], images["b"]
    up = env.upstream()
    up.push(a, "app")
    up.push(other, "other")
    node = env.node({"ns1": up.url}, default="ns1", tag_ttl="1s")
    out = env.dir / "pull"
    node.pull("app", "v1", out)
    assert ml.oci_layout_blobs(out) == a["blobs"]

    up.kill()
    time.sleep(1.2)  # past the tag TTL: the node must try to revalidate and fall back
    # repeated over ~4 s, across the node's backoff windows (1 s, 2 s, ...)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 4:
        assert_serves_cached(node, a, label="upstream killed")
        time.sleep(0.3)
    assert_uncached_fails_fast(node, up, other)
    # a real client pulls the whole image, by tag and by digest
    node.pull("app", "v1", env.dir / "offline-tag")
    assert ml.oci_layout_blobs(env.dir / "offline-tag") == a["blobs"]
    env.skopeo(["copy", "--retry-times", "0", "--src-tls-verify=false",
                "docker://%s/app@%s" % (node.host, a["manifest"]), "oci:%s" % (env.dir / "offline-digest")])
    assert ml.oci_layout_blobs(env.dir / "offline-digest") == a["blobs"]

    # cached content survives a node restart, still with no upstream
    node.restart()
    assert_serves_cached(node, a, label="after restart")
    assert_uncached_fails_fast(node, up, other)
    node.pull("app", "v1", env.dir / "after-restart")
    assert ml.oci_layout_blobs(env.dir / "after-restart") == a["blobs"]

    # uplink back: new content flows again (after the backoff, at most 30 s)
    up.start()
    ml.wait_for(lambda: node.manifest("other", "v1", ns="ns1").status_code == 200, 35,
                interval=0.5, what="the node to use the upstream again")
    b = node.blob("other", other["layer_digests"][0], ns="ns1")
    assert b.status_code == 200 and ml.sha256_bytes(b.content) == other["layer_digests"][0]


def test_upstream_answering_5xx_serves_cached(env, images):
    a, other = images["a"], images["b"]
    up = env.upstream()
    up.push(a, "app")
    up.push(other, "other")
    proxy = env.proxy(up)
    node = env.node({"ns1": proxy.url}, default="ns1", tag_ttl="1s")
    node.pull("app", "v1", env.dir / "pull")
    proxy.set((lambda m, p: True, ("status", 503)))
    time.sleep(1.2)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3:
        assert_serves_cached(node, a, label="upstream 503")
        time.sleep(0.3)
    assert proxy.requests("HEAD", "/manifests/v1"), "the node never tried to revalidate"
    assert_uncached_fails_fast(node, up, other)


def test_upstream_hanging_serves_cached(env, images):
    """An upstream that accepts connections and never answers (a stalled uplink):
    the first revalidation may cost the node's timeout, but the node must not make
    clients wait for that timeout again and again."""
    a = images["a"]
    up = env.upstream()
    up.push(a, "app")
    proxy = env.proxy(up)
    node = env.node({"ns1": proxy.url}, default="ns1", tag_ttl="1s")
    node.pull("app", "v1", env.dir / "pull")
    proxy.set((lambda m, p: True, ("hang",)))
    try:
        time.sleep(1.2)
        first = node.manifest("app", "v1", ns="ns1", timeout=30)
        assert first.status_code == 200 and first.headers["Docker-Content-Digest"] == a["manifest"]
        print("first request with a hanging upstream took %.1fs" % first.seconds)
        slow = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4:
            try:
                r = node.manifest("app", "v1", ns="ns1", timeout=2)
                ok = r.status_code == 200 and r.headers["Docker-Content-Digest"] == a["manifest"]
                if not ok or r.seconds >= FAST:
                    slow.append("%.2fs status %s" % (r.seconds, r.status_code))
            except ml.requests.Timeout:
                slow.append("> 2s (client timeout)")
            time.sleep(0.3)
        assert not slow, ("with a hanging upstream, requests for a cached tag after the first "
                          "(first took %.1fs) were slow or failed: %s" % (first.seconds, slow))
    finally:
        proxy.close()  # release the node's hung upstream requests, so that it stops promptly


def test_push_works_while_the_default_upstream_is_down(env, images):
    """A push asks HEAD /blobs/<digest> (no ?ns=) before uploading. With the default
    upstream down the node must answer 404 (not here), not 503, or every push to a
    node of a cut-off site fails. The pushed image then pulls back verified."""
    img = images["b"]
    up = env.upstream()
    node = env.node({"ns1": up.url}, default="ns1")
    up.kill()
    r = requests.head(node.url + "/v2/local/app/blobs/" + img["layer_digests"][0], timeout=10)
    assert r.status_code == 404, r.status_code
    env.skopeo(["copy", "--retry-times", "0", "--dest-tls-verify=false",
                "oci:%s:v1" % img["dir"], "docker://%s/local/app:v1" % node.host])
    out = env.dir / "pulled"
    node.pull("local/app", "v1", out)
    assert ml.oci_layout_blobs(out) == img["blobs"]
