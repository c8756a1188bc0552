"""Manifests: the four media types, GET/HEAD by tag and digest, errors, delete, tag moves."""

import json

import pytest

from conftest import (ACCEPT_ALL, DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LIST, DOCKER_MANIFEST, OCI_CONFIG,
                      OCI_INDEX, OCI_LAYER, OCI_MANIFEST, PLATFORM, assert_oci_error, descriptor,
                      det_bytes, docker_list, docker_manifest, dr_deviation, edgepier_only, header,
                      oci_index, oci_manifest, sha256)


def blobs(registry, repo, seed):
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed,
                      "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer = det_bytes(2000, seed)
    registry.push_blob(repo, cfg)
    registry.push_blob(repo, layer)
    return cfg, layer


def build(kind, registry, repo, seed="m"):
    """Push what a manifest of `kind` needs; return (body, media type)."""
    cfg, layer = blobs(registry, repo, seed)
    if kind == "oci-manifest":
        return oci_manifest(descriptor(OCI_CONFIG, cfg), [descriptor(OCI_LAYER, layer)]), \
            OCI_MANIFEST
    if kind == "docker-manifest":
        return docker_manifest(descriptor(DOCKER_CONFIG, cfg),
                               [descriptor(DOCKER_LAYER, layer)]), DOCKER_MANIFEST
    if kind == "oci-index":
        child = oci_manifest(descriptor(OCI_CONFIG, cfg), [descriptor(OCI_LAYER, layer)])
        registry.push_manifest(repo, sha256(child), child, OCI_MANIFEST)
        return oci_index([descriptor(OCI_MANIFEST, child, platform=PLATFORM)]), OCI_INDEX
    if kind == "docker-list":
        child = docker_manifest(descriptor(DOCKER_CONFIG, cfg), [descriptor(DOCKER_LAYER, layer)])
        registry.push_manifest(repo, sha256(child), child, DOCKER_MANIFEST)
        return docker_list([descriptor(DOCKER_MANIFEST, child, platform=PLATFORM)]), DOCKER_LIST
    raise ValueError(kind)


KINDS = ["oci-manifest", "oci-index", "docker-manifest", "docker-list"]


def assert_manifest_response(r, body, media_type, head=False):
    assert r.status_code == 200, f"{r.status_code} {r.content[:300]!r}"
    assert header(r, "Content-Type").split(";")[0].strip() == media_type
    assert header(r, "Content-Length") == str(len(body))
    assert header(r, "Docker-Content-Digest") == sha256(body)
    assert r.content == (b"" if head else body)


@pytest.mark.parametrize("kind", KINDS)
def test_put_by_tag_is_201_with_location_and_digest(registry, repo, kind):
    body, mt = build(kind, registry, repo)
    r = registry.put(f"/v2/{repo}/manifests/v1", data=body, headers={"Content-Type": mt})
    assert r.status_code == 201, f"{r.status_code} {r.content[:300]!r}"
    assert header(r, "Docker-Content-Digest") == sha256(body)
    loc = registry.resolve(header(r, "Location"), r.url)
    assert_manifest_response(registry.get(loc, headers={"Accept": ACCEPT_ALL}), body, mt)


@pytest.mark.parametrize("kind", KINDS)
def test_get_and_head_by_tag_and_digest_return_exact_bytes_and_type(registry, repo, kind):
    body, mt = build(kind, registry, repo)
    registry.push_manifest(repo, "v1", body, mt)
    for ref in ("v1", sha256(body)):
        assert_manifest_response(registry.get_manifest(repo, ref), body, mt)
        assert_manifest_response(registry.head_manifest(repo, ref), body, mt, head=True)


@pytest.mark.parametrize("kind", KINDS)
def test_put_by_digest_is_201_and_pullable(registry, repo, kind):
    body, mt = build(kind, registry, repo)
    r = registry.put(f"/v2/{repo}/manifests/{sha256(body)}", data=body,
                     headers={"Content-Type": mt})
    assert r.status_code == 201, f"{r.status_code} {r.content[:300]!r}"
    assert header(r, "Docker-Content-Digest") == sha256(body)
    assert_manifest_response(registry.get_manifest(repo, sha256(body)), body, mt)


@dr_deviation("without an Accept header it falls back to schema1 and answers 404/400")
def test_get_without_accept_header_returns_the_stored_manifest(registry, repo):
    body, mt = build("oci-manifest", registry, repo)
    registry.push_manifest(repo, "v1", body, mt)
    assert_manifest_response(registry.get(f"/v2/{repo}/manifests/v1"), body, mt)


