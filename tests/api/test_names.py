"""Repository names and tags: the grammar, path traversal, and names that look like routes.

Paths are sent byte for byte (registry.raw): requests/urllib3 would normalise `..` and %2e."""

import json
import re

import pytest

from conftest import (DOCKER_REGISTRY, EDGEPIER, OCI_MANIFEST, assert_oci_error, dr_deviation,
                      header, sha256)

# (id, method, raw path)
BAD_NAME_REQUESTS = [
    ("uppercase-tags", "GET", "/v2/Upper/Case/tags/list"),
    ("uppercase-manifest", "GET", "/v2/UPPER/manifests/latest"),
    ("uppercase-upload", "POST", "/v2/Upper/blobs/uploads/"),
    ("uppercase-put", "PUT", "/v2/Upper/manifests/latest"),
    ("double-dot-component", "GET", "/v2/a..b/tags/list"),
    ("dot-dot-segment", "GET", "/v2/a/../b/tags/list"),
    ("dot-dot-upload", "POST", "/v2/a/../b/blobs/uploads/"),
    ("trailing-slash", "GET", "/v2/a/b//tags/list"),
    ("empty-component", "GET", "/v2/a//b/manifests/latest"),
    ("leading-dash", "GET", "/v2/-a/tags/list"),
    ("leading-underscore", "GET", "/v2/_a/tags/list"),
    ("traversal", "GET", "/v2/../etc/passwd"),
    ("traversal-deep", "GET", "/v2/../../../../etc/passwd"),
    ("traversal-in-manifest", "GET", "/v2/a/manifests/../../../../etc/passwd"),
    ("traversal-in-blob", "GET", "/v2/a/blobs/../../../../etc/passwd"),
    ("pct-dot-dot", "GET", "/v2/%2e%2e/etc/passwd"),
    ("pct-dot-dot-upper", "GET", "/v2/%2E%2E/%2E%2E/etc/passwd"),
    ("pct-dot-dot-name", "GET", "/v2/a/%2e%2e/%2e%2e/etc/tags/list"),
    ("pct-slash-dot-dot", "GET", "/v2/..%2f..%2fetc/tags/list"),
    ("pct-dot-dot-upload", "POST", "/v2/a%2e%2e/blobs/uploads/"),
    ("nul-byte", "GET", "/v2/a%00b/tags/list"),
]

# docker-registry (Go's ServeMux) answers paths with `..`/`//` by a 301 to the cleaned path.
ALLOWED_BAD_NAME = {400, 404} | ({301} if DOCKER_REGISTRY else set())


def send(registry, method, path):
    body = b"{}" if method == "PUT" else None
    headers = {"Content-Type": OCI_MANIFEST} if method == "PUT" else {}
    return registry.raw(method, path, headers=headers, body=body)


@pytest.mark.parametrize("method,path", [r[1:] for r in BAD_NAME_REQUESTS],
                         ids=[r[0] for r in BAD_NAME_REQUESTS])
def test_invalid_name_is_400_name_invalid_or_404_never_200_or_500(registry, method, path):
    status, headers, body = send(registry, method, path)
    assert status in ALLOWED_BAD_NAME, f"{method} {path}: {status} {body[:200]!r}"
    assert b"root:" not in body
    if status == 400 and EDGEPIER:
        assert json.loads(body)["errors"][0]["code"] == "NAME_INVALID"
    assert registry.get("/v2/").status_code == 200


@dr_deviation("unrouted names get a text/plain '404 page not found' or an empty 301")
@pytest.mark.parametrize("method,path", [r[1:] for r in BAD_NAME_REQUESTS],
                         ids=[r[0] for r in BAD_NAME_REQUESTS])
def test_invalid_name_error_is_an_oci_json_error(registry, method, path):
    status, headers, body = send(registry, method, path)
    assert status in (400, 404), f"{method} {path}: {status}"
    assert headers.get("content-type", "").split(";")[0] == "application/json", headers
    errors = json.loads(body)["errors"]
    assert errors and all(re.fullmatch(r"[A-Z_]+", e["code"]) for e in errors), errors
    if status == 400:
        assert errors[0]["code"] == "NAME_INVALID", errors


