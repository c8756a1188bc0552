"""containerd pulling through the node, configured by examples/containerd/hosts.toml
(templated: upstream and node addresses). containerd adds ?ns=<registry host>."""

import re
import shutil

import pytest

import mirrorlib as ml


def hosts_dir_from_example(env, upstream, node):
    """examples/containerd/hosts.toml with Docker Hub replaced by `upstream` and
    the node's example address by `node`, at <dir>/<upstream host>/hosts.toml."""
    text = (ml.EXAMPLES / "containerd" / "hosts.toml").read_text()
    server = '"https://registry-1.docker.io"'
    mirror = '"http://127.0.0.1:5000"'
    assert text.count(server) == 1 and text.count(mirror) == 1, \
        "examples/containerd/hosts.toml no longer has the lines this test templates"
    text = text.replace(server, '"%s"' % upstream.url).replace(mirror, '"%s"' % node.url)
    d = env.dir / "certs.d"
    (d / upstream.host).mkdir(parents=True)
    (d / upstream.host / "hosts.toml").write_text(text)
    return d


def image_digest(ctd, ref, namespace):
    out = ctd.ctr("images", "ls", namespace=namespace).out
    for line in out.splitlines():
        cols = line.split()
        if cols and cols[0] == ref:
            return next(c for c in cols if c.startswith("sha256:"))
    raise AssertionError("%s not in ctr images ls:\n%s" % (ref, out))


def content_digests(ctd, namespace):
    return set(ctd.ctr("content", "ls", "-q", namespace=namespace).out.split())


def served(node, route):
    return sum(v for (r, status), v in node.metrics().items() if r == route and status == 200)


def test_containerd_pulls_through_the_node(env, images):
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.fail("containerd/ctr not installed (apt-get install containerd)")
    img = images["a"]
    up = env.upstream()
    up.push(img, "team/app")
    # the namespace is exactly what containerd sends: the upstream's host:port
    node = env.node({up.host: up.url})
    hosts = hosts_dir_from_example(env, up, node)
    ctd = env.containerd()
    ref = "%s/team/app:v1" % up.host

    manifests0, blobs0 = served(node, "manifest"), served(node, "blob")
    ctd.ctr("images", "pull", "--hosts-dir", hosts, ref, timeout=120)
    assert image_digest(ctd, ref, "test") == img["manifest"]
    assert set(img["blobs"]) <= content_digests(ctd, "test")

    # it went through the node: ?ns= chose the mirror, stored as <ns with '-'>/<repo>
    mirror_repo = "%s/team/app" % up.host.replace(":", "-")
    assert mirror_repo in node.catalog(), node.catalog()
    assert served(node, "manifest") > manifests0
    assert served(node, "blob") - blobs0 >= len(img["blobs"]) - 1
    # and only the node talked to the upstream about content
    direct = [l for l in up.log.read_text().splitlines()
              if re.search(r'"GET /v2/team/app/(blobs|manifests)/', l) and "edgepier/" not in l]
    assert not direct, "containerd went to the upstream itself:\n" + "\n".join(direct)
    r = node.manifest("team/app", "v1", ns=up.host)
    assert r.status_code == 200 and r.headers.get("OCI-Namespace") == up.host

    # with the upstream gone, only the node can serve a fresh pull (containerd
    # would fall back to the dead `server`)
    up.kill()
    manifests1 = served(node, "manifest")
    ctd.ctr("images", "pull", "--hosts-dir", hosts, ref, namespace="offline", timeout=120)
    assert image_digest(ctd, ref, "offline") == img["manifest"]
    assert served(node, "manifest") > manifests1
