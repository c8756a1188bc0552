"""OCI distribution-spec conformance: the Content Discovery workflow.

16 specs in the suite's order, 1 skipped ("Populate registry with test tags (no push)").

Part of the pytest port of the Go conformance suite: provenance (commit ids), faithfulness
rules, OCI_* environment and the 79 specs / 74 passed / 5 skipped accounting are in the
docstring of oci_conformance.py (not collected), which also builds the data and holds the
helpers. This file's module-scoped `conf` is a fresh Conformance for this workflow alone:
its Setup specs push configs[2], the layer, manifests[2] (as test0..test3) and, in
"References setup", the referrer artifacts around manifests[4] (tagged tagtest0); Teardown
deletes them.
"""

import os
import warnings

import pytest

from conftest import OCI_INDEX, dr_deviation
from oci_conformance import (
    ARTIFACT_TYPE_FILTER, DELETE_MANIFEST_BEFORE_BLOBS, REFERRERS, RUN_CONTENT_DISCOVERY_SETUP,
    TEST_TAG_NAME, check_annotations, describe, expect_status, index_of, new_conformance,
    run_only_if, tag_list)


@pytest.fixture(scope="module")
def conf(registry):
    """This workflow's data and closure variables, shared by its specs in order."""
    return new_conformance(registry)


# ---- Setup

def test_discovery_setup_populate_registry_with_test_blob(conf):
    """Content Discovery / Setup / Populate registry with test blob (configs[2])"""
    run_only_if(RUN_CONTENT_DISCOVERY_SETUP)
    expect_status(conf.push_blob(conf.configs[2]), "2xx")


def test_discovery_setup_populate_registry_with_test_layer(conf):
    """Content Discovery / Setup / Populate registry with test layer"""
    run_only_if(RUN_CONTENT_DISCOVERY_SETUP)
    expect_status(conf.push_blob(conf.layer), "2xx")


def test_discovery_setup_populate_registry_with_test_tags(conf):
    """Content Discovery / Setup / Populate registry with test tags (manifests[2] as
    test0..test3)"""
    run_only_if(RUN_CONTENT_DISCOVERY_SETUP)
    for i in range(conf.discovery_num_tags):
        tag = f"test{i}"
        conf.discovery_tag_list.append(tag)
        expect_status(conf.put_manifest(tag, conf.manifests[2]), "2xx")
    conf.discovery_tag_list = tag_list(conf.request("GET", "/v2/<name>/tags/list"))


def test_discovery_setup_populate_registry_with_test_tags_no_push(conf):
    """Content Discovery / Setup / Populate registry with test tags (no push)"""
    run_only_if(not RUN_CONTENT_DISCOVERY_SETUP)
    conf.discovery_tag_list = os.environ.get("OCI_TAG_LIST", "").split(",")


def _expect_subject(resp, want):
    assert resp.headers.get("OCI-Subject", "") == want, f"OCI-Subject: {describe(resp)}"


@REFERRERS
def test_discovery_setup_references_setup(conf):
    """Content Discovery / Setup / References setup"""
    run_only_if(RUN_CONTENT_DISCOVERY_SETUP)
    m4, m3 = conf.manifests[4].digest, conf.manifests[3].digest
    assert conf.empty_json.digest == \
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    expect_status(conf.push_blob(conf.empty_json), "2xx")
    # reference blob before the image manifest is pushed
    expect_status(conf.push_blob(conf.ref_blob_a), "2xx")
    r = conf.put_manifest(conf.refs_a_config.digest, conf.refs_a_config)
    expect_status(r, "2xx")
    _expect_subject(r, m4)
    r = conf.put_manifest(conf.refs_a_layer.digest, conf.refs_a_layer)
    expect_status(r, "2xx")
    _expect_subject(r, m4)
    r = conf.put_manifest(conf.refs_index.digest, conf.refs_index, media_type=OCI_INDEX)
    expect_status(r, "2xx")
    _expect_subject(r, m4)
    # the subject image itself
    expect_status(conf.push_blob(conf.configs[4]), "2xx")
    expect_status(conf.push_blob(conf.layer), "2xx")
    expect_status(conf.put_manifest(TEST_TAG_NAME, conf.manifests[4]), "2xx")
    # reference blob after the image manifest is pushed
    expect_status(conf.push_blob(conf.ref_blob_b), "2xx")
    r = conf.put_manifest(conf.refs_b_config.digest, conf.refs_b_config)
    expect_status(r, "2xx")
    _expect_subject(r, m4)
    r = conf.put_manifest(conf.refs_b_layer.digest, conf.refs_b_layer)
    expect_status(r, "2xx")
    _expect_subject(r, m4)
    # a referrer to a subject that does not exist
    r = conf.put_manifest(conf.refs_c_layer.digest, conf.refs_c_layer)
    expect_status(r, "2xx")
    _expect_subject(r, m3)


