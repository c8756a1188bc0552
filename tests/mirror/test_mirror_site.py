"""The site data plane with real processes: nodes joined with a site key, in front of a
real docker-registry upstream. Cold pulls on several nodes at once fetch every chunk
from upstream once; a holder whose stored blob went bad never serves it; a node killed
in the middle of a chunked fetch resumes from its verified chunks after a restart."""

import json
import threading
import time

import requests

import mirrorlib as ml


def flag(node, name):
    prefix = "--edgepier.%s=" % name
    return next(a[len(prefix):] for a in node.cmd if a.startswith(prefix))


def members(node):
    r = requests.get("http://%s/admin/v1/members" % flag(node, "admin-address"), timeout=5)
    return {m["name"]: m["state"] for m in r.json()["members"] if not m.get("self")}


def admin(node, path):
    return requests.get("http://%s/admin/v1/%s" % (flag(node, "admin-address"), path), timeout=5).json()


def wait_announced(observer, member, at_least, timeout):
    """Until `observer` sees `member` announce at least `at_least` blobs."""
    name = flag(observer, "node-name")
    ml.wait_for(lambda: [m for m in admin(observer, "members")["members"]
                         if m["name"] == member and m["blobs_announced"] >= at_least], timeout,
                what="%s's blobs announced to %s" % (member, name))


def upstream_bytes(node):
    text = requests.get(node.url + "/metrics", timeout=5).text
    return int(next(l.split()[-1] for l in text.splitlines() if l.startswith("edgepier_upstream_bytes_total")))


def start_site(env, upstream_url, names, chunk_kb=256, key=None):
    """Nodes joined into one site (the first is the others' seed), each with the same
    upstream as default; waits for the full mesh."""
    if key is None:
        key = env.dir / "site.key"
        ml.run([ml.EPCTL, "keygen", str(key)])
    nodes = []
    for name in names:
        extra = ["--edgepier.node-name=" + name, "--edgepier.site-key-file=%s" % key,
                 "--edgepier.chunk-size=%d" % (chunk_kb << 10)]
        if nodes:
            extra.append("--edgepier.seeds=%s" % json.dumps([flag(nodes[0], "cluster-address")]))
        nodes.append(env.node({"up": upstream_url}, default="up", extra=extra))
    wait_mesh(nodes)
    return nodes, key


def wait_mesh(nodes):
    names = {flag(n, "node-name") for n in nodes}
    ml.wait_for(lambda: all({m for m, s in members(n).items() if s == "alive"} >= names - {flag(n, "node-name")}
                            for n in nodes), 30, what="full mesh")


def pull_ok(env, node, repo, tag, img, label):
    out = env.dir / ("pull-%s" % label)
    node.pull(repo, tag, out)
    assert ml.oci_layout_blobs(out) == img["blobs"], label


