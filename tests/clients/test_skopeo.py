"""skopeo (containers/image) against the registry."""

import hashlib
import json

from conftest import oci_layout_blobs, oci_layout_manifest, run, sha256_file, with_blob_cache

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_V2S2 = "application/vnd.docker.distribution.manifest.v2+json"
MT_V2S2_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_V2S2_CONFIG = "application/vnd.docker.container.image.v1+json"


def skopeo(*args, cache=None, timeout=60):
    return run(with_blob_cache(cache, ["skopeo"] + list(args)), timeout=timeout)


def inspect(ref, raw=False, cache=None):
    args = ["inspect", "--tls-verify=false", "--retry-times", "0"]
    if raw:
        args.append("--raw")
    p = skopeo(*(args + ["docker://" + ref]), cache=cache)
    return p.stdout if raw else json.loads(p.out)


def sha256_bytes(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def test_skopeo_copy_inspect_roundtrip(registry, small_image, blob_cache, tmp_path):
    cache = blob_cache("a")
    ref = registry.ref("clients/skopeo", "latest")
    skopeo("copy", "--retry-times", "0", "--dest-tls-verify=false",
           "oci:%s:latest" % small_image["dir"], "docker://" + ref, cache=cache)

    # the registry must return the manifest byte-for-byte as pushed
    raw = inspect(ref, raw=True, cache=cache)
    assert raw == small_image["manifest_raw"]
    assert sha256_bytes(raw) == small_image["manifest"]

    info = inspect(ref, cache=cache)
    assert info["Digest"] == small_image["manifest"]
    assert info["Layers"] == small_image["layer_digests"]
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    assert "latest" in info["RepoTags"]  # skopeo inspect also calls GET /v2/<name>/tags/list

    # by digest
    by_digest = registry.ref("clients/skopeo", small_image["manifest"])
    assert inspect(by_digest, raw=True, cache=cache) == small_image["manifest_raw"]
    info2 = inspect(by_digest, cache=cache)
    assert info2["Digest"] == small_image["manifest"]
    assert info2["Layers"] == small_image["layer_digests"]

    # config blob through skopeo's --config path
    cfg = skopeo("inspect", "--tls-verify=false", "--raw", "--config",
                 "docker://" + ref, cache=cache).stdout
    assert sha256_bytes(cfg) == small_image["config"]["digest"]
    assert json.loads(cfg)["rootfs"]["diff_ids"] == small_image["diff_ids"]

    tags = json.loads(skopeo("list-tags", "--tls-verify=false",
                             "docker://%s/clients/skopeo" % registry.host, cache=cache).out)
    assert tags["Tags"] == ["latest"]

    # copy back out (fresh blob cache: no shortcuts) and compare every blob
    out = tmp_path / "out"
    skopeo("copy", "--retry-times", "0", "--src-tls-verify=false",
           "docker://" + ref, "oci:%s:latest" % out, cache=blob_cache("b"))
    digest, manifest, raw_out = oci_layout_manifest(out, "latest")
    assert digest == small_image["manifest"]
    assert raw_out == small_image["manifest_raw"]
    assert oci_layout_blobs(out) == small_image["blobs"]


def test_skopeo_copy_by_digest_out(registry, pushed_image, blob_cache, tmp_path):
    out = tmp_path / "out"
    skopeo("copy", "--retry-times", "0", "--src-tls-verify=false",
           "docker://" + registry.ref(pushed_image["repo"], pushed_image["manifest"]),
           "oci:%s:pinned" % out, cache=blob_cache())
    digest, _, _ = oci_layout_manifest(out, "pinned")
    assert digest == pushed_image["manifest"]
    assert oci_layout_blobs(out) == pushed_image["blobs"]


def test_skopeo_copy_v2s2(registry, small_image, blob_cache, tmp_path):
    cache = blob_cache("a")
    ref = registry.ref("clients/skopeo-v2s2", "v2s2")
    skopeo("copy", "--retry-times", "0", "--dest-tls-verify=false", "--format", "v2s2",
           "oci:%s:latest" % small_image["dir"], "docker://" + ref, cache=cache)

    raw = inspect(ref, raw=True, cache=cache)
    m = json.loads(raw)
    assert m["mediaType"] == MT_V2S2
    assert m["schemaVersion"] == 2
    assert m["config"]["mediaType"] == MT_V2S2_CONFIG
    assert m["config"]["digest"] == small_image["config"]["digest"]
    assert [l["mediaType"] for l in m["layers"]] == [MT_V2S2_LAYER] * len(small_image["layers"])
    assert [l["digest"] for l in m["layers"]] == small_image["layer_digests"]
    v2s2_digest = sha256_bytes(raw)

    info = inspect(ref, cache=cache)
    assert info["Digest"] == v2s2_digest
    by_digest = registry.ref("clients/skopeo-v2s2", v2s2_digest)
    assert inspect(by_digest, raw=True, cache=cache) == raw

    # and back out, keeping the Docker manifest (dir: transport stores it verbatim)
    out = tmp_path / "dir"
    skopeo("copy", "--retry-times", "0", "--src-tls-verify=false",
           "docker://" + ref, "dir:%s" % out, cache=blob_cache("b"))
    assert (out / "manifest.json").read_bytes() == raw
    for l in small_image["layers"] + [small_image["config"]]:
        f = out / l["digest"].split(":", 1)[1]
        assert sha256_file(f) == l["digest"]


def test_skopeo_registry_to_registry_mount(registry, pushed_image):
    """docker:// -> docker:// on the same registry: skopeo tries cross-repo mount
    (POST /v2/<dst>/blobs/uploads/?from=<src>&mount=<digest>) and the result must
    be the identical manifest."""
    dst = registry.ref("clients/skopeo-mounted", "copied")
    skopeo("copy", "--retry-times", "0", "--src-tls-verify=false", "--dest-tls-verify=false",
           "docker://" + pushed_image["ref"], "docker://" + dst,
           cache=pushed_image["blob_cache"])  # knows the blobs are in test/img
    assert inspect(dst, raw=True) == pushed_image["manifest_raw"]
    info = inspect(registry.ref("clients/skopeo-mounted", pushed_image["manifest"]))
    assert info["Layers"] == pushed_image["layer_digests"]
