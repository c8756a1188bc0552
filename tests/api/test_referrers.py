"""The v1.1 `subject` field, OCI-Subject, and the referrers API.

docker-registry 2.8 predates v1.1: it has neither OCI-Subject nor /v2/<name>/referrers/, so
everything here is skipped on that target (edgepier_only)."""

import json

import pytest

from conftest import (EMPTY_JSON, OCI_EMPTY, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, PLATFORM,
                      assert_oci_error, descriptor, edgepier_only, header, next_link, oci_index,
                      oci_manifest, sha256)

pytestmark = edgepier_only("the v1.1 referrers API and OCI-Subject")

SBOM = "application/vnd.example.sbom.v1"
SIG = "application/vnd.example.signature.v1"
CFG_TYPE = "application/vnd.example.config-as-type.v1+json"


def referrers(registry, repo, digest, artifact_type=None):
    """(first response, every descriptor over all pages)."""
    url = f"/v2/{repo}/referrers/{digest}"
    params = {"artifactType": artifact_type} if artifact_type else None
    first, found = None, []
    for _ in range(100):
        r = registry.get(url, params=params)
        assert r.status_code == 200, f"{r.status_code} {r.content[:300]!r}"
        assert header(r, "Content-Type").split(";")[0].strip() == OCI_INDEX
        body = r.json()
        assert body["schemaVersion"] == 2
        assert body["mediaType"] == OCI_INDEX
        assert isinstance(body["manifests"], list)
        found += body["manifests"]
        first = first or r
        link = next_link(r)
        if not link:
            return first, found
        url, params = registry.resolve(link, r.url), None
    raise AssertionError("referrers pagination does not end")


def artifact(registry, repo, subject_body, subject_type, artifact_type, payload, annotations,
             config_media_type=None):
    """A referrer manifest: artifactType set, or (config_media_type) typed by its config."""
    registry.push_blob(repo, EMPTY_JSON)
    registry.push_blob(repo, payload)
    if config_media_type:
        cfg_bytes = json.dumps({"about": "config typed artifact"}).encode()
        registry.push_blob(repo, cfg_bytes)
        cfg = descriptor(config_media_type, cfg_bytes)
    else:
        cfg = descriptor(OCI_EMPTY, EMPTY_JSON)
    return oci_manifest(cfg, [descriptor(OCI_LAYER, payload)],
                        subject=descriptor(subject_type, subject_body),
                        artifact_type=artifact_type, annotations=annotations)


@pytest.fixture
def subject(registry, repo):
    body, d = registry.push_image(repo, "v1", seed="subject")
    return body, d


def test_put_with_subject_returns_oci_subject_header(registry, repo, subject):
    sbody, sd = subject
    body = artifact(registry, repo, sbody, OCI_MANIFEST, SBOM, b"sbom", {"k": "v"})
    r = registry.push_manifest(repo, sha256(body), body)
    assert header(r, "OCI-Subject") == sd


def test_put_without_subject_has_no_oci_subject_header(registry, repo):
    body, _ = registry.push_image(repo, None, seed="plain")
    r = registry.push_manifest(repo, "plain", body)
    assert "OCI-Subject" not in r.headers


def test_referrers_lists_descriptors_with_artifact_type_size_digest_annotations(
        registry, repo, subject):
    sbody, sd = subject
    a = artifact(registry, repo, sbody, OCI_MANIFEST, SBOM, b"sbom data",
                 {"org.example.kind": "sbom", "n": "1"})
    b = artifact(registry, repo, sbody, OCI_MANIFEST, None, b"config-typed",
                 {"org.example.kind": "cfg"}, config_media_type=CFG_TYPE)
    registry.push_manifest(repo, sha256(a), a)
    registry.push_manifest(repo, sha256(b), b)
    _, found = referrers(registry, repo, sd)
    by_digest = {d["digest"]: d for d in found}
    assert set(by_digest) == {sha256(a), sha256(b)}
    assert by_digest[sha256(a)] == {"mediaType": OCI_MANIFEST, "digest": sha256(a),
                                    "size": len(a), "artifactType": SBOM,
                                    "annotations": {"org.example.kind": "sbom", "n": "1"}}
    # no artifactType field: the config's mediaType stands in
    assert by_digest[sha256(b)]["artifactType"] == CFG_TYPE
    assert by_digest[sha256(b)]["size"] == len(b)
    assert by_digest[sha256(b)]["annotations"] == {"org.example.kind": "cfg"}


