"""Pull-through from a plain HTTP upstream (docker-registry): ?ns= routing,
default upstream, local reuse, Docker Hub's library/ names, tag revalidation."""

import json
import threading
import time

import requests

import mirrorlib as ml


def manifest_blobs(raw):
    m = json.loads(raw)
    return [m["config"]["digest"]] + [l["digest"] for l in m["layers"]]


def test_pull_by_tag_with_ns_and_default_upstream(env, images):
    img = images["a"]
    up = env.upstream()
    up.push(img, "team/app")
    node = env.node({"ns1": up.url}, default="ns1", tag_ttl="60s")

    # 1. ?ns=ns1 (what containerd sends), manifest and every blob, by plain HTTP
    r = node.manifest("team/app", "v1", ns="ns1")
    assert r.status_code == 200, r.text
    assert r.headers.get("OCI-Namespace") == "ns1"
    assert r.headers["Docker-Content-Digest"] == img["manifest"]
    assert ml.sha256_bytes(r.content) == img["manifest"]
    for digest in manifest_blobs(r.content):
        b = node.blob("team/app", digest, ns="ns1")
        assert b.status_code == 200, b.text
        assert b.headers.get("OCI-Namespace") == "ns1"
        assert ml.sha256_bytes(b.content) == digest
        assert len(b.content) == img["blobs"][digest]
    r = node.manifest("team/app", img["manifest"], ns="ns1")
    assert r.status_code == 200 and ml.sha256_bytes(r.content) == img["manifest"]
    # mirrored content lives in <ns>/<upstream repo>
    assert "ns1/team/app" in node.catalog()

    # 2. skopeo (cannot add ?ns=) through the default upstream: identical image
    out = env.dir / "pull1"
    node.pull("team/app", "v1", out)
    assert ml.oci_layout_manifest_digest(out) == img["manifest"]
    assert ml.oci_layout_blobs(out) == img["blobs"]

    # 3. a second pull is served locally: the upstream sees no request at all
    before = up.requests_from_node()
    assert any(m == "GET" and "/blobs/" in p for m, p, _ in before), before
    out2 = env.dir / "pull2"
    node.pull("team/app", "v1", out2)
    assert ml.oci_layout_blobs(out2) == img["blobs"]
    r = node.manifest("team/app", "v1", ns="ns1")
    assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == img["manifest"]
    assert up.requests_from_node() == before

    # every blob went over the uplink exactly once
    gets = [p for m, p, _ in up.requests_from_node("GET", "/blobs/")]
    assert sorted(gets) == sorted(set(gets)), gets
    assert len(gets) == len(img["blobs"]) - 1  # blobs minus the manifest


def test_pushed_repository_is_not_shadowed_by_the_mirror(env, images):
    """Without ?ns= local (pushed) content wins; with ?ns= the mirror answers."""
    up = env.upstream()
    up.push(images["a"], "shared/app")
    node = env.node({"ns1": up.url}, default="ns1")
    env.skopeo(["copy", "--retry-times", "0", "--dest-tls-verify=false",
                "oci:%s:v1" % images["b"]["dir"], "docker://%s/shared/app:v1" % node.host])
    local = node.manifest("shared/app", "v1")
    assert local.status_code == 200
    assert local.headers["Docker-Content-Digest"] == images["b"]["manifest"]
    mirrored = node.manifest("shared/app", "v1", ns="ns1")
    assert mirrored.status_code == 200, mirrored.text
    assert mirrored.headers["Docker-Content-Digest"] == images["a"]["manifest"]
    # and the pushed tag still answers with the pushed image afterwards
    assert node.manifest("shared/app", "v1").headers["Docker-Content-Digest"] == images["b"]["manifest"]


