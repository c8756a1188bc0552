"""Blob pull: GET/HEAD, Range requests, unknown blobs, deletion, deduplication."""

import pytest

from conftest import assert_oci_error, det_bytes, header, sha256

DATA = det_bytes(100_000, "pull")


@pytest.fixture
def pushed(registry, repo):
    registry.push_blob(repo, DATA)
    return repo, sha256(DATA)


def test_get_blob_returns_exact_bytes_length_and_digest(registry, pushed):
    repo, d = pushed
    r = registry.get(f"/v2/{repo}/blobs/{d}")
    assert r.status_code == 200
    assert r.content == DATA
    assert header(r, "Content-Length") == str(len(DATA))
    assert header(r, "Docker-Content-Digest") == d


def test_head_blob_returns_length_and_digest_without_body(registry, pushed):
    repo, d = pushed
    r = registry.head(f"/v2/{repo}/blobs/{d}")
    assert r.status_code == 200
    assert r.content == b""
    assert header(r, "Content-Length") == str(len(DATA))
    assert header(r, "Docker-Content-Digest") == d


@pytest.mark.parametrize("first,last", [(0, 0), (0, 99), (1000, 1999), (99_990, 99_999),
                                        (50_000, 200_000)])
def test_range_a_b_is_206_with_content_range_and_exact_slice(registry, pushed, first, last):
    repo, d = pushed
    r = registry.get(f"/v2/{repo}/blobs/{d}", headers={"Range": f"bytes={first}-{last}"})
    assert r.status_code == 206, f"{r.status_code} {r.content[:200]!r}"
    end = min(last, len(DATA) - 1)  # a last-byte-pos past the end is clamped (RFC 9110)
    assert header(r, "Content-Range") == f"bytes {first}-{end}/{len(DATA)}"
    assert r.content == DATA[first:end + 1]
    assert header(r, "Content-Length") == str(end + 1 - first)


def test_open_ended_range_returns_the_rest(registry, pushed):
    repo, d = pushed
    r = registry.get(f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=60000-"})
    assert r.status_code == 206
    assert header(r, "Content-Range") == f"bytes 60000-{len(DATA) - 1}/{len(DATA)}"
    assert r.content == DATA[60000:]


def test_suffix_range_returns_the_last_bytes(registry, pushed):
    repo, d = pushed
    r = registry.get(f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=-10"})
    assert r.status_code == 206
    assert header(r, "Content-Range") == f"bytes {len(DATA) - 10}-{len(DATA) - 1}/{len(DATA)}"
    assert r.content == DATA[-10:]


@pytest.mark.parametrize("rng", ["bytes=100000-", "bytes=200000-300000"])
def test_unsatisfiable_range_is_416(registry, pushed, rng):
    repo, d = pushed
    r = registry.get(f"/v2/{repo}/blobs/{d}", headers={"Range": rng})
    assert r.status_code == 416, f"{r.status_code} {r.content[:200]!r}"
    assert header(r, "Content-Range") == f"bytes */{len(DATA)}"


def test_resumed_pull_with_ranges_reassembles_the_blob(registry, pushed):
    repo, d = pushed
    parts, pos = [], 0
    while pos < len(DATA):
        r = registry.get(f"/v2/{repo}/blobs/{d}", headers={"Range": f"bytes={pos}-{pos + 32767}"})
        assert r.status_code == 206
        parts.append(r.content)
        pos += len(r.content)
    assert sha256(b"".join(parts)) == d


def test_unknown_blob_get_is_404_blob_unknown(registry, pushed):
    repo, _ = pushed
    assert_oci_error(registry.get(f"/v2/{repo}/blobs/{sha256(b'absent')}"), 404, "BLOB_UNKNOWN")


def test_unknown_blob_head_is_404_without_body(registry, pushed):
    repo, _ = pushed
    assert_oci_error(registry.head(f"/v2/{repo}/blobs/{sha256(b'absent')}"), 404, head=True)


def test_blob_in_unknown_repository_is_404(registry):
    assert_oci_error(registry.get(f"/v2/no/such/repo/blobs/{sha256(DATA)}"), 404,
                     ("BLOB_UNKNOWN", "NAME_UNKNOWN"))


def test_blob_of_another_repository_is_not_served(registry, pushed, repo2):
    repo, d = pushed
    registry.push_blob(repo2, b"repo2 exists")
    assert_oci_error(registry.get(f"/v2/{repo2}/blobs/{d}"), 404, "BLOB_UNKNOWN")


def test_get_blob_with_malformed_digest_is_400_or_404(registry, pushed):
    repo, _ = pushed
    r = registry.get(f"/v2/{repo}/blobs/sha256:xyz")
    assert_oci_error(r, (400, 404), ("DIGEST_INVALID", "BLOB_UNKNOWN"))


def test_delete_blob_is_202_then_get_is_404(registry, pushed):
    repo, d = pushed
    r = registry.delete(f"/v2/{repo}/blobs/{d}")
    assert r.status_code == 202, f"{r.status_code} {r.content[:200]!r}"
    assert_oci_error(registry.get(f"/v2/{repo}/blobs/{d}"), 404, "BLOB_UNKNOWN")
    assert registry.head(f"/v2/{repo}/blobs/{d}").status_code == 404


def test_delete_unknown_blob_is_404_blob_unknown(registry, pushed):
    repo, _ = pushed
    assert_oci_error(registry.delete(f"/v2/{repo}/blobs/{sha256(b'never')}"), 404, "BLOB_UNKNOWN")


def test_deleted_blob_can_be_pushed_again(registry, pushed):
    repo, d = pushed
    assert registry.delete(f"/v2/{repo}/blobs/{d}").status_code == 202
    registry.push_blob(repo, DATA)
    assert registry.get(f"/v2/{repo}/blobs/{d}").content == DATA


def test_same_blob_in_two_repos_survives_delete_from_one(registry, repo, repo2):
    data = det_bytes(65_536, "dedup")
    d = registry.push_blob(repo, data)
    assert registry.push_blob(repo2, data) == d
    assert registry.delete(f"/v2/{repo}/blobs/{d}").status_code == 202
    assert registry.get(f"/v2/{repo}/blobs/{d}").status_code == 404
    r = registry.get(f"/v2/{repo2}/blobs/{d}")
    assert r.status_code == 200 and r.content == data


def test_mounted_blob_survives_delete_from_source(registry, repo, repo2):
    data = det_bytes(8192, "dedup-mount")
    d = registry.push_blob(repo, data)
    r = registry.post(f"/v2/{repo2}/blobs/uploads/?mount={d}&from={repo}")
    assert r.status_code == 201
    assert registry.delete(f"/v2/{repo}/blobs/{d}").status_code == 202
    r = registry.get(f"/v2/{repo2}/blobs/{d}")
    assert r.status_code == 200 and r.content == data