@dr_deviation("a 256-character name is a 500 UNKNOWN")
def test_name_of_256_characters_is_400_or_404_not_500(registry):
    name = "/".join(["a" * 63] * 3 + ["a" * 64])  # 256 characters, every component valid
    assert len(name) == 256
    for method, path in (("GET", f"/v2/{name}/tags/list"), ("POST", f"/v2/{name}/blobs/uploads/"),
                         ("GET", f"/v2/{name}/manifests/latest")):
        status, _, body = send(registry, method, path)
        assert status in (400, 404), f"{method}: {status} {body[:200]!r}"
        if status == 400:
            assert json.loads(body)["errors"][0]["code"] == "NAME_INVALID"


def test_name_of_255_characters_works(registry):
    name = "/".join(["a" * 63] * 4)
    assert len(name) == 255
    registry.push_image(name, "v1", seed="long")
    assert registry.get(f"/v2/{name}/tags/list").json()["tags"] == ["v1"]


BAD_TAGS = [".starts-with-dot", "-starts-with-dash", "a" * 129, "has!bang", "has%20space"]


@dr_deviation("an invalid tag does not match the route: text/plain 404")
@pytest.mark.parametrize("tag", BAD_TAGS, ids=["dot", "dash", "129-chars", "bang", "space"])
def test_put_with_invalid_tag_is_400(registry, repo, tag):
    body, _ = registry.push_image(repo, None, seed="bad-tags")
    status, headers, resp = registry.raw("PUT", f"/v2/{repo}/manifests/{tag}",
                                         headers={"Content-Type": OCI_MANIFEST}, body=body)
    assert status == 400, f"{status} {resp[:200]!r}"
    assert headers.get("content-type", "").split(";")[0] == "application/json"
    assert json.loads(resp)["errors"][0]["code"] in ("TAG_INVALID", "MANIFEST_INVALID")


@pytest.mark.parametrize("tag", BAD_TAGS, ids=["dot", "dash", "129-chars", "bang", "space"])
def test_invalid_tag_is_never_stored_or_a_server_error(registry, repo, tag):
    body, _ = registry.push_image(repo, "ok", seed="bad-tags-2")
    status, _, _ = registry.raw("PUT", f"/v2/{repo}/manifests/{tag}",
                                headers={"Content-Type": OCI_MANIFEST}, body=body)
    assert status in (400, 404), status
    status, _, _ = registry.raw("GET", f"/v2/{repo}/manifests/{tag}")
    assert status in (400, 404), status
    assert registry.get(f"/v2/{repo}/tags/list").json()["tags"] == ["ok"]


@pytest.mark.parametrize("tag", ["a" * 128, "_underscore", "A.b-c_D", "0", "sha256"])
def test_valid_edge_case_tags_work(registry, repo, tag):
    body, d = registry.push_image(repo, tag, seed="edge-tags")
    r = registry.get_manifest(repo, tag)
    assert r.status_code == 200 and r.content == body
    assert tag in registry.get(f"/v2/{repo}/tags/list").json()["tags"]


def test_nested_names_work(registry, repo):
    name = f"{repo}/a/b/c"
    body, d = registry.push_image(name, "v1", seed="nested")
    assert registry.get_manifest(name, "v1").content == body
    listing = registry.get(f"/v2/{name}/tags/list").json()
    assert listing == {"name": name, "tags": ["v1"]}
    # the parent is a different repository
    assert registry.get_manifest(f"{repo}/a/b", "v1").status_code == 404


@pytest.mark.parametrize("middle", ["blobs", "manifests", "tags", "uploads", "referrers", "v2"])
def test_names_with_route_like_segments_work(registry, repo, middle):
    name = f"{repo}/{middle}/y"
    body, d = registry.push_image(name, "v1", seed=f"route-{middle}")
    r = registry.get_manifest(name, "v1")
    assert r.status_code == 200 and r.content == body
    assert header(r, "Docker-Content-Digest") == d
    assert registry.get(f"/v2/{name}/tags/list").json() == {"name": name, "tags": ["v1"]}
    blob = b"blob in a route-like repository"
    registry.push_blob(name, blob)
    assert registry.get(f"/v2/{name}/blobs/{sha256(blob)}").content == blob
    # and nothing leaked into the repository the prefix names
    assert registry.get_manifest(repo, "v1").status_code == 404
