"""OCI distribution-spec conformance: the Push workflow.

29 specs in the suite's order, 3 skipped (one of the two cross-mount follow-ups, which depend on
a 201 or a 202, and both automatic cross-mount specs).

Part of the pytest port of the Go conformance suite: provenance (commit ids), faithfulness
rules, OCI_* environment and the 79 specs / 74 passed / 5 skipped accounting are in the
docstring of oci_conformance.py (not collected), which also builds the data and holds the
helpers. This file's module-scoped `conf` is a fresh Conformance for this workflow alone:
its streamed, monolithic and chunked upload specs push blob_a, configs[1], blob_b and the
layer before the mount and manifest specs use them; Teardown deletes them.
"""

import warnings

import pytest

from conftest import dr_deviation
from oci_conformance import (
    ACCEPT_OCI, AUTOMATIC_CROSSMOUNT_ENABLED, CROSSMOUNT_NAMESPACE,
    DELETE_MANIFEST_BEFORE_BLOBS, EMPTY_LAYER_TEST_TAG, NAMESPACE, OCTET,
    RUN_AUTOMATIC_CROSSMOUNT_TEST, RUN_PUSH_SETUP, absolute_location, describe,
    expect_location, expect_status, new_conformance, relative_location, run_only_if)


@pytest.fixture(scope="module")
def conf(registry):
    """This workflow's data and closure variables, shared by its specs in order."""
    return new_conformance(registry)


# ---- Blob Upload Streamed

def test_push_patch_request_with_blob_in_body_should_yield_202_response(conf):
    """Push / Blob Upload Streamed / PATCH request with blob in body should yield 202 response"""
    r = conf.request("POST", "/v2/<name>/blobs/uploads/")
    expect_location(r)
    r = conf.request("PATCH", relative_location(r), headers=OCTET, body=conf.blob_a.content)
    expect_status(r, 202)
    conf.last_response = r


def test_push_put_request_to_session_url_with_digest_should_yield_201_response(conf):
    """Push / Blob Upload Streamed / PUT request to session URL with digest should yield 201
    response"""
    assert conf.last_response is not None
    # The suite sets Content-Length: <blob length> but sends no body; Go's net/http then
    # sends Content-Length: 0, as requests does here.
    r = conf.request("PUT", relative_location(conf.last_response), headers=OCTET,
                     params={"digest": conf.blob_a.digest})
    expect_status(r, 201)
    expect_location(r)


# ---- Blob Upload Monolithic

def test_push_get_nonexistent_blob_should_result_in_404_response(conf):
    """Push / Blob Upload Monolithic / GET nonexistent blob should result in 404 response"""
    expect_status(conf.request("GET", f"/v2/<name>/blobs/{conf.dummy_digest}"), 404)


def test_push_post_request_with_digest_and_blob_should_yield_a_201_or_202(conf):
    """Push / Blob Upload Monolithic / POST request with digest and blob should yield a 201
    or 202"""
    r = conf.request("POST", "/v2/<name>/blobs/uploads/", headers=OCTET,
                     params={"digest": conf.configs[1].digest}, body=conf.configs[1].content)
    expect_location(r)
    expect_status(r, 201, 202)
    conf.last_response = r


def test_push_get_request_to_blob_url_from_prior_request_should_yield_200_or_404_based_on_response_code(conf):  # noqa: E501
    """Push / Blob Upload Monolithic / GET request to blob URL from prior request should yield
    200 or 404 based on response code"""
    assert conf.last_response is not None
    r = conf.request("GET", f"/v2/<name>/blobs/{conf.configs[1].digest}")
    if conf.last_response.status_code == 202:
        expect_status(r, 404)
    else:
        expect_status(r, 200)


def test_push_post_request_should_yield_a_session_id(conf):
    """Push / Blob Upload Monolithic / POST request should yield a session ID"""
    r = conf.request("POST", "/v2/<name>/blobs/uploads/")
    expect_status(r, 202)
    conf.last_response = r


def test_push_put_upload_of_a_blob_should_yield_a_201_response(conf):
    """Push / Blob Upload Monolithic / PUT upload of a blob should yield a 201 Response"""
    r = conf.request("PUT", relative_location(conf.last_response), headers=OCTET,
                     params={"digest": conf.configs[1].digest}, body=conf.configs[1].content)
    expect_location(r)
    expect_status(r, 201)


def test_push_get_request_to_existing_blob_should_yield_200_response(conf):
    """Push / Blob Upload Monolithic / GET request to existing blob should yield 200 response"""
    expect_status(conf.request("GET", f"/v2/<name>/blobs/{conf.configs[1].digest}"), 200)


def test_push_put_upload_of_a_layer_blob_should_yield_a_201_response(conf):
    """Push / Blob Upload Monolithic / PUT upload of a layer blob should yield a 201 Response"""
    r = conf.push_blob(conf.layer)
    expect_location(r)
    expect_status(r, 201)


