"""OCI distribution-spec conformance: the Content Management workflow.

10 specs in the suite's order, none skipped.

Part of the pytest port of the Go conformance suite: provenance (commit ids), faithfulness
rules, OCI_* environment and the 79 specs / 74 passed / 5 skipped accounting are in the
docstring of oci_conformance.py (not collected), which also builds the data and holds the
helpers. This file's module-scoped `conf` is a fresh Conformance for this workflow alone:
its Setup specs push configs[3], the layer and manifests[3] (as tagtest0) and count the
tags; the delete specs remove them.
"""

import json

import pytest

from conftest import dr_deviation
from oci_conformance import (
    RUN_CONTENT_MANAGEMENT_SETUP, UNSUPPORTED, describe, errors_of, expect_status,
    new_conformance, run_only_if)


@pytest.fixture(scope="module")
def conf(registry):
    """This workflow's data and closure variables, shared by its specs in order."""
    return new_conformance(registry)


# ---- Setup

def test_management_setup_populate_registry_with_test_config_blob(conf):
    """Content Management / Setup / Populate registry with test config blob (configs[3])"""
    run_only_if(RUN_CONTENT_MANAGEMENT_SETUP)
    expect_status(conf.push_blob(conf.configs[3]), "2xx")


def test_management_setup_populate_registry_with_test_layer(conf):
    """Content Management / Setup / Populate registry with test layer"""
    run_only_if(RUN_CONTENT_MANAGEMENT_SETUP)
    expect_status(conf.push_blob(conf.layer), "2xx")


def test_management_setup_populate_registry_with_test_tag(conf):
    """Content Management / Setup / Populate registry with test tag (manifests[3] as
    tagtest0)"""
    run_only_if(RUN_CONTENT_MANAGEMENT_SETUP)
    conf.mgmt_tag_to_delete = "tagtest0"
    expect_status(conf.put_manifest(conf.mgmt_tag_to_delete, conf.manifests[3]), "2xx")


def _tags_count(conf):
    r = conf.request("GET", "/v2/<name>/tags/list")
    expect_status(r, 200)
    try:
        body = json.loads(r.content)
    except ValueError as e:
        raise AssertionError(f"tags list is not JSON: {describe(r)}") from e
    return len((body or {}).get("tags") or []), r


def test_management_setup_check_how_many_tags_there_are_before_anything_gets_deleted(conf):
    """Content Management / Setup / Check how many tags there are before anything gets
    deleted"""
    run_only_if(RUN_CONTENT_MANAGEMENT_SETUP)
    conf.mgmt_num_tags, _ = _tags_count(conf)


# ---- Manifest delete

@dr_deviation("DELETE /manifests/<tag> is 400 DIGEST_INVALID (not UNSUPPORTED) on distribution 2.8")
def test_management_delete_request_to_manifest_tag_should_return_202_unless_tag_deletion_is_disallowed_400_405(conf):  # noqa: E501
    """Content Management / Manifest delete / DELETE request to manifest tag should return 202,
    unless tag deletion is disallowed (400/405)"""
    r = conf.request("DELETE", f"/v2/<name>/manifests/{conf.mgmt_tag_to_delete}")
    expect_status(r, 400, 202, 405)
    if r.status_code == 400:
        errs = errors_of(r)
        assert errs[0].get("code", "") == UNSUPPORTED, describe(r)


def test_management_delete_request_to_manifest_digest_should_yield_202_response_unless_already_deleted(conf):  # noqa: E501
    """Content Management / Manifest delete / DELETE request to manifest (digest) should yield
    202 response unless already deleted"""
    r = conf.request("DELETE", f"/v2/<name>/manifests/{conf.manifests[3].digest}")
    expect_status(r, 202, 404)


def test_management_get_request_to_deleted_manifest_url_should_yield_404_response_unless_delete_is_disallowed(conf):  # noqa: E501
    """Content Management / Manifest delete / GET request to deleted manifest URL should yield
    404 response, unless delete is disallowed"""
    r = conf.request("GET", f"/v2/<name>/manifests/{conf.manifests[3].digest}")
    expect_status(r, 404, 200)


def test_management_get_request_to_tags_list_should_reflect_manifest_deletion(conf):
    """Content Management / Manifest delete / GET request to tags list should reflect manifest
    deletion"""
    n, r = _tags_count(conf)
    assert n < conf.mgmt_num_tags, f"{n} tags, {conf.mgmt_num_tags} before: {describe(r)}"


# ---- Blob delete

def test_management_delete_request_to_blob_url_should_yield_202_response(conf):
    """Content Management / Blob delete / DELETE request to blob URL should yield 202 response"""
    run_only_if(RUN_CONTENT_MANAGEMENT_SETUP)
    r = conf.request("DELETE", f"/v2/<name>/blobs/{conf.configs[3].digest}")
    expect_status(r, 202, 404, 405)
    r = conf.request("DELETE", f"/v2/<name>/blobs/{conf.layer.digest}")
    expect_status(r, 202, 404, 405)
    if r.status_code == 405:
        conf.blob_delete_allowed = False


def test_management_get_request_to_deleted_blob_url_should_yield_404_response(conf):
    """Content Management / Blob delete / GET request to deleted blob URL should yield 404
    response"""
    run_only_if(RUN_CONTENT_MANAGEMENT_SETUP)
    run_only_if(conf.blob_delete_allowed)
    r = conf.request("GET", f"/v2/<name>/blobs/{conf.configs[3].digest}")
    expect_status(r, 404)