def test_put_referencing_missing_layer_is_400_manifest_blob_unknown(registry, repo):
    cfg, _ = blobs(registry, repo, "missing-layer")
    body = oci_manifest(descriptor(OCI_CONFIG, cfg), [descriptor(OCI_LAYER, b"not pushed")])
    r = registry.put(f"/v2/{repo}/manifests/v1", data=body,
                     headers={"Content-Type": OCI_MANIFEST})
    assert_oci_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    assert_oci_error(registry.get_manifest(repo, "v1"), 404, "MANIFEST_UNKNOWN")


def test_put_referencing_missing_config_is_400_manifest_blob_unknown(registry, repo):
    _, layer = blobs(registry, repo, "missing-config")
    body = oci_manifest(descriptor(OCI_CONFIG, b'{"absent":1}'), [descriptor(OCI_LAYER, layer)])
    r = registry.put(f"/v2/{repo}/manifests/v1", data=body,
                     headers={"Content-Type": OCI_MANIFEST})
    assert_oci_error(r, 400, "MANIFEST_BLOB_UNKNOWN")


@pytest.mark.parametrize("body", [b"{not json", b"", b"[]", b'{"schemaVersion": 2'])
def test_put_invalid_json_is_400_manifest_invalid(registry, repo, body):
    registry.push_blob(repo, b"repo exists")
    r = registry.put(f"/v2/{repo}/manifests/v1", data=body,
                     headers={"Content-Type": OCI_MANIFEST})
    assert_oci_error(r, 400, "MANIFEST_INVALID")


def test_put_by_digest_not_matching_body_is_400_digest_invalid(registry, repo):
    body, mt = build("oci-manifest", registry, repo)
    wrong = sha256(body + b"\n")
    r = registry.put(f"/v2/{repo}/manifests/{wrong}", data=body, headers={"Content-Type": mt})
    assert_oci_error(r, 400, "DIGEST_INVALID")
    assert registry.head_manifest(repo, wrong).status_code == 404


@pytest.mark.parametrize("kind", ["oci-index", "docker-list"])
def test_index_referencing_missing_manifest_is_400(registry, repo, kind):
    registry.push_blob(repo, b"repo exists")
    missing = oci_manifest(descriptor(OCI_CONFIG, b"{}"), [])
    if kind == "oci-index":
        body, mt = oci_index([descriptor(OCI_MANIFEST, missing, platform=PLATFORM)]), OCI_INDEX
    else:
        body, mt = docker_list([descriptor(DOCKER_MANIFEST, missing, platform=PLATFORM)]), \
            DOCKER_LIST
    r = registry.put(f"/v2/{repo}/manifests/v1", data=body, headers={"Content-Type": mt})
    assert_oci_error(r, 400, ("MANIFEST_BLOB_UNKNOWN", "MANIFEST_UNKNOWN"))


def _padded_manifest(registry, repo, total):
    """An OCI manifest (valid, blobs present) padded by an annotation to `total` bytes."""
    cfg, layer = blobs(registry, repo, "big")
    base = oci_manifest(descriptor(OCI_CONFIG, cfg), [descriptor(OCI_LAYER, layer)],
                        annotations={"pad": ""})
    body = oci_manifest(descriptor(OCI_CONFIG, cfg), [descriptor(OCI_LAYER, layer)],
                        annotations={"pad": "x" * (total - len(base))})
    assert len(body) == total
    return body


@dr_deviation("a manifest over its 4 MiB limit is 400 MANIFEST_INVALID, not 413")
def test_manifest_over_4_mib_is_refused_with_413(registry, repo):
    body = _padded_manifest(registry, repo, 4 * 1024 * 1024 + 1)
    r = registry.put(f"/v2/{repo}/manifests/big", data=body,
                     headers={"Content-Type": OCI_MANIFEST})
    assert_oci_error(r, 413)
    assert registry.head_manifest(repo, "big").status_code == 404