def test_push_get_request_to_existing_layer_should_yield_200_response(conf):
    """Push / Blob Upload Monolithic / GET request to existing layer should yield 200 response"""
    expect_status(conf.request("GET", f"/v2/<name>/blobs/{conf.layer.digest}"), 200)


# ---- Blob Upload Chunked

@dr_deviation("PATCH ignores Content-Range: an out-of-order chunk is appended, 202")
def test_push_out_of_order_blob_upload_should_return_416(conf):
    """Push / Blob Upload Chunked / Out-of-order blob upload should return 416"""
    r = conf.request("POST", "/v2/<name>/blobs/uploads/", headers={"Content-Length": "0"})
    expect_location(r)
    # rebuild chunked blob if min size is above our chunk size
    min_size = r.headers.get("OCI-Chunk-Min-Length", "")
    if min_size != "":
        assert min_size.isdigit(), describe(r)
        if int(min_size) > len(conf.chunk1):
            conf.setup_chunked_blob(int(min_size) * 2 - 2)
    r = conf.request("PATCH", relative_location(r), body=conf.chunk2,
                     headers={"Content-Type": "application/octet-stream",
                              "Content-Range": conf.chunk2_range})
    expect_status(r, 416)


def test_push_patch_request_with_first_chunk_should_return_202(conf):
    """Push / Blob Upload Chunked / PATCH request with first chunk should return 202"""
    r = conf.request("POST", "/v2/<name>/blobs/uploads/", headers={"Content-Length": "0"})
    expect_location(r)
    conf.prev_response = r
    r = conf.request("PATCH", relative_location(r), body=conf.chunk1,
                     headers={"Content-Type": "application/octet-stream",
                              "Content-Range": conf.chunk1_range})
    expect_status(r, 202)
    assert r.headers.get("Range", "") == conf.chunk1_range, describe(r)
    conf.last_response = r


@dr_deviation("a stale upload URL (old _state) is 404 BLOB_UPLOAD_INVALID, not 416")
def test_push_retry_previous_blob_chunk_should_return_416(conf):
    """Push / Blob Upload Chunked / Retry previous blob chunk should return 416"""
    r = conf.request("PATCH", relative_location(conf.prev_response), body=conf.chunk1,
                     headers={"Content-Type": "application/octet-stream",
                              "Content-Range": conf.chunk1_range})
    expect_status(r, 416)


@dr_deviation("GET on a stale upload URL (old _state) is 404 BLOB_UPLOAD_INVALID, not 204")
def test_push_get_on_stale_blob_upload_should_return_204_with_a_range_and_location(conf):
    """Push / Blob Upload Chunked / Get on stale blob upload should return 204 with a range and
    location"""
    r = conf.request("GET", relative_location(conf.prev_response))
    expect_status(r, 204)
    expect_location(r)
    assert r.headers.get("Range", "") == conf.chunk1_range, describe(r)
    conf.last_response = r


def test_push_patch_request_with_second_chunk_should_return_202(conf):
    """Push / Blob Upload Chunked / PATCH request with second chunk should return 202"""
    r = conf.request("PATCH", relative_location(conf.last_response), body=conf.chunk2,
                     headers={"Content-Range": conf.chunk2_range,
                              "Content-Type": "application/octet-stream"})
    expect_status(r, 202)
    expect_location(r)
    conf.last_response = r


def test_push_put_request_with_digest_should_return_201(conf):
    """Push / Blob Upload Chunked / PUT request with digest should return 201"""
    r = conf.request("PUT", relative_location(conf.last_response),
                     headers={"Content-Length": "0", **OCTET},
                     params={"digest": conf.blob_b.digest})
    expect_status(r, 201)
    expect_location(r)


# ---- Cross-Repository Blob Mount

def test_push_cross_mounting_of_a_blob_without_the_from_argument_should_yield_session_id(conf):
    """Push / Cross-Repository Blob Mount / Cross-mounting of a blob without the from argument
    should yield session id"""
    r = conf.request("POST", "/v2/<name>/blobs/uploads/", name=CROSSMOUNT_NAMESPACE,
                     params={"mount": conf.dummy_digest})
    expect_status(r, 202)
    assert absolute_location(r) != "", describe(r)


def test_push_post_request_to_mount_another_repositorys_blob_should_return_201_or_202(conf):
    """Push / Cross-Repository Blob Mount / POST request to mount another repository's blob
    should return 201 or 202"""
    r = conf.request("POST", "/v2/<name>/blobs/uploads/", name=CROSSMOUNT_NAMESPACE,
                     params={"mount": conf.blob_a.digest, "from": NAMESPACE})
    expect_status(r, 201, 202)
    conf.last_response = r


def test_push_get_request_to_test_digest_within_cross_mount_namespace_should_return_200(conf):
    """Push / Cross-Repository Blob Mount / GET request to test digest within cross-mount
    namespace should return 200"""
    run_only_if(conf.last_response.status_code == 201)
    loc = relative_location(conf.last_response)
    assert loc == f"/v2/{CROSSMOUNT_NAMESPACE}/blobs/{conf.blob_a.digest}", \
        describe(conf.last_response)
    expect_status(conf.request("GET", loc), 200)


