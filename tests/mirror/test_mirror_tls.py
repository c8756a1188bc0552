"""HTTPS upstream with a private CA: trusted through upstream-ca-files, and a
clear, fast error without it."""

import mirrorlib as ml


def test_https_upstream_with_private_ca(env, images):
    img = images["a"]
    pki = ml.make_ca(env.dir / "pki")
    up = env.upstream(tls=pki)
    assert up.url.startswith("https://127.0.0.1:")
    up.push(img, "app")

    node = env.node({"ns1": up.url}, default="ns1", ca_files={"ns1": pki["ca"]})
    r = node.manifest("app", "v1", ns="ns1")
    assert r.status_code == 200, r.text
    assert r.headers["Docker-Content-Digest"] == img["manifest"]
    out = env.dir / "pull"
    node.pull("app", "v1", out)
    assert ml.oci_layout_manifest_digest(out) == img["manifest"]
    assert ml.oci_layout_blobs(out) == img["blobs"]

    # the same upstream without the CA: the certificate does not verify; an error
    # that says so, at once, for manifests and blobs, and skopeo fails
    untrusting = env.node({"ns1": up.url}, default="ns1")
    r = untrusting.manifest("app", "v1", ns="ns1")
    assert r.status_code >= 400, (r.status_code, r.text)
    assert r.seconds < 5, "took %.1fs" % r.seconds
    code, message = ml.oci_error(r)
    assert code, r.text
    assert any(w in message.lower() for w in ("certificate", "tls", "verify", "ssl")), message
    b = untrusting.blob("app", img["layer_digests"][0], ns="ns1", timeout=10)
    assert b.status_code >= 400 and b.seconds < 5, (b.status_code, b.seconds, b.text)
    p = untrusting.pull("app", "v1", env.dir / "untrusted", check=False)
    assert p.returncode != 0 and p.seconds < 30
    assert "ns1/app" not in untrusting.catalog()
    assert untrusting.alive()

    # a CA file for another namespace does not make this one trusted
    other = env.node({"ns1": up.url, "ns2": "http://127.0.0.1:9"}, default="ns1",
                     ca_files={"ns2": pki["ca"]})
    r = other.manifest("app", "v1", ns="ns1")
    assert r.status_code >= 400, (r.status_code, r.text)


def test_https_upstream_certificate_must_name_the_host(env, images):
    """A certificate from the trusted CA, but for another name: refused."""
    pki = ml.make_ca(env.dir / "pki")
    wrong = ml.make_server_cert(pki, env.dir / "pki", "DNS:other.example", name="wrong")
    up = env.upstream(tls=dict(wrong, ca=pki["ca"]))
    node = env.node({"ns1": up.url}, default="ns1", ca_files={"ns1": pki["ca"]})
    r = node.manifest("app", "v1", ns="ns1")
    assert r.status_code >= 400 and r.seconds < 5, (r.status_code, r.seconds, r.text)
    code, message = ml.oci_error(r)
    assert any(w in message.lower() for w in ("certificate", "tls", "verify", "ssl")), message
    assert up.requests_from_node() == []


def test_missing_ca_file_is_a_startup_error(env):
    """Like a missing upstream-credentials-file (which stops the node), a CA file
    that cannot be read is a bad setting: the node should not start with it."""
    try:
        node = env.node({"ns1": "https://127.0.0.1:9"}, default="ns1",
                        ca_files={"ns1": env.dir / "no-such-ca.pem"})
    except RuntimeError:
        return  # refused to start: as expected
    r = node.manifest("app", "v1", ns="ns1")
    raise AssertionError("node started with an unreadable upstream-ca-files entry; a request then "
                         "answers %s %s" % (r.status_code, r.text[:300]))