def test_manifest_over_4_mib_is_refused_with_4xx(registry, repo):
    body = _padded_manifest(registry, repo, 4 * 1024 * 1024 + 1)
    r = registry.put(f"/v2/{repo}/manifests/big", data=body,
                     headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code in (400, 413), r.status_code
    assert registry.head_manifest(repo, "big").status_code == 404


def test_manifest_of_4_mb_is_accepted(registry, repo):
    # The spec: clients and registries SHOULD support manifests of at least 4 megabytes.
    body = _padded_manifest(registry, repo, 4_000_000)
    registry.push_manifest(repo, "big", body)
    assert registry.get_manifest(repo, "big").content == body


def test_unknown_manifest_is_404_manifest_unknown(registry, repo):
    registry.push_image(repo, "v1")
    assert_oci_error(registry.get_manifest(repo, "nope"), 404, "MANIFEST_UNKNOWN")
    assert_oci_error(registry.get_manifest(repo, sha256(b"nope")), 404, "MANIFEST_UNKNOWN")
    assert_oci_error(registry.head_manifest(repo, "nope"), 404, head=True)


@dr_deviation("docker-registry 2.8's router answers such a path with a plain-text 404, not OCI JSON")
def test_reading_an_invalid_tag_is_404_but_writing_it_is_400(registry, repo):
    """The OCI conformance suite (v1.1.1) reads `.INVALID_MANIFEST_NAME`: a reference
    that cannot exist is unknown (404); only a write names a bad tag (400 TAG_INVALID)."""
    body, _ = registry.push_image(repo, "v1")
    assert_oci_error(registry.get_manifest(repo, ".INVALID_MANIFEST_NAME"), 404, "MANIFEST_UNKNOWN")
    assert_oci_error(registry.head_manifest(repo, ".INVALID_MANIFEST_NAME"), 404, head=True)
    r = registry.put(f"/v2/{repo}/manifests/.INVALID_MANIFEST_NAME", data=body,
                     headers={"Content-Type": OCI_MANIFEST})
    assert_oci_error(r, 400, "TAG_INVALID")


def test_manifest_of_unknown_repository_is_404(registry):
    assert_oci_error(registry.get_manifest("no/such/repo", "latest"), 404,
                     ("MANIFEST_UNKNOWN", "NAME_UNKNOWN"))


def test_delete_by_digest_is_202_then_get_is_404_manifest_unknown(registry, repo):
    body, d = registry.push_image(repo, "v1")
    r = registry.delete(f"/v2/{repo}/manifests/{d}")
    assert r.status_code == 202, f"{r.status_code} {r.content[:300]!r}"
    assert_oci_error(registry.get_manifest(repo, d), 404, "MANIFEST_UNKNOWN")
    assert_oci_error(registry.get_manifest(repo, "v1"), 404, "MANIFEST_UNKNOWN")


def test_delete_unknown_manifest_is_404(registry, repo):
    registry.push_image(repo, "v1")
    r = registry.delete(f"/v2/{repo}/manifests/{sha256(b'never pushed')}")
    assert_oci_error(r, 404, "MANIFEST_UNKNOWN")


@edgepier_only("tag deletion (DELETE /v2/<name>/manifests/<tag>, spec v1.1)")
def test_delete_tag_is_202_and_manifest_stays_reachable_by_digest(registry, repo):
    body, d = registry.push_image(repo, "v1")
    registry.push_manifest(repo, "v2", body)
    r = registry.delete(f"/v2/{repo}/manifests/v1")
    assert r.status_code == 202, f"{r.status_code} {r.content[:300]!r}"
    assert_oci_error(registry.get_manifest(repo, "v1"), 404, "MANIFEST_UNKNOWN")
    assert registry.get_manifest(repo, d).content == body
    assert registry.get_manifest(repo, "v2").content == body
    tags = registry.get(f"/v2/{repo}/tags/list").json()["tags"]
    assert tags == ["v2"]


def test_delete_tag_is_202_or_refused_with_400_or_405(registry, repo):
    # What the spec allows to a registry without tag deletion.
    registry.push_image(repo, "v1")
    r = registry.delete(f"/v2/{repo}/manifests/v1")
    assert r.status_code in (202, 400, 405), f"{r.status_code} {r.content[:300]!r}"


def test_re_put_of_a_tag_moves_it(registry, repo):
    b1, d1 = registry.push_image(repo, "latest", seed="one")
    b2, d2 = registry.push_image(repo, "latest", seed="two")
    assert d1 != d2
    r = registry.get_manifest(repo, "latest")
    assert r.content == b2 and header(r, "Docker-Content-Digest") == d2
    assert registry.get_manifest(repo, d1).content == b1  # old one still there by digest
    assert registry.get(f"/v2/{repo}/tags/list").json()["tags"] == ["latest"]


def test_re_put_of_identical_manifest_is_idempotent(registry, repo):
    body, d = registry.push_image(repo, "v1")
    r = registry.push_manifest(repo, "v1", body)
    assert header(r, "Docker-Content-Digest") == d
    assert registry.get_manifest(repo, "v1").content == body


def test_one_manifest_under_many_tags(registry, repo):
    body, d = registry.push_image(repo, "a")
    for t in ("b", "c"):
        registry.push_manifest(repo, t, body)
    for t in ("a", "b", "c", d):
        assert registry.get_manifest(repo, t).content == body
