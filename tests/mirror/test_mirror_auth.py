"""Authenticated upstreams (docker-registry with htpasswd, and with token auth
backed by a test token issuer) and redirects."""

import requests

import mirrorlib as ml
from mirrorlib import PASSWORD, USER


def assert_unauthorized(r, what):
    code, message = ml.oci_error(r)
    assert r.status_code == 401 and code == "UNAUTHORIZED", (what, r.status_code, r.text)
    assert message, "%s: 401 without a message" % what
    assert r.headers.get("WWW-Authenticate", "").startswith("Basic realm="), "%s: 401 without a challenge" % what
    return message


def pull_and_check(env, node, img, repo):
    out = env.dir / ("pull-%s-%s" % (node.name, repo.replace("/", "_")))
    node.pull(repo, img["tag"], out)
    assert ml.oci_layout_manifest_digest(out) == img["manifest"]
    assert ml.oci_layout_blobs(out) == img["blobs"]


def test_basic_auth_upstream(env, images):
    img = images["a"]
    up = env.upstream(auth="htpasswd")
    up.push(img, "app")
    r = requests.get(up.url + "/v2/app/manifests/v1", timeout=5)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic"), "setup"

    node = env.node({"ns1": up.url}, default="ns1", credentials={up.host: (USER, PASSWORD)})
    r = node.manifest("app", "v1", ns="ns1")
    assert r.status_code == 200, r.text
    assert r.headers["Docker-Content-Digest"] == img["manifest"]
    pull_and_check(env, node, img, "app")

    # no credentials for that host: a clear 401, for manifests and for blobs
    anon = env.node({"ns1": up.url}, default="ns1")
    message = assert_unauthorized(anon.manifest("app", "v1", ns="ns1"), "manifest, no credentials")
    assert "credential" in message.lower() or "unauthorized" in message.lower() or "refused" in message.lower(), message
    assert_unauthorized(anon.manifest("app", img["manifest"], ns="ns1"), "manifest by digest, no credentials")
    assert_unauthorized(anon.blob("app", img["layer_digests"][0], ns="ns1"), "blob, no credentials")
    p = anon.pull("app", "v1", env.dir / "anon", check=False)
    assert p.returncode != 0
    assert anon.alive()

    # wrong password: 401 as well, and nothing was mirrored
    bad = env.node({"ns1": up.url}, default="ns1", credentials={up.host: (USER, "wrong")})
    assert_unauthorized(bad.manifest("app", "v1", ns="ns1"), "manifest, wrong password")
    assert_unauthorized(bad.blob("app", img["layer_digests"][0], ns="ns1"), "blob, wrong password")
    assert "ns1/app" not in bad.catalog()


def test_token_auth_upstream(env, images):
    a, b = images["a"], images["b"]
    issuer = env.issuer()
    up = env.upstream(auth=("token", issuer))
    up.push(a, "team/app")
    r = requests.get(up.url + "/v2/team/app/manifests/v1", timeout=5)
    challenge = r.headers.get("WWW-Authenticate", "")
    assert r.status_code == 401 and challenge.startswith("Bearer") and issuer.url in challenge, "setup"

    node = env.node({"ns1": up.url}, default="ns1", credentials={up.host: (USER, PASSWORD)})
    # one pull, request by request: one token, fetched with the credentials, then reused
    r = node.manifest("team/app", "v1", ns="ns1")
    assert r.status_code == 200, r.text
    assert r.headers["Docker-Content-Digest"] == a["manifest"]
    for digest in a["blobs"]:
        if digest != a["manifest"]:
            blob = node.blob("team/app", digest, ns="ns1")
            assert blob.status_code == 200 and ml.sha256_bytes(blob.content) == digest
    tokens = issuer.from_node()
    assert len(tokens) == 1, tokens
    assert tokens[0]["user"] == USER and tokens[0]["status"] == 200
    assert "repository:team/app:pull" in tokens[0]["scopes"], tokens
    pull_and_check(env, node, a, "team/app")
    assert len(issuer.from_node()) == 1, "token not reused: %s" % issuer.from_node()

    # without credentials the token service refuses: 401 UNAUTHORIZED
    anon = env.node({"ns1": up.url}, default="ns1")
    assert_unauthorized(anon.manifest("team/app", "v1", ns="ns1"), "manifest, no credentials")
    assert_unauthorized(anon.blob("team/app", a["layer_digests"][0], ns="ns1"), "blob, no credentials")
    assert anon.alive()

    # the signing key rotates: the node's cached token is rejected (401), the node
    # fetches a new token once and retries
    issuer.rotate_key()
    up.write_config()
    up.restart()
    up.push(b, "team/app", "v2")
    before = len(issuer.from_node())
    r = node.manifest("team/app", "v2", ns="ns1")
    assert r.status_code == 200, r.text
    assert r.headers["Docker-Content-Digest"] == b["manifest"]
    assert len(issuer.from_node()) == before + 1, issuer.from_node()[before:]
    blob = node.blob("team/app", b["layer_digests"][0], ns="ns1")
    assert blob.status_code == 200 and ml.sha256_bytes(blob.content) == b["layer_digests"][0]