def test_referrers_artifact_type_filter_sets_oci_filters_applied(registry, repo, subject):
    sbody, sd = subject
    a = artifact(registry, repo, sbody, OCI_MANIFEST, SBOM, b"s1", {"i": "1"})
    b = artifact(registry, repo, sbody, OCI_MANIFEST, SIG, b"s2", {"i": "2"})
    c = artifact(registry, repo, sbody, OCI_MANIFEST, SBOM, b"s3", {"i": "3"})
    for m in (a, b, c):
        registry.push_manifest(repo, sha256(m), m)
    r, found = referrers(registry, repo, sd, artifact_type=SBOM)
    assert header(r, "OCI-Filters-Applied") == "artifactType"
    assert sorted(d["digest"] for d in found) == sorted([sha256(a), sha256(c)])
    assert all(d["artifactType"] == SBOM for d in found)
    r, found = referrers(registry, repo, sd, artifact_type="application/vnd.example.none")
    assert header(r, "OCI-Filters-Applied") == "artifactType"
    assert found == []
    r, found = referrers(registry, repo, sd)
    assert "OCI-Filters-Applied" not in r.headers
    assert len(found) == 3


def test_referrers_of_manifest_without_any_is_200_empty(registry, repo, subject):
    _, sd = subject
    _, found = referrers(registry, repo, sd)
    assert found == []


def test_referrers_of_unknown_digest_is_200_empty(registry, repo, subject):
    _, found = referrers(registry, repo, sha256(b"no such manifest"))
    assert found == []


def test_referrer_pushed_before_its_subject_is_accepted_and_listed(registry, repo):
    # v1.1: a manifest whose subject is not (yet) in the registry MUST be accepted.
    registry.push_blob(repo, b"exists")
    absent = oci_manifest(descriptor(OCI_EMPTY, EMPTY_JSON), [], annotations={"x": "later"})
    a = artifact(registry, repo, absent, OCI_MANIFEST, SIG, b"early", {"e": "1"})
    r = registry.push_manifest(repo, sha256(a), a)
    assert header(r, "OCI-Subject") == sha256(absent)
    _, found = referrers(registry, repo, sha256(absent))
    assert [d["digest"] for d in found] == [sha256(a)]


def test_index_with_subject_is_listed_as_referrer(registry, repo, subject):
    sbody, sd = subject
    child = artifact(registry, repo, sbody, OCI_MANIFEST, SIG, b"child", {"c": "1"})
    registry.push_manifest(repo, sha256(child), child)
    idx = oci_index([descriptor(OCI_MANIFEST, child, platform=PLATFORM)],
                    subject=descriptor(OCI_MANIFEST, sbody), artifact_type=SBOM,
                    annotations={"kind": "index"})
    r = registry.push_manifest(repo, sha256(idx), idx, OCI_INDEX)
    assert header(r, "OCI-Subject") == sd
    _, found = referrers(registry, repo, sd)
    by_digest = {d["digest"]: d for d in found}
    assert by_digest[sha256(idx)] == {"mediaType": OCI_INDEX, "digest": sha256(idx),
                                      "size": len(idx), "artifactType": SBOM,
                                      "annotations": {"kind": "index"}}
    assert sha256(child) in by_digest


def test_deleted_referrer_disappears_from_the_list(registry, repo, subject):
    sbody, sd = subject
    a = artifact(registry, repo, sbody, OCI_MANIFEST, SBOM, b"gone soon", {"d": "1"})
    b = artifact(registry, repo, sbody, OCI_MANIFEST, SBOM, b"stays", {"d": "2"})
    registry.push_manifest(repo, sha256(a), a)
    registry.push_manifest(repo, sha256(b), b)
    assert registry.delete(f"/v2/{repo}/manifests/{sha256(a)}").status_code == 202
    _, found = referrers(registry, repo, sd)
    assert [d["digest"] for d in found] == [sha256(b)]


def test_referrers_are_per_repository(registry, repo, repo2, subject):
    sbody, sd = subject
    a = artifact(registry, repo, sbody, OCI_MANIFEST, SBOM, b"here", {"r": "1"})
    registry.push_manifest(repo, sha256(a), a)
    registry.push_blob(repo2, b"repo2 exists")
    _, found = referrers(registry, repo2, sd)
    assert found == []


def test_referrers_with_malformed_digest_is_4xx_oci_error(registry, repo, subject):
    r = registry.get(f"/v2/{repo}/referrers/sha256:nothex")
    assert_oci_error(r, (400, 404), ("DIGEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID"))