def test_push_into_a_mirror_cache_is_denied(env, images):
    """A client cannot write the repositories that cache an upstream (ns1/...): a push
    there would change what every ?ns=ns1 client sees. It gets 403 DENIED, naming the
    upstream, and the mirrored image stays as upstream has it."""
    up = env.upstream()
    up.push(images["a"], "app")
    node = env.node({"ns1": up.url}, default="ns1")
    assert node.manifest("app", "v1", ns="ns1").headers["Docker-Content-Digest"] == images["a"]["manifest"]
    r = requests.post(node.url + "/v2/ns1/app/blobs/uploads/", timeout=10)
    code, message = ml.oci_error(r)
    assert r.status_code == 403 and code == "DENIED" and up.url.split("//")[1] in message, (r.status_code, r.text)
    r = requests.put(node.url + "/v2/ns1/app/manifests/v1", data=b"{}", timeout=10,
                     headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 403 and ml.oci_error(r)[0] == "DENIED", r.text
    r = requests.delete(node.url + "/v2/ns1/app/manifests/v1", timeout=10)
    assert r.status_code == 403, r.text
    # a real client push is refused too, and the cache is untouched
    p = env.skopeo(["copy", "--retry-times", "0", "--dest-tls-verify=false",
                    "oci:%s:v1" % images["b"]["dir"], "docker://%s/ns1/app:v1" % node.host], check=False)
    assert p.returncode != 0
    assert node.manifest("app", "v1", ns="ns1").headers["Docker-Content-Digest"] == images["a"]["manifest"]
    # reads of the cache by its local name still work
    assert node.manifest("ns1/app", "v1").status_code == 200


def test_docker_hub_library_names(env, images):
    """Namespace docker.io: a one-segment name means library/<name> upstream."""
    img = images["a"]
    up = env.upstream()
    up.push(img, "library/busybox")
    node = env.node({"docker.io": up.url}, default="docker.io")
    r = node.manifest("busybox", "v1", ns="docker.io")
    assert r.status_code == 200, r.text
    assert r.headers["Docker-Content-Digest"] == img["manifest"]
    assert r.headers.get("OCI-Namespace") == "docker.io"
    b = node.blob("busybox", img["layer_digests"][0], ns="docker.io")
    assert b.status_code == 200 and ml.sha256_bytes(b.content) == img["layer_digests"][0]
    assert "docker.io/library/busybox" in node.catalog()
    assert all("/v2/library/busybox/" in p for _, p, _ in up.requests_from_node())
    # the explicit form names the same upstream repository
    r = node.manifest("library/busybox", "v1", ns="docker.io")
    assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == img["manifest"]
    # skopeo via the default upstream
    out = env.dir / "pull"
    node.pull("busybox", "v1", out)
    assert ml.oci_layout_blobs(out) == img["blobs"]


def test_unknown_namespace_and_unknown_image(env, images):
    up = env.upstream()
    up.push(images["a"], "app")
    node = env.node({"ns1": up.url}, default="ns1")
    r = node.manifest("app", "nosuchtag", ns="ns1")
    assert r.status_code == 404 and ml.oci_error(r)[0] == "MANIFEST_UNKNOWN", r.text
    r = node.manifest("nosuchrepo", "v1", ns="ns1")
    assert r.status_code == 404, r.text
    r = node.manifest("app", "v1", ns="not-configured.example")
    assert r.status_code == 404, r.text  # no upstream for that namespace, nothing local
    r = node.blob("app", "sha256:" + "0" * 64, ns="ns1")
    assert r.status_code == 404 and ml.oci_error(r)[0] == "BLOB_UNKNOWN", r.text


def test_tag_moved_upstream_is_picked_up_after_ttl(env, images):
    a, b = images["a"], images["b"]
    ttl = 3.0
    up = env.upstream()
    up.push(a, "app")
    node = env.node({"ns1": up.url}, default="ns1", tag_ttl="3s")

    r = node.manifest("app", "v1", ns="ns1")
    validated = time.monotonic()
    assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == a["manifest"]
    out = env.dir / "pull-a"
    node.pull("app", "v1", out)
    assert ml.oci_layout_blobs(out) == a["blobs"]

    up.push(b, "app", "v1")  # the tag moves upstream
    heads = len(up.requests_from_node("HEAD", "/manifests/v1"))
    # within the TTL the node answers from its cache and asks nothing upstream
    if time.monotonic() - validated < ttl - 1.0:
        for _ in range(5):
            r = node.manifest("app", "v1", ns="ns1")
            assert r.headers["Docker-Content-Digest"] == a["manifest"]
        assert len(up.requests_from_node("HEAD", "/manifests/v1")) == heads

    # after the TTL the move is seen
    deadline = validated + ttl + 1.5
    while True:
        r = node.manifest("app", "v1", ns="ns1")
        assert r.status_code == 200, r.text
        if r.headers["Docker-Content-Digest"] == b["manifest"]:
            break
        assert time.monotonic() < deadline, "node still serves the old digest %.1fs after the tag moved" % (
            time.monotonic() - validated)
        time.sleep(0.2)
    assert ml.sha256_bytes(r.content) == b["manifest"]
    out = env.dir / "pull-b"
    node.pull("app", "v1", out)
    assert ml.oci_layout_manifest_digest(out) == b["manifest"]
    assert ml.oci_layout_blobs(out) == b["blobs"]
    # the old image stays available by digest
    r = node.manifest("app", a["manifest"], ns="ns1")
    assert r.status_code == 200 and ml.sha256_bytes(r.content) == a["manifest"]

    # revalidation is at most one HEAD per TTL however many requests come
    t0 = time.monotonic()
    heads = len(up.requests_from_node("HEAD", "/manifests/v1"))
    while time.monotonic() - t0 < 2.0:
        assert node.manifest("app", "v1", ns="ns1").status_code == 200
        time.sleep(0.05)
    assert len(up.requests_from_node("HEAD", "/manifests/v1")) - heads <= 1


def test_image_index_pull_through(env, images):
    """A multi-platform image (OCI index) and its child manifests, by skopeo --all."""
    a, b = images["a"], images["b"]
    up = env.upstream()
    up.push(a, "multi", "amd64")
    up.push(b, "multi", "arm64")
    children = []
    for img, arch in ((a, "amd64"), (b, "arm64")):
        children.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": img["manifest"],
                         "size": img["manifest_size"], "platform": {"architecture": arch, "os": "linux"}})
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": children}).encode()
    r = ml.requests.put(up.url + "/v2/multi/manifests/v1", data=index,
                        headers={"Content-Type": "application/vnd.oci.image.index.v1+json"}, timeout=10)
    assert r.status_code == 201, (r.status_code, r.text)
    node = env.node({"ns1": up.url}, default="ns1")

    r = node.manifest("multi", "v1", ns="ns1")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/vnd.oci.image.index.v1+json"
    assert r.content == index and r.headers["Docker-Content-Digest"] == ml.sha256_bytes(index)
    out = env.dir / "all"
    env.skopeo(["copy", "--all", "--retry-times", "0", "--src-tls-verify=false",
                "docker://%s/multi:v1" % node.host, "oci:%s:v1" % out])
    got = ml.oci_layout_blobs(out)
    assert ml.sha256_bytes(index) in got
    assert set(a["blobs"]) | set(b["blobs"]) <= set(got)