# ---- Test content discovery endpoints (listing tags)

def test_discovery_get_request_to_list_tags_should_yield_200_response(conf):
    """Content Discovery / listing tags / GET request to list tags should yield 200 response"""
    r = conf.request("GET", "/v2/<name>/tags/list")
    expect_status(r, 200)
    conf.discovery_tag_list = tag_list(r)
    conf.discovery_num_tags = len(conf.discovery_tag_list)


@dr_deviation("tags/list ignores n")
def test_discovery_get_number_of_tags_should_be_limitable_by_n_query_parameter(conf):
    """Content Discovery / listing tags / GET number of tags should be limitable by `n` query
    parameter"""
    n = conf.discovery_num_tags // 2
    r = conf.request("GET", "/v2/<name>/tags/list", params={"n": str(n)})
    expect_status(r, 200)
    conf.discovery_tag_list = tag_list(r)
    assert len(conf.discovery_tag_list) == n, describe(r)


@dr_deviation("tags/list ignores n, so the first page is longer than n")
def test_discovery_get_start_of_tag_is_set_by_last_query_parameter(conf):
    """Content Discovery / listing tags / GET start of tag is set by `last` query parameter"""
    n = conf.discovery_num_tags // 2
    r = conf.request("GET", "/v2/<name>/tags/list", params={"n": str(n)})
    conf.discovery_tag_list = tag_list(r)
    # like the suite: a Go index out of range here is a failed spec
    assert len(conf.discovery_tag_list) >= n and n >= 1, describe(r)
    r = conf.request("GET", "/v2/<name>/tags/list",
                     params={"n": str(n), "last": conf.discovery_tag_list[n - 1]})
    expect_status(r, 200)
    # The suite checks the first page's list again, not this response's (kept as is).
    assert len(conf.discovery_tag_list) <= n, conf.discovery_tag_list
    assert conf.discovery_tag_list[n - 1] in conf.discovery_tag_list


# ---- Test content discovery endpoints (listing references)

@REFERRERS
def test_discovery_get_request_to_nonexistent_blob_should_result_in_empty_200_response(conf):
    """Content Discovery / listing references / GET request to nonexistent blob should result
    in empty 200 response"""
    r = conf.request("GET", f"/v2/<name>/referrers/{conf.dummy_digest}")
    index = index_of(r)
    assert len(index.get("manifests") or []) == 0, describe(r)


@REFERRERS
def test_discovery_get_request_to_existing_blob_should_yield_200(conf):
    """Content Discovery / listing references / GET request to existing blob should yield 200"""
    r = conf.request("GET", f"/v2/<name>/referrers/{conf.manifests[4].digest}")
    manifests = index_of(r).get("manifests") or []
    assert len(manifests) == 5, describe(r)
    assert manifests[0]["digest"] != manifests[1]["digest"], describe(r)
    check_annotations(conf, manifests)


