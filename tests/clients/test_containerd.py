"""containerd's own resolver/fetcher/pusher (via `ctr`) against the registry."""

import hashlib
import tarfile

from conftest import make_image, oci_layout_blobs, run


def remote_raw(ref):
    return run(["skopeo", "inspect", "--tls-verify=false", "--raw", "docker://" + ref]).stdout


def image_digest(ctd, ref, namespace="test"):
    """Target digest of an image record in containerd."""
    rows = ctd.ctr("images", "ls", namespace=namespace).out.splitlines()[1:]
    for row in rows:
        cols = row.split()
        if cols and cols[0] == ref:
            return cols[2]
    raise AssertionError("image %s not in containerd: %s" % (ref, rows))


def content_digests(ctd, namespace="test"):
    return set(ctd.ctr("content", "ls", "-q", namespace=namespace).out.split())


def content_get(ctd, digest, namespace="test"):
    return ctd.ctr("content", "get", digest, namespace=namespace).stdout


def assert_image_content(ctd, img, namespace="test"):
    have = content_digests(ctd, namespace)
    want = set(img["layer_digests"]) | {img["config"]["digest"], img["manifest"]}
    assert want <= have, "missing content: %s" % (want - have)
    for d in want:
        assert "sha256:" + hashlib.sha256(content_get(ctd, d, namespace)).hexdigest() == d
    assert content_get(ctd, img["manifest"], namespace) == img["manifest_raw"]


def test_ctr_pull_push(registry, pushed_image, containerd):
    ctd = containerd
    ref = pushed_image["ref"]
    ctd.ctr("images", "pull", "--plain-http", ref)       # resolve (HEAD), fetch, unpack
    assert image_digest(ctd, ref) == pushed_image["manifest"]
    assert_image_content(ctd, pushed_image)
    ctd.ctr("images", "check")

    # push the pulled image under another name: containerd HEADs each blob in the
    # new repo, then mounts (POST ?mount=<d>&from=test/img) or uploads, HEADs the
    # manifest, and PUTs it
    new = registry.ref("clients/ctr-pushed", "v1")
    ctd.ctr("images", "tag", ref, new)
    ctd.ctr("images", "push", "--plain-http", new)
    assert remote_raw(new) == pushed_image["manifest_raw"]


def test_ctr_push_new_blobs_then_pull(registry, containerd, tmp_path):
    """Import an image that the registry has never seen, push it (POST + monolithic
    PUT ?digest= per blob), then pull it into a fresh namespace."""
    img = make_image(tmp_path / "img", "edgepier-clients-ctr-import", 2, 1, small_layers=1)
    tar = tmp_path / "img.tar"
    with tarfile.open(tar, "w") as tf:
        for name in ("oci-layout", "index.json", "blobs"):
            tf.add(img["dir"] / name, arcname=name)
    ctd = containerd
    base = "%s/clients/ctr-imported" % registry.host
    ctd.ctr("images", "import", "--base-name", base, str(tar), namespace="importer")
    ref = base + ":latest"
    assert image_digest(ctd, ref, "importer") == img["manifest"]
    ctd.ctr("images", "push", "--plain-http", ref, namespace="importer")
    assert remote_raw(ref) == img["manifest_raw"]

    ctd.ctr("images", "pull", "--plain-http", ref, namespace="puller")
    assert image_digest(ctd, ref, "puller") == img["manifest"]
    assert_image_content(ctd, img, "puller")

    # remote blobs are byte-identical
    out = tmp_path / "out"
    run(["skopeo", "copy", "--src-tls-verify=false", "docker://" + ref, "oci:%s:latest" % out])
    assert oci_layout_blobs(out) == img["blobs"]


def write_hosts(dirpath, host, server, caps):
    d = dirpath / host
    d.mkdir(parents=True, exist_ok=True)
    (d / "hosts.toml").write_text(
        'server = "%s"\n\n[host."%s"]\n  capabilities = [%s]\n'
        % (server, server, ", ".join('"%s"' % c for c in caps)))


def test_ctr_hosts_dir(registry, pushed_image, containerd, tmp_path):
    """Registry configured through a hosts.toml directory (the form edge nodes use)."""
    ctd = containerd
    hosts = tmp_path / "certs.d"
    server = "http://" + registry.host
    write_hosts(hosts, registry.host, server, ["pull", "resolve", "push"])

    # 1. the registry host itself, configured via hosts.toml (no --plain-http)
    ref = pushed_image["ref"]
    ctd.ctr("images", "pull", "--hosts-dir", str(hosts), ref, namespace="direct")
    assert image_digest(ctd, ref, "direct") == pushed_image["manifest"]
    assert_image_content(ctd, pushed_image, "direct")
    new = registry.ref("clients/ctr-hostsdir", "v1")
    ctd.ctr("images", "tag", ref, new, namespace="direct")
    ctd.ctr("images", "push", "--hosts-dir", str(hosts), new, namespace="direct")
    assert remote_raw(new) == pushed_image["manifest_raw"]


def test_ctr_hosts_dir_mirror(registry, pushed_image, containerd, tmp_path):
    """The registry as a pull-through *mirror* for another host name: containerd
    sends the requests to the mirror with ?ns=<upstream host> appended to every
    /v2/ URL, which the registry must accept (and may use)."""
    ctd = containerd
    hosts = tmp_path / "certs.d"
    upstream = "upstream.invalid"      # never resolved: server points at the registry too
    write_hosts(hosts, upstream, "http://" + registry.host, ["pull", "resolve"])
    ref = "%s/%s:%s" % (upstream, pushed_image["repo"], pushed_image["tag"])
    ctd.ctr("images", "pull", "--hosts-dir", str(hosts), ref, namespace="mirror")
    assert image_digest(ctd, ref, "mirror") == pushed_image["manifest"]
    assert_image_content(ctd, pushed_image, "mirror")
