"""Discovery: the /v2/ base, tags list with n/last/Link, and _catalog."""

from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import assert_oci_error, dr_deviation, header, next_link

TAGS = ["v1.0", "v1.1", "latest", "a", "b-2", "b_1", "Z9", "0", "10", "2", "zz", "x.y", "M"]


def lexically_sorted(tags):
    """The spec says "lexical order"; accept byte order or case-insensitive order."""
    return tags == sorted(tags) or tags == sorted(tags, key=lambda t: (t.lower(), t))


@pytest.fixture
def tagged(registry, repo):
    body, _ = registry.push_image(repo, TAGS[0], seed="tags")
    for t in TAGS[1:]:
        registry.push_manifest(repo, t, body)
    return repo


def tags_page(registry, url, params=None):
    r = registry.get(url, params=params)
    assert r.status_code == 200, f"{r.status_code} {r.content[:300]!r}"
    assert header(r, "Content-Type").split(";")[0].strip() == "application/json"
    return r, r.json()


def test_base_endpoint_is_200_with_distribution_api_version(registry):
    r = registry.get("/v2/")
    assert r.status_code == 200
    assert header(r, "Docker-Distribution-API-Version") == "registry/2.0"


def test_tags_list_returns_name_and_every_tag(registry, tagged):
    _, body = tags_page(registry, f"/v2/{tagged}/tags/list")
    assert body["name"] == tagged
    assert sorted(body["tags"]) == sorted(TAGS)


@dr_deviation("tags come back in directory order, not sorted")
def test_tags_list_is_in_lexical_order(registry, tagged):
    _, body = tags_page(registry, f"/v2/{tagged}/tags/list")
    assert lexically_sorted(body["tags"]), body["tags"]


@dr_deviation("tags/list ignores n and last")
def test_tags_list_n_limits_and_link_points_to_next_page(registry, tagged):
    r, body = tags_page(registry, f"/v2/{tagged}/tags/list", {"n": 4})
    assert len(body["tags"]) == 4
    link = next_link(r)
    assert link, "a truncated list must carry Link: <...>; rel=\"next\""
    parts = urlsplit(link)
    assert parts.path == f"/v2/{tagged}/tags/list"
    q = parse_qs(parts.query)
    assert q["n"] == ["4"] and q["last"] == [body["tags"][-1]]


@dr_deviation("tags/list ignores n and last")
@pytest.mark.parametrize("n", [1, 3, 5, len(TAGS), len(TAGS) + 7])
def test_tags_list_pagination_walks_every_page_via_link(registry, tagged, n):
    _, full = tags_page(registry, f"/v2/{tagged}/tags/list")
    url, params, seen = f"/v2/{tagged}/tags/list", {"n": n}, []
    for _ in range(len(TAGS) + 2):
        r, body = tags_page(registry, url, params)
        page = body["tags"] or []
        assert len(page) <= n
        seen += page
        link = next_link(r)
        if not link:
            break
        assert len(page) == n, "only the last page may be short"
        url, params = registry.resolve(link, r.url), None
    else:
        raise AssertionError("pagination does not end")
    assert seen == full["tags"]
    assert sorted(seen) == sorted(TAGS)
    assert lexically_sorted(seen)


@dr_deviation("tags/list ignores n")
def test_tags_list_n_zero_is_empty_without_link(registry, tagged):
    r, body = tags_page(registry, f"/v2/{tagged}/tags/list", {"n": 0})
    assert not body["tags"]
    assert next_link(r) is None


@dr_deviation("tags/list ignores last")
def test_tags_list_last_starts_after_the_given_tag(registry, tagged):
    _, full = tags_page(registry, f"/v2/{tagged}/tags/list")
    tags = full["tags"]
    _, body = tags_page(registry, f"/v2/{tagged}/tags/list", {"last": tags[4]})
    assert body["tags"] == tags[5:]
    _, body = tags_page(registry, f"/v2/{tagged}/tags/list", {"n": 2, "last": tags[4]})
    assert body["tags"] == tags[5:7]
    _, body = tags_page(registry, f"/v2/{tagged}/tags/list", {"last": tags[-1]})
    assert not body["tags"]


def test_tags_list_of_unknown_repository_is_404_name_unknown(registry):
    assert_oci_error(registry.get("/v2/no/such/repository/tags/list"), 404, "NAME_UNKNOWN")


def test_tags_list_sees_a_new_tag_at_once(registry, repo):
    body, _ = registry.push_image(repo, "first", seed="new-tag")
    registry.push_manifest(repo, "second", body)
    _, listing = tags_page(registry, f"/v2/{repo}/tags/list")
    assert sorted(listing["tags"]) == ["first", "second"]


# ----------------------------------------------------------------------------- _catalog

@pytest.fixture
def catalogued(registry, repo):
    names = [f"{repo}/r{i}" for i in range(7)]
    for n in names:
        registry.push_blob(n, b"catalogued")
    return names


def test_catalog_lists_repositories(registry, catalogued):
    r = registry.get("/v2/_catalog")
    assert r.status_code == 200
    repos = r.json()["repositories"]
    assert set(catalogued) <= set(repos)
    assert repos == sorted(repos)


@pytest.mark.parametrize("n", [1, 5, 50])
def test_catalog_pagination_with_n_last_and_link(registry, catalogued, n):
    url, params, seen = "/v2/_catalog", {"n": n}, []
    for _ in range(5000):
        r = registry.get(url, params=params)
        assert r.status_code == 200, r.content[:300]
        page = r.json()["repositories"]
        assert len(page) <= n
        seen += page
        link = next_link(r)
        if not link:
            break
        assert len(page) == n, "only the last page may be short"
        parts = urlsplit(link)
        assert parts.path == "/v2/_catalog"
        q = parse_qs(parts.query)
        assert q["n"] == [str(n)] and q["last"] == [page[-1]]
        url, params = registry.resolve(link, r.url), None
    else:
        raise AssertionError("catalog pagination does not end")
    assert seen == sorted(set(seen)), "pages overlap or are out of order"
    assert set(catalogued) <= set(seen)


def test_catalog_last_starts_after_the_given_repository(registry, catalogued):
    r = registry.get("/v2/_catalog", params={"n": 3, "last": catalogued[2]})
    assert r.status_code == 200
    assert r.json()["repositories"] == catalogued[3:6]