def test_push_cross_mounting_of_nonexistent_blob_should_yield_session_id(conf):
    """Push / Cross-Repository Blob Mount / Cross-mounting of nonexistent blob should yield
    session id"""
    run_only_if(conf.last_response.status_code == 202)
    assert relative_location(conf.last_response).startswith(
        f"/v2/{CROSSMOUNT_NAMESPACE}/blobs/uploads/"), describe(conf.last_response)


def test_push_cross_mounting_without_from_and_automatic_content_discovery_enabled_should_return_a_201(conf):  # noqa: E501
    """Push / Cross-Repository Blob Mount / Cross-mounting without from, and automatic content
    discovery enabled should return a 201"""
    run_only_if(RUN_AUTOMATIC_CROSSMOUNT_TEST)
    run_only_if(conf.last_response.status_code == 201)
    run_only_if(AUTOMATIC_CROSSMOUNT_ENABLED)
    r = conf.request("POST", "/v2/<name>/blobs/uploads/", name=CROSSMOUNT_NAMESPACE,
                     params={"mount": conf.blob_a.digest})
    expect_status(r, 201)


def test_push_cross_mounting_without_from_and_automatic_content_discovery_disabled_should_return_a_202(conf):  # noqa: E501
    """Push / Cross-Repository Blob Mount / Cross-mounting without from, and automatic content
    discovery disabled should return a 202"""
    run_only_if(RUN_AUTOMATIC_CROSSMOUNT_TEST)
    run_only_if(conf.last_response.status_code == 201)
    run_only_if(not AUTOMATIC_CROSSMOUNT_ENABLED)
    r = conf.request("POST", "/v2/<name>/blobs/uploads/", name=CROSSMOUNT_NAMESPACE,
                     params={"mount": conf.blob_a.digest})
    expect_status(r, 202)


# ---- Manifest Upload

def test_push_get_nonexistent_manifest_should_return_404(conf):
    """Push / Manifest Upload / GET nonexistent manifest should return 404"""
    r = conf.request("GET", f"/v2/<name>/manifests/{conf.nonexistent_manifest}")
    expect_status(r, 404)


def test_push_put_should_accept_a_manifest_upload(conf):
    """Push / Manifest Upload / PUT should accept a manifest upload (manifests[1] as
    test0..test3)"""
    for i in range(4):
        r = conf.put_manifest(f"test{i}", conf.manifests[1])
        expect_location(r)
        expect_status(r, 201)


def test_push_registry_should_accept_a_manifest_upload_with_no_layers(conf):
    """Push / Manifest Upload / Registry should accept a manifest upload with no layers"""
    r = conf.put_manifest(EMPTY_LAYER_TEST_TAG, conf.empty_layer_manifest)
    if r.status_code == 201:
        conf.empty_layer_manifest_ref = r.headers.get("Location", "")
        expect_location(r)
    else:
        warnings.warn(f"image manifest with no layers is not supported: {describe(r)}")


def test_push_get_request_to_manifest_url_digest_should_yield_200_response(conf):
    """Push / Manifest Upload / GET request to manifest URL (digest) should yield 200 response"""
    r = conf.request("GET", f"/v2/<name>/manifests/{conf.manifests[1].digest}", headers=ACCEPT_OCI)
    expect_status(r, 200)


# ---- Teardown

def _push_delete_manifests(conf):
    run_only_if(RUN_PUSH_SETUP)
    r = conf.request("DELETE", f"/v2/<name>/manifests/{conf.manifests[1].digest}")
    expect_status(r, "2xx", 405)
    if conf.empty_layer_manifest_ref != "":
        r = conf.request("DELETE", f"/v2/<name>/manifests/{conf.empty_layer_manifest.digest}")
        expect_status(r, "2xx", 405)


if DELETE_MANIFEST_BEFORE_BLOBS:
    def test_push_teardown_delete_manifest_created_in_tests(conf):
        """Push / Teardown / Delete manifest created in tests"""
        _push_delete_manifests(conf)


def test_push_teardown_delete_config_blob_created_in_tests(conf):
    """Push / Teardown / Delete config blob created in tests"""
    run_only_if(RUN_PUSH_SETUP)
    r = conf.request("DELETE", f"/v2/<name>/blobs/{conf.configs[1].digest}")
    expect_status(r, "2xx", 404, 405)


def test_push_teardown_delete_layer_blob_created_in_setup(conf):
    """Push / Teardown / Delete layer blob created in setup"""
    run_only_if(RUN_PUSH_SETUP)
    r = conf.request("DELETE", f"/v2/<name>/blobs/{conf.layer.digest}")
    expect_status(r, "2xx", 404, 405)


if not DELETE_MANIFEST_BEFORE_BLOBS:
    def test_push_teardown_delete_manifest_created_in_tests(conf):  # noqa: F811 (ordering variant)
        """Push / Teardown / Delete manifest created in tests"""
        _push_delete_manifests(conf)