@REFERRERS
def test_discovery_get_request_to_existing_blob_with_filter_should_yield_200(conf):
    """Content Discovery / listing references / GET request to existing blob with filter
    should yield 200"""
    r = conf.request("GET", f"/v2/<name>/referrers/{conf.manifests[4].digest}",
                     params={"artifactType": conf.ref_type_a})
    manifests = index_of(r).get("manifests") or []
    if r.headers.get("OCI-Filters-Applied", "") != "":
        assert len(manifests) == 2, describe(r)
        assert r.headers["OCI-Filters-Applied"] == ARTIFACT_TYPE_FILTER, describe(r)
    else:
        assert len(manifests) == 5, describe(r)
        warnings.warn("filtering by artifact-type is not implemented")
    check_annotations(conf, manifests)


@REFERRERS
def test_discovery_get_request_to_missing_manifest_should_yield_200(conf):
    """Content Discovery / listing references / GET request to missing manifest should yield
    200"""
    r = conf.request("GET", f"/v2/<name>/referrers/{conf.manifests[3].digest}")
    manifests = index_of(r).get("manifests") or []
    assert len(manifests) == 1, describe(r)
    assert manifests[0]["digest"] == conf.refs_c_layer.digest, describe(r)


# ---- Teardown

def _discovery_delete_manifests(conf):
    run_only_if(RUN_CONTENT_DISCOVERY_SETUP)
    references = [conf.refs_index.digest, conf.manifests[2].digest, conf.manifests[4].digest,
                  conf.refs_a_config.digest, conf.refs_a_layer.digest, TEST_TAG_NAME,
                  conf.refs_b_config.digest, conf.refs_b_layer.digest, conf.refs_c_layer.digest]
    for ref in references:
        r = conf.request("DELETE", f"/v2/<name>/manifests/{ref}")
        expect_status(r, "2xx", 405, 404)


TAG_DELETE_DEVIATION = dr_deviation(
    "DELETE /manifests/<tag> is 400 DIGEST_INVALID, outside the 2xx/404/405 the suite accepts")


if DELETE_MANIFEST_BEFORE_BLOBS:
    @TAG_DELETE_DEVIATION
    def test_discovery_teardown_delete_created_manifest_and_associated_tags(conf):
        """Content Discovery / Teardown / Delete created manifest & associated tags"""
        _discovery_delete_manifests(conf)


def test_discovery_teardown_delete_config_blob_created_in_tests(conf):
    """Content Discovery / Teardown / Delete config blob created in tests"""
    run_only_if(RUN_CONTENT_DISCOVERY_SETUP)
    r = conf.request("DELETE", f"/v2/<name>/blobs/{conf.configs[2].digest}")
    expect_status(r, "2xx", 405)


def test_discovery_teardown_delete_layer_blob_created_in_setup(conf):
    """Content Discovery / Teardown / Delete layer blob created in setup"""
    run_only_if(RUN_CONTENT_DISCOVERY_SETUP)
    r = conf.request("DELETE", f"/v2/<name>/blobs/{conf.layer.digest}")
    expect_status(r, "2xx", 405)


if not DELETE_MANIFEST_BEFORE_BLOBS:
    @TAG_DELETE_DEVIATION
    def test_discovery_teardown_delete_created_manifest_and_associated_tags(conf):  # noqa: F811 (ordering variant)
        """Content Discovery / Teardown / Delete created manifest & associated tags"""
        _discovery_delete_manifests(conf)


def test_discovery_teardown_references_teardown(conf):
    """Content Discovery / Teardown / References teardown"""
    run_only_if(RUN_CONTENT_DISCOVERY_SETUP)

    def delete(path):
        expect_status(conf.request("DELETE", path), "2xx", 405, 404)

    def delete_manifests():
        for ref in (conf.refs_index.digest, conf.refs_a_config.digest, conf.refs_a_layer.digest,
                    conf.manifests[4].digest, conf.refs_b_config.digest,
                    conf.refs_b_layer.digest):
            delete(f"/v2/<name>/manifests/{ref}")

    if DELETE_MANIFEST_BEFORE_BLOBS:
        delete_manifests()
    for blob in (conf.configs[4], conf.ref_blob_a, conf.ref_blob_b, conf.empty_json):
        delete(f"/v2/<name>/blobs/{blob.digest}")
    if not DELETE_MANIFEST_BEFORE_BLOBS:
        delete_manifests()