def test_concurrent_requests_revalidate_a_tag_once(env, images):
    """"A HEAD at most once per tag-ttl": also when many clients ask at the same
    moment after the TTL ran out (a rollout), with a slow uplink."""
    a = images["a"]
    up = env.upstream()
    up.push(a, "app")
    proxy = env.proxy(up)
    node = env.node({"ns1": proxy.url}, default="ns1", tag_ttl="1s")
    assert node.manifest("app", "v1", ns="ns1").status_code == 200
    proxy.set((lambda m, p: m == "HEAD" and "/manifests/" in p, ("delay", 0.5)))
    time.sleep(1.3)
    heads = len(proxy.requests("HEAD", "/manifests/v1"))
    results = []

    def client():
        r = node.manifest("app", "v1", ns="ns1")
        results.append((r.status_code, r.headers.get("Docker-Content-Digest")))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [(200, a["manifest"])] * 8, results
    n = len(proxy.requests("HEAD", "/manifests/v1")) - heads
    assert n == 1, "8 concurrent requests after the TTL sent %d HEADs upstream (want 1)" % n


def test_docker_schema2_image(env, images):
    """A Docker schema 2 manifest upstream is mirrored byte for byte, media type kept."""
    img = images["c"]
    up = env.upstream()
    up.push(img, "docker/app", fmt="v2s2")
    direct = ml.requests.get(up.url + "/v2/docker/app/manifests/v1", headers=ml.MANIFEST_ACCEPT, timeout=10)
    assert direct.headers["Content-Type"] == "application/vnd.docker.distribution.manifest.v2+json", "setup"
    node = env.node({"ns1": up.url}, default="ns1")
    r = node.manifest("docker/app", "v1", ns="ns1")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == direct.headers["Content-Type"]
    assert r.content == direct.content
    assert r.headers["Docker-Content-Digest"] == direct.headers["Docker-Content-Digest"]
    out = env.dir / "pull"
    node.pull("docker/app", "v1", out)
    got = ml.oci_layout_blobs(out)
    assert set(img["layer_digests"]) <= set(got)


def test_an_upstream_named_by_host_name_is_looked_up_and_served(env, images):
    """An upstream given as http://localhost:PORT: its name is looked up off
    the I/O threads (and the answer reused), and a cold pull of every blob at
    once, manifest included, arrives intact."""
    img = images["a"]
    up = env.upstream()
    up.push(img, "team/app")
    node = env.node({"ns1": up.url.replace("127.0.0.1", "localhost")}, default="ns1", tag_ttl="60s")
    r = node.manifest("team/app", "v1", ns="ns1")
    assert r.status_code == 200, r.text
    assert r.headers["Docker-Content-Digest"] == img["manifest"]
    digests = manifest_blobs(r.content)
    results = {}

    def get(digest):
        results[digest] = node.blob("team/app", digest, ns="ns1")

    threads = [threading.Thread(target=get, args=(d,)) for d in digests]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for digest in digests:
        assert results[digest].status_code == 200, results[digest].text
        assert ml.sha256_bytes(results[digest].content) == digest
    # a HEAD of a blob the node does not hold asks the upstream by name too
    other = up.push_blob("team/app", b"not pulled yet")
    h = requests.head("%s/v2/team/app/blobs/%s?ns=ns1" % (node.url, other), timeout=10)
    assert h.status_code == 200 and h.headers["Content-Length"] == str(len(b"not pulled yet"))