def test_token_granting_nothing_is_401_not_a_loop(env, images):
    """An anonymous token that grants no access (as Docker Hub gives for a private
    repository): the node retries once, then answers 401 UNAUTHORIZED."""
    issuer = env.issuer(anonymous="empty")
    up = env.upstream(auth=("token", issuer))
    up.push(images["a"], "app")
    node = env.node({"ns1": up.url}, default="ns1")
    r = node.manifest("app", "v1", ns="ns1")
    assert_unauthorized(r, "manifest with a token granting nothing")
    assert r.seconds < 5
    assert 1 <= len(issuer.from_node()) <= 2, issuer.from_node()
    assert node.alive()


def test_redirects(env, images):
    """Blob redirects are followed; Authorization goes along to the same origin
    only; a redirect loop ends in an error."""
    img = images["a"]
    up = env.upstream(auth="htpasswd")
    up.push(img, "app")
    layer0, layer1 = img["layer_digests"]
    layer0_bytes = (img["dir"] / "blobs" / "sha256" / layer0.split(":")[1]).read_bytes()
    far = env.blob_server()
    far.blobs[layer0] = layer0_bytes
    proxy = env.proxy(up)
    node = env.node({"ns1": proxy.url}, default="ns1", credentials={proxy.host: (USER, PASSWORD)})

    # 1. to another origin (another port): followed, without our credentials
    proxy.set((lambda m, p: m == "GET" and layer0 in p, ("redirect", lambda p: far.url + "/blob/" + layer0)))
    r = node.blob("app", layer0, ns="ns1")
    assert r.status_code == 200, r.text
    assert ml.sha256_bytes(r.content) == layer0
    assert len(far.log) == 1, far.log
    sent = {k.lower(): v for k, v in far.log[0][1].items()}
    assert "authorization" not in sent, "credentials leaked to another origin: %s" % sent

    # 2. to the same origin (two hops): followed, with the credentials the upstream needs
    proxy.set((lambda m, p: m == "GET" and layer1 in p and "hop=2" not in p,
               ("redirect", lambda p: proxy.url + p.split("?")[0] + ("?hop=2" if "hop=1" in p else "?hop=1"))))
    r = node.blob("app", layer1, ns="ns1")
    assert r.status_code == 200, r.text
    assert ml.sha256_bytes(r.content) == layer1
    hops = proxy.requests("GET", layer1)
    assert [h["path"].split("?")[-1] for h in hops[-3:]] == [hops[-3]["path"].split("?")[-1], "hop=1", "hop=2"]
    assert all(h["auth"] for h in hops[-3:]) and hops[-1]["status"] == 200, hops
    assert len(hops) <= 6, hops  # at most: 3 hops unauthenticated, the 401, 3 hops again

    # 3. a redirect loop: an error after at most 5 redirects, no hang
    cfg = img["config"]["digest"]
    proxy.set((lambda m, p: m == "GET" and cfg in p, ("redirect", lambda p: proxy.url + p)))
    r = node.blob("app", cfg, ns="ns1", timeout=20)
    assert r.status_code >= 400 and r.status_code != 404, (r.status_code, r.text)
    assert 5 <= len(proxy.requests("GET", cfg)) <= 6, len(proxy.requests("GET", cfg))
    assert node.alive()
