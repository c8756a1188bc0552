"""OCI distribution-spec conformance: the Pull workflow.

24 specs in the suite's order, 1 skipped ("Get tag name from environment").

Part of the pytest port of the Go conformance suite: provenance (commit ids), faithfulness
rules, OCI_* environment and the 79 specs / 74 passed / 5 skipped accounting are in the
docstring of oci_conformance.py (not collected), which also builds the data and holds the
helpers. This file's module-scoped `conf` is a fresh Conformance for this workflow alone:
its Setup specs push configs[0], configs[1], the layer, manifests[0] (as tagtest0) and
manifests[1] (by digest), the Pull specs read them, Teardown deletes them.
"""

import os

import pytest

from conftest import OCI_MANIFEST, dr_deviation
from oci_conformance import (
    ACCEPT_OCI, DELETE_MANIFEST_BEFORE_BLOBS, ERROR_CODES, RUN_PULL_SETUP, TEST_TAG_NAME,
    describe, errors_of, expect_status, new_conformance, run_only_if)


@pytest.fixture(scope="module")
def conf(registry):
    """This workflow's data and closure variables, shared by its specs in order."""
    return new_conformance(registry)


# ---- Setup

def test_pull_setup_populate_registry_with_test_blob(conf):
    """Pull / Setup / Populate registry with test blob (configs[0])"""
    run_only_if(RUN_PULL_SETUP)
    expect_status(conf.push_blob(conf.configs[0]), "2xx")


def test_pull_setup_populate_registry_with_test_blob_2(conf):
    """Pull / Setup / Populate registry with test blob (configs[1])"""
    run_only_if(RUN_PULL_SETUP)
    expect_status(conf.push_blob(conf.configs[1]), "2xx")


def test_pull_setup_populate_registry_with_test_layer(conf):
    """Pull / Setup / Populate registry with test layer"""
    run_only_if(RUN_PULL_SETUP)
    expect_status(conf.push_blob(conf.layer), "2xx")


def test_pull_setup_populate_registry_with_test_manifest(conf):
    """Pull / Setup / Populate registry with test manifest (manifests[0] as tagtest0)"""
    run_only_if(RUN_PULL_SETUP)
    conf.pull_tag = TEST_TAG_NAME
    expect_status(conf.put_manifest(conf.pull_tag, conf.manifests[0]), "2xx")


def test_pull_setup_populate_registry_with_test_manifest_2(conf):
    """Pull / Setup / Populate registry with test manifest (manifests[1] by digest)"""
    run_only_if(RUN_PULL_SETUP)
    expect_status(conf.put_manifest(conf.manifests[1].digest, conf.manifests[1]), "2xx")


def test_pull_setup_get_tag_name_from_environment(conf):
    """Pull / Setup / Get tag name from environment"""
    run_only_if(not RUN_PULL_SETUP)
    conf.pull_tag = os.environ.get("OCI_TAG_NAME") or conf.pull_tag


# ---- Pull blobs

def test_pull_head_request_to_nonexistent_blob_should_result_in_404_response(conf):
    """Pull / Pull blobs / HEAD request to nonexistent blob should result in 404 response"""
    r = conf.request("HEAD", f"/v2/<name>/blobs/{conf.dummy_digest}")
    expect_status(r, 404)


def test_pull_head_request_to_existing_blob_should_yield_200(conf):
    """Pull / Pull blobs / HEAD request to existing blob should yield 200"""
    r = conf.request("HEAD", f"/v2/<name>/blobs/{conf.configs[0].digest}")
    expect_status(r, 200)
    if r.headers.get("Docker-Content-Digest"):
        assert r.headers["Docker-Content-Digest"] == conf.configs[0].digest, describe(r)


def test_pull_get_nonexistent_blob_should_result_in_404_response(conf):
    """Pull / Pull blobs / GET nonexistent blob should result in 404 response"""
    expect_status(conf.request("GET", f"/v2/<name>/blobs/{conf.dummy_digest}"), 404)


def test_pull_get_request_to_existing_blob_url_should_yield_200(conf):
    """Pull / Pull blobs / GET request to existing blob URL should yield 200"""
    expect_status(conf.request("GET", f"/v2/<name>/blobs/{conf.configs[0].digest}"), 200)


# ---- Pull manifests

def test_pull_head_request_to_nonexistent_manifest_should_return_404(conf):
    """Pull / Pull manifests / HEAD request to nonexistent manifest should return 404"""
    r = conf.request("HEAD", f"/v2/<name>/manifests/{conf.nonexistent_manifest}")
    expect_status(r, 404)


def _head_manifest_200(conf, reference, want_digest):
    r = conf.request("HEAD", f"/v2/<name>/manifests/{reference}", headers=ACCEPT_OCI)
    expect_status(r, 200)
    if r.headers.get("Docker-Content-Digest"):
        assert r.headers["Docker-Content-Digest"] == want_digest, describe(r)