def pull_all_at_once(env, nodes, repo, tag, img):
    """Every node pulls the image at the same time; all pulls must be complete."""
    errors = []

    def pull(k):
        try:
            pull_ok(env, nodes[k], repo, tag, img, "s%d" % (k + 1))
        except Exception as e:  # reported below
            errors.append("s%d: %s" % (k + 1, e))
    threads = [threading.Thread(target=pull, args=(k,)) for k in range(len(nodes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_concurrent_cold_pulls_fetch_each_chunk_from_upstream_once(env):
    img = ml.make_image(env.dir / "img", "dp-1", layers=2, layer_mb=3, tag="v1")
    up = env.upstream()
    up.push(img, "app")
    nodes, _ = start_site(env, up.url, ["s1", "s2", "s3"])
    pull_all_at_once(env, nodes, "app", "v1", img)
    total = sum(img["blobs"].values())
    fetched = sum(upstream_bytes(n) for n in nodes)
    assert fetched <= 1.05 * total, "upstream bytes %d for an image of %d" % (fetched, total)
    # the chunks really moved between members, and each node accounts them per peer
    from_peers = sum(p["bytes_from"] for n in nodes for p in admin(n, "stats")["peers"])
    assert from_peers >= total, admin(nodes[0], "stats")
    assert all(p["bad_chunks"] == 0 for n in nodes for p in admin(n, "stats")["peers"])
    # each node knew every blob's size from the manifest it served: no HEAD of a blob upstream
    heads = up.requests_from_node("HEAD", "/blobs/")
    assert heads == [], "blob HEADs sent upstream: %s" % heads


def test_an_upstream_without_range_support_sends_each_blob_once_to_one_fetcher(env):
    """Behind an upstream that ignores Range (and does not advertise it), three nodes
    pull the same image at once. Each node learns that from a one-byte probe (its 200
    answer is cut after the head); then each blob has one designated fetcher, which gets
    it in one GET, and the others take its chunks from the members. Every pull is
    complete and each layer was downloaded in full once."""
    img = ml.make_image(env.dir / "img", "dp-7", layers=2, layer_mb=24, tag="v1")
    up = env.upstream()
    up.push(img, "app")
    proxy = env.proxy(up)
    proxy.set((lambda method, path: "/blobs/" in path, ("no-ranges",)))
    nodes, _ = start_site(env, proxy.url, ["s1", "s2", "s3"])
    pull_all_at_once(env, nodes, "app", "v1", img)
    for layer in img["layer_digests"]:
        whole = [g for g in proxy.requests("GET", layer) if g["sent"] == g["length"]]
        if len(whole) != 1:
            print("GETs of", layer, [(g["status"], g["sent"], g["length"], g.get("error")) for g in proxy.requests("GET", layer)])
            print("upstream bytes per node", [upstream_bytes(n) for n in nodes])
        assert len(whole) == 1, "each layer must cross the uplink in full once (see the GETs printed above)"
    total = sum(img["blobs"].values())
    fetched = sum(upstream_bytes(n) for n in nodes)
    assert fetched <= 1.05 * total, "upstream bytes %d for an image of %d" % (fetched, total)


def test_an_upstream_that_serves_ranges_without_saying_so_is_fetched_per_chunk(env):
    """The upstream serves Range requests but its answers carry no Accept-Ranges: a
    one-byte probe shows it, and a cold pull is fetched per chunk by several members
    (206 answers of one chunk each), never as a whole blob."""
    img = ml.make_image(env.dir / "img", "dp-9", layers=1, layer_mb=3, tag="v1")
    up = env.upstream()
    up.push(img, "app")
    proxy = env.proxy(up)
    proxy.set((lambda method, path: "/blobs/" in path, ("strip", "accept-ranges")))
    nodes, _ = start_site(env, proxy.url, ["s1", "s2", "s3"])
    pull_ok(env, nodes[0], "app", "v1", img, "s1")
    layer = img["layer_digests"][0]
    gets = proxy.requests("GET", layer)
    chunks = [g for g in gets if g["status"] == 206 and g["length"] == 256 << 10]
    assert len(chunks) >= 12 - 1, [(g["status"], g["length"]) for g in gets]  # 12 chunks, the last one shorter
    assert not [g for g in gets if g["status"] == 200], [(g["status"], g["length"]) for g in gets]
    total = sum(img["blobs"].values())
    assert sum(upstream_bytes(n) for n in nodes) <= 1.05 * total


def test_a_holder_whose_blob_went_bad_never_serves_it(env):
    """s1 holds a pushed image; its layer file is then damaged on disk. When a peer asks,
    s1 re-verifies the blob, finds it bad, drops it and answers that it has nothing;
    once a good copy exists on s2, s3 pulls the image verified."""
    img = ml.make_image(env.dir / "img", "dp-2", layers=1, layer_mb=2, tag="v1")
    up = env.upstream()
    nodes, key = start_site(env, up.url, ["s1"])
    s1 = nodes[0]
    env.skopeo(["copy", "--retry-times", "0", "--dest-tls-verify=false",
                "oci:%s:v1" % img["dir"], "docker://%s/local/app:v1" % s1.host])
    layer = img["layer_digests"][0]
    path = s1.data / "blobs" / "sha256" / layer[7:9] / layer[7:]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    s2 = env.node({"up": up.url}, default="up", extra=[
        "--edgepier.node-name=s2", "--edgepier.site-key-file=%s" % key, "--edgepier.chunk-size=%d" % (256 << 10),
        "--edgepier.seeds=%s" % json.dumps([flag(s1, "cluster-address")])])
    wait_mesh([s1, s2])
    # s2 cannot get the layer: the only holder's copy is bad, and it says so
    r = requests.get(s2.url + "/v2/local/app/blobs/" + layer, timeout=30)
    assert r.status_code == 404 and ml.oci_error(r)[0] == "BLOB_UNKNOWN", (r.status_code, r.text[:200])
    ml.wait_for(lambda: "no longer matches its digest" in s1.log.read_text(), 10, what="s1 reports the bad blob")
    assert not path.exists(), "the damaged blob is still stored"
    # a good copy pushed to s2; a new member s3 pulls the image from the site
    env.skopeo(["copy", "--retry-times", "0", "--dest-tls-verify=false",
                "oci:%s:v1" % img["dir"], "docker://%s/local/app:v1" % s2.host])
    s3 = env.node({"up": up.url}, default="up", extra=[
        "--edgepier.node-name=s3", "--edgepier.site-key-file=%s" % key, "--edgepier.chunk-size=%d" % (256 << 10),
        "--edgepier.seeds=%s" % json.dumps([flag(s1, "cluster-address")])])
    wait_mesh([s1, s2, s3])
    pull_ok(env, s3, "local/app", "v1", img, "s3")


def test_a_chunk_that_does_not_match_is_discarded_and_its_peer_penalised(env):
    """s1 pulled a layer through the site and remembers its chunk digests; then its
    stored copy goes bad (a byte in every chunk). s2 pulls the layer: s1 streams the
    damaged chunks s2 lacks with their (correct) digests, s2 hashes them as they arrive,
    discards them, penalises s1 and gets them elsewhere. s2's copy is whole and right."""
    img = ml.make_image(env.dir / "img", "dp-5", layers=1, layer_mb=2, tag="v1")
    up = env.upstream()
    up.push(img, "app")
    nodes, _ = start_site(env, up.url, ["s1", "s2"])
    s1, s2 = nodes
    layer = img["layer_digests"][0]
    r = requests.get(s1.url + "/v2/app/blobs/" + layer, timeout=60)
    assert r.status_code == 200 and ml.sha256_bytes(r.content) == layer
    path = s1.data / "blobs" / "sha256" / layer[7:9] / layer[7:]
    ml.wait_for(path.exists, 10, what="s1 stores the layer")
    with open(path, "r+b") as f:  # a byte in each 256 KiB chunk
        for offset in range(1000, path.stat().st_size, 256 << 10):
            f.seek(offset)
            b = f.read(1)
            f.seek(offset)
            f.write(bytes([b[0] ^ 0xFF]))
    wait_announced(s2, "s1", 1, 5)
    r = requests.get(s2.url + "/v2/app/blobs/" + layer, timeout=60)
    assert r.status_code == 200 and ml.sha256_bytes(r.content) == layer
    assert "did not match its digest" in s2.log.read_text()
    bad = {p["name"]: p["bad_chunks"] for p in admin(s2, "stats")["peers"]}
    assert bad.get("s1", 0) >= 1, bad


def test_killed_node_resumes_a_partial_blob_from_its_verified_chunks(env):
    img = ml.make_image(env.dir / "img", "dp-3", layers=1, layer_mb=12, tag="v1")
    up = env.upstream()
    up.push(img, "big")
    proxy = env.proxy(up)
    layer = img["layer_digests"][0]
    size = img["blobs"][layer]
    chunks = -(-size // (256 << 10))
    # slow uplink for the layer's chunks: about 3 MB/s per request
    proxy.set((lambda m, p: m == "GET" and layer in p, ("throttle", 3 << 20)))
    nodes, _ = start_site(env, proxy.url, ["s1", "s2"])
    s1, s2 = nodes

    def layer_gets():
        return [e for e in proxy.requests("GET", layer) if e.get("status") in (200, 206)]
    fetch = threading.Thread(target=lambda: requests.get(s1.url + "/v2/big/blobs/" + layer, timeout=120),
                             daemon=True)
    fetch.start()
    ml.wait_for(lambda: sum(1 for e in layer_gets() if e.get("done")) >= chunks // 2, 60,
                what="half of the chunks fetched")
    ml.kill_process(s1.proc)
    s1.start()
    ml.wait_for(lambda: "resuming " + layer in s1.log.read_text(), 10, what="s1 resumes the partial blob")
    line = next(l for l in s1.log.read_text().splitlines() if "resuming " + layer in l)
    resumed = int(line.split(" from ")[1].split(" of ")[0])
    assert resumed > 0, line
    wait_mesh(nodes)
    r = requests.get(s1.url + "/v2/big/blobs/" + layer, timeout=120)
    assert r.status_code == 200 and ml.sha256_bytes(r.content) == layer
    # resumed chunks were not fetched again: only chunks in flight at the kill were
    # (at most 4 per node in flight)
    assert len(layer_gets()) <= chunks + 8, (len(layer_gets()), chunks, line)


def test_chunks_bad_at_their_source_fail_the_pull_and_the_next_one_fetches_directly(env):
    """Upstream sends every chunk of a layer with flipped bytes during the first pull. Each
    designated fetcher records the digest of the chunk as it got it, so the chunks
    'verify'; the whole blob does not. The client must not receive a complete body (the
    last byte is held back until the digest checks). Upstream is then healthy again, but
    the other member still holds its bad chunks: the next pull must not assemble from
    them; it fetches the blob straight from upstream and succeeds."""
    img = ml.make_image(env.dir / "img", "dp-4", layers=1, layer_mb=2, tag="v1")
    up = env.upstream()
    up.push(img, "app")
    proxy = env.proxy(up)
    layer = img["layer_digests"][0]
    size = img["blobs"][layer]
    proxy.set((lambda method, path: method == "GET" and layer in path, ("flip", 3)))
    nodes, _ = start_site(env, proxy.url, ["s1", "s2"])
    s1, s2 = nodes
    try:
        r = requests.get(s1.url + "/v2/app/blobs/" + layer, timeout=60)
        complete = r.status_code == 200 and len(r.content) == size
        assert not complete, "the corrupted fetch was delivered as a complete blob"
    except requests.exceptions.RequestException:
        pass  # the stream was cut before the end: what a client must see
    assert proxy.requests("GET", layer), "the proxy never saw a chunk request"
    assert "does not match" in s1.log.read_text() or "do not match" in s1.log.read_text()
    proxy.set()  # upstream healthy again; s2 still holds the chunks it fetched
    r = requests.get(s1.url + "/v2/app/blobs/" + layer, timeout=60)
    assert r.status_code == 200 and ml.sha256_bytes(r.content) == layer
    assert "the next pull fetches it from upstream directly" in s1.log.read_text()


def test_members_announce_the_blobs_they_can_serve(env):
    """After s1 pulled an image through the site, s1 announces its blobs with its
    heartbeats; s2 sees them within a couple of seconds, and a new member s3 then pulls
    the image from the members that have it, without the uplink."""
    img = ml.make_image(env.dir / "img", "dp-5", layers=2, layer_mb=1, tag="v1")
    up = env.upstream()
    up.push(img, "app")
    nodes, key = start_site(env, up.url, ["s1", "s2"])
    s1, s2 = nodes
    pull_ok(env, s1, "app", "v1", img, "s1")
    layers = len(img["layer_digests"]) + 1  # layers and the config blob
    wait_announced(s2, "s1", layers, 5)
    before = sum(upstream_bytes(n) for n in nodes)
    s3 = env.node({"up": up.url}, default="up", extra=[
        "--edgepier.node-name=s3", "--edgepier.site-key-file=%s" % key, "--edgepier.chunk-size=%d" % (256 << 10),
        "--edgepier.seeds=%s" % json.dumps([flag(s1, "cluster-address")])])
    wait_mesh([s1, s2, s3])
    pull_ok(env, s3, "app", "v1", img, "s3")
    fetched = sum(upstream_bytes(n) for n in nodes + [s3]) - before
    assert fetched < 64 << 10, "the new member's pull went over the uplink: %d bytes" % fetched


def test_pushed_blobs_are_announced_and_pulled_from_the_node_they_were_pushed_to(env):
    """An image pushed to s1 (no upstream has it) is announced by s1 like an assembled
    one: s2 sees its blobs within a second or so, and pulls the image from s1."""
    img = ml.make_image(env.dir / "img", "dp-6", layers=2, layer_mb=1, tag="v1")
    up = env.upstream()
    nodes, _ = start_site(env, up.url, ["s1", "s2"])
    s1, s2 = nodes
    env.skopeo(["copy", "--retry-times", "0", "--dest-tls-verify=false",
                "oci:%s:v1" % img["dir"], "docker://%s/local/app:v1" % s1.host])
    blobs = len(img["layer_digests"]) + 1  # layers and the config blob
    wait_announced(s2, "s1", blobs, 3)
    pull_ok(env, s2, "local/app", "v1", img, "s2")


def test_a_pull_spreads_over_whole_and_partial_holders(env):
    """s1 pulls a layer cold: its chunks are fetched by the designated fetchers s1, s2 and
    s3, so s2 and s3 keep partial copies and announce their chunks. When s2 then pulls the
    layer, it keeps its own chunks and takes the rest from s1 (whole) and s3 (partial)
    alike, not all from the one whole holder."""
    img = ml.make_image(env.dir / "img", "dp-8", layers=1, layer_mb=4, tag="v1")
    up = env.upstream()
    up.push(img, "app")
    nodes, _ = start_site(env, up.url, ["s1", "s2", "s3"])
    s1, s2, s3 = nodes
    layer = img["layer_digests"][0]
    r = requests.get(s1.url + "/v2/app/blobs/" + layer, timeout=60)
    assert r.status_code == 200 and ml.sha256_bytes(r.content) == layer
    wait_announced(s2, "s3", 1, 5)
    time.sleep(0.6)  # the site actor hands announcements to the transfer threads within a tick (250 ms)
    before = upstream_bytes(s1) + upstream_bytes(s2) + upstream_bytes(s3)
    r = requests.get(s2.url + "/v2/app/blobs/" + layer, timeout=60)
    assert r.status_code == 200 and ml.sha256_bytes(r.content) == layer
    assert upstream_bytes(s1) + upstream_bytes(s2) + upstream_bytes(s3) == before, "s2's pull used the uplink"
    got = {p["name"]: p["bytes_from"] for p in admin(s2, "stats")["peers"]}
    assert got.get("s1", 0) > 0 and got.get("s3", 0) > 0, got


def test_prefetch_waits_while_a_client_pull_is_fetching(env):
    """s2 is pulling a layer slowly from upstream when an image pushed to s1 is pinned
    (auto-pin on push). s2's replicator holds the prefetch back while the pull fetches,
    then replicates the pinned image."""
    slow = ml.make_image(env.dir / "slow", "dp-10", layers=1, layer_mb=4, tag="v1")
    img = ml.make_image(env.dir / "img", "dp-11", layers=1, layer_mb=1, tag="v1")
    up = env.upstream()
    up.push(slow, "slow")
    proxy = env.proxy(up)
    slow_layer = slow["layer_digests"][0]
    proxy.set((lambda method, path: method == "GET" and slow_layer in path, ("throttle", 128 << 10)))
    nodes, _ = start_site(env, proxy.url, ["s1", "s2"])
    s1, s2 = nodes
    pulled = {}
    puller = threading.Thread(target=lambda: pulled.update(
        r=requests.get(s2.url + "/v2/slow/blobs/" + slow_layer, timeout=120)))
    puller.start()
    ml.wait_for(lambda: proxy.requests("GET", slow_layer), 10, what="the slow pull to start")
    env.skopeo(["copy", "--retry-times", "0", "--dest-tls-verify=false",
                "oci:%s:v1" % img["dir"], "docker://%s/local/app:v1" % s1.host])
    layer = img["layer_digests"][0]

    def s2_holds():
        return requests.head(s2.url + "/v2/local/app/blobs/" + layer, timeout=5).status_code == 200
    checks = 0
    while puller.is_alive():
        assert not s2_holds(), "s2 prefetched while a client pull was fetching"
        checks += 1
        time.sleep(0.3)
    assert checks >= 10, "the slow pull was too quick to show anything (%d checks)" % checks
    assert pulled["r"].status_code == 200 and ml.sha256_bytes(pulled["r"].content) == slow_layer
    ml.wait_for(s2_holds, 15, what="s2 to replicate the pinned image once the pull was done")