def test_pull_head_request_to_manifest_0_path_digest_should_yield_200_response(conf):
    """Pull / Pull manifests / HEAD request to manifest[0] path (digest) should yield 200
    response"""
    _head_manifest_200(conf, conf.manifests[0].digest, conf.manifests[0].digest)


def test_pull_head_request_to_manifest_1_path_digest_should_yield_200_response(conf):
    """Pull / Pull manifests / HEAD request to manifest[1] path (digest) should yield 200
    response"""
    _head_manifest_200(conf, conf.manifests[1].digest, conf.manifests[1].digest)


def test_pull_head_request_to_manifest_path_tag_should_yield_200_response(conf):
    """Pull / Pull manifests / HEAD request to manifest path (tag) should yield 200 response"""
    assert conf.pull_tag != ""
    _head_manifest_200(conf, conf.pull_tag, conf.manifests[0].digest)


def test_pull_get_nonexistent_manifest_should_return_404(conf):
    """Pull / Pull manifests / GET nonexistent manifest should return 404"""
    r = conf.request("GET", f"/v2/<name>/manifests/{conf.nonexistent_manifest}")
    expect_status(r, 404)


def test_pull_get_request_to_manifest_0_path_digest_should_yield_200_response(conf):
    """Pull / Pull manifests / GET request to manifest[0] path (digest) should yield 200
    response"""
    r = conf.request("GET", f"/v2/<name>/manifests/{conf.manifests[0].digest}", headers=ACCEPT_OCI)
    expect_status(r, 200)


def test_pull_get_request_to_manifest_1_path_digest_should_yield_200_response(conf):
    """Pull / Pull manifests / GET request to manifest[1] path (digest) should yield 200
    response"""
    r = conf.request("GET", f"/v2/<name>/manifests/{conf.manifests[1].digest}", headers=ACCEPT_OCI)
    expect_status(r, 200)


def test_pull_get_request_to_manifest_path_tag_should_yield_200_response(conf):
    """Pull / Pull manifests / GET request to manifest path (tag) should yield 200 response"""
    assert conf.pull_tag != ""
    r = conf.request("GET", f"/v2/<name>/manifests/{conf.pull_tag}", headers=ACCEPT_OCI)
    expect_status(r, 200)


# ---- Error codes

@dr_deviation("GET /manifests/sha256:totallywrong is a 500 UNKNOWN (a storage path error)")
def test_pull_400_response_body_should_contain_oci_conforming_json_message(conf):
    """Pull / Error codes / 400 response body should contain OCI-conforming JSON message"""
    r = conf.request("GET", "/v2/<name>/manifests/sha256:totallywrong",
                     headers={"Content-Type": OCI_MANIFEST}, body=conf.invalid_manifest_content)
    expect_status(r, 400, 404)
    if r.status_code == 400:
        errs = errors_of(r)
        assert errs[0].get("code", "") in ERROR_CODES, describe(r)


# ---- Teardown

def _pull_delete_manifest(conf, i):
    run_only_if(RUN_PULL_SETUP)
    r = conf.request("DELETE", f"/v2/<name>/manifests/{conf.manifests[i].digest}")
    expect_status(r, "2xx", 405)


def _pull_delete_blob(conf, blob):
    run_only_if(RUN_PULL_SETUP)
    r = conf.request("DELETE", f"/v2/<name>/blobs/{blob.digest}")
    expect_status(r, "2xx", 404, 405)


if DELETE_MANIFEST_BEFORE_BLOBS:
    def test_pull_teardown_delete_manifest_0_created_in_setup(conf):
        """Pull / Teardown / Delete manifest[0] created in setup"""
        _pull_delete_manifest(conf, 0)

    def test_pull_teardown_delete_manifest_1_created_in_setup(conf):
        """Pull / Teardown / Delete manifest[1] created in setup"""
        _pull_delete_manifest(conf, 1)


def test_pull_teardown_delete_config_0_blob_created_in_setup(conf):
    """Pull / Teardown / Delete config[0] blob created in setup"""
    _pull_delete_blob(conf, conf.configs[0])


def test_pull_teardown_delete_config_1_blob_created_in_setup(conf):
    """Pull / Teardown / Delete config[1] blob created in setup"""
    _pull_delete_blob(conf, conf.configs[1])


def test_pull_teardown_delete_layer_blob_created_in_setup(conf):
    """Pull / Teardown / Delete layer blob created in setup"""
    _pull_delete_blob(conf, conf.layer)


if not DELETE_MANIFEST_BEFORE_BLOBS:
    def test_pull_teardown_delete_manifest_0_created_in_setup(conf):  # noqa: F811 (ordering variant)
        """Pull / Teardown / Delete manifest[0] created in setup"""
        _pull_delete_manifest(conf, 0)

    def test_pull_teardown_delete_manifest_1_created_in_setup(conf):  # noqa: F811 (ordering variant)
        """Pull / Teardown / Delete manifest[1] created in setup"""
        _pull_delete_manifest(conf, 1)
