"""Who may write (#15), with real clients against a node that has users, rules and HTTPS.

The node: htpasswd users alice (all rights on team/*), bob (pull only) and carol
(pull and delete on team/*); its registry listener serves HTTPS with a certificate
of a private CA. Anonymous clients may pull. Everything on 127.0.0.1.
"""

import json
import shutil
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import (_registry_for_reports, _start_edgepier, make_image, make_tls, run, stop_process,
                      write_htpasswd)

USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
RULES = """# who     rights             repositories
group writers: alice
@writers  all                team/*
bob       pull               *
carol     pull,delete        team/*
"""


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    d = tmp_path_factory.mktemp("secured")
    tls = make_tls(d / "tls")
    htpasswd = write_htpasswd(d / "htpasswd", USERS)
    access = d / "access"
    access.write_text(RULES)
    reg = _start_edgepier(d, ["--edgepier.htpasswd-file=%s" % htpasswd, "--edgepier.access-file=%s" % access,
                              "--edgepier.tls-cert-file=%s" % tls["cert"],
                              "--edgepier.tls-key-file=%s" % tls["key"]], scheme="https")
    certs = d / "certs.d"          # containers/image: a directory with ca.crt
    certs.mkdir()
    shutil.copy(tls["ca"], certs / "ca.crt")
    reg.tls, reg.certs, reg.dir, reg.htpasswd = tls, certs, d, htpasswd
    _registry_for_reports.append(reg)
    try:
        yield reg
    finally:
        stop_process(reg.proc)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return make_image(tmp_path_factory.mktemp("auth-img") / "img", "edgepier-auth", 2, 1)


def skopeo_push(reg, image, ref, creds=None, check=True):
    cmd = ["skopeo", "copy", "--retry-times", "0", "--dest-cert-dir", reg.certs]
    if creds:
        cmd += ["--dest-creds", creds]
    return run(cmd + ["oci:%s:latest" % image["dir"], "docker://%s/%s" % (reg.host, ref)], check=check)


def https_get(reg, path, headers=None, ca=None):
    """(status, headers, body) of a GET on the registry over HTTPS, verified against the CA."""
    context = ssl.create_default_context(cafile=str(ca or reg.tls["ca"]))
    req = urllib.request.Request("https://%s%s" % (reg.host, path), headers=headers or {})
    try:
        with urllib.request.urlopen(req, context=context, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def admin_tags(reg):
    with urllib.request.urlopen(reg.admin + "/admin/v1/tags", timeout=10) as r:
        return {(t["repository"], t["tag"]): t for t in json.load(r)["tags"]}


def test_pushes_need_a_user_with_push_rights(secured, image):
    anonymous = skopeo_push(secured, image, "team/app:v1", check=False)
    assert anonymous.returncode != 0
    assert "authentication required to push team/app" in anonymous.err, anonymous.err
    bob = skopeo_push(secured, image, "team/app:v1", creds="bob:bob-pw", check=False)
    assert bob.returncode != 0 and "denied" in bob.err, bob.err
    wrong = skopeo_push(secured, image, "team/app:v1", creds="alice:guess", check=False)
    assert wrong.returncode != 0 and "invalid username or password" in wrong.err, wrong.err
    assert (("team", "app"), "v1") not in admin_tags(secured)

    skopeo_push(secured, image, "team/app:v1", creds="alice:alice-pw")
    # alice's rights stop at team/*
    outside = skopeo_push(secured, image, "other/app:v1", creds="alice:alice-pw", check=False)
    assert outside.returncode != 0 and "alice may not push other/app" in outside.err, outside.err

    # anybody pulls, over HTTPS verified against the CA
    raw = run(["skopeo", "inspect", "--cert-dir", secured.certs, "--raw",
               "docker://%s/team/app:v1" % secured.host]).stdout
    assert raw == image["manifest_raw"]

    # who set the tag: in the replicated index and in the log
    tag = admin_tags(secured)[("team/app", "v1")]
    assert tag["writer"] == "alice" and tag["digest"] == image["manifest"], tag
    log = Path(secured.log).read_text()
    assert ("write: push user=alice repository=team/app reference=v1 digest=%s client=127.0.0.1"
            % image["manifest"]) in log, log[-3000:]


def test_the_catalog_lists_what_the_caller_may_pull(secured, image):
    skopeo_push(secured, image, "team/listed:v1", creds="alice:alice-pw")
    status, _, body = https_get(secured, "/v2/_catalog")
    assert status == 200 and "team/listed" in json.loads(body)["repositories"]
    secured_rules = secured.dir / "access"
    # rules without anonymous pulls hide everything from anonymous clients
    secured_rules.write_text(RULES + "anonymous none\n")
    try:
        def hidden():
            status, headers, body = https_get(secured, "/v2/team/listed/tags/list")
            return (status, headers, json.loads(body)) if status == 401 else None
        status, headers, body = wait(hidden, 10, "the access file reloaded")
        assert body["errors"][0]["code"] == "UNAUTHORIZED"
        assert headers["WWW-Authenticate"] == (
            'Bearer realm="https://%s/v2/token",service="edgepier",scope="repository:team/listed:pull"'
            % secured.host)
        status, _, body = https_get(secured, "/v2/_catalog")
        assert json.loads(body)["repositories"] == []
    finally:
        secured_rules.write_text(RULES)
        wait(lambda: https_get(secured, "/v2/team/listed/tags/list")[0] == 200, 10, "the rules restored")


def test_deletes_need_delete_rights(secured, image):
    skopeo_push(secured, image, "team/doomed:v1", creds="alice:alice-pw")
    ref = "docker://%s/team/doomed:v1" % secured.host
    anonymous = run(["skopeo", "delete", "--cert-dir", secured.certs, ref], check=False)
    assert anonymous.returncode != 0 and "authentication required to delete" in anonymous.err, anonymous.err
    bob = run(["skopeo", "delete", "--cert-dir", secured.certs, "--creds", "bob:bob-pw", ref], check=False)
    assert bob.returncode != 0 and "bob may not delete team/doomed" in bob.err, bob.err
    assert https_get(secured, "/v2/team/doomed/manifests/v1",
                     {"Accept": "application/vnd.oci.image.manifest.v1+json"})[0] == 200
    run(["skopeo", "delete", "--cert-dir", secured.certs, "--creds", "carol:carol-pw", ref])
    assert https_get(secured, "/v2/team/doomed/manifests/v1")[0] == 404
    assert "write: delete user=carol repository=team/doomed" in Path(secured.log).read_text()


def test_podman_login_then_push(secured, image, podman, tmp_path):
    skopeo_push(secured, image, "team/base:v1", creds="alice:alice-pw")
    authfile = tmp_path / "auth.json"
    common = ["--cert-dir", str(secured.certs), "--authfile", str(authfile)]
    bad = podman("login", *common, "-u", "alice", "-p", "guess", secured.host, check=False)
    assert bad.returncode != 0, bad.out
    podman("login", *common, "-u", "alice", "-p", "alice-pw", secured.host)
    podman("pull", *common, "%s/team/base:v1" % secured.host, timeout=120)
    podman("push", *common, "%s/team/base:v1" % secured.host, "%s/team/podman:v1" % secured.host, timeout=120)
    assert admin_tags(secured)[("team/podman", "v1")]["writer"] == "alice"
    podman("logout", "--authfile", str(authfile), secured.host)
    refused = podman("push", *common, "%s/team/base:v1" % secured.host, "%s/team/podman:v2" % secured.host,
                     check=False, timeout=120)
    assert refused.returncode != 0 and "authentication required" in refused.err, refused.err


def hosts_dir(reg, root, ca):
    d = Path(root) / reg.host
    d.mkdir(parents=True)
    (d / "hosts.toml").write_text('server = "https://%s"\n[host."https://%s"]\n  ca = "%s"\n'
                                  '  capabilities = ["pull", "resolve", "push"]\n' % (reg.host, reg.host, ca))
    return str(root)


def test_containerd_over_https_with_a_ca_file(secured, image, containerd, tmp_path):
    skopeo_push(secured, image, "team/ctr:v1", creds="alice:alice-pw")
    ref = "%s/team/ctr:v1" % secured.host
    good = hosts_dir(secured, tmp_path / "hosts", secured.tls["ca"])
    containerd.ctr("images", "pull", "--hosts-dir", good, ref)
    rows = containerd.ctr("images", "ls").out
    assert ref in rows and image["manifest"] in rows, rows

    # a CA that did not sign the node's certificate: refused by the client
    other = make_tls(tmp_path / "other-tls", name="other")
    untrusted = hosts_dir(secured, tmp_path / "untrusted", other["ca"])
    p = containerd.ctr("images", "pull", "--hosts-dir", untrusted, "%s/team/app:v1" % secured.host, check=False)
    assert p.returncode != 0 and "certificate" in p.err, p.err

    # push through the token flow: alice may, bob may not
    new = "%s/team/ctr-pushed:v1" % secured.host
    containerd.ctr("images", "tag", ref, new)
    bob = containerd.ctr("images", "push", "--hosts-dir", good, "--user", "bob:bob-pw", new, check=False)
    assert bob.returncode != 0, bob.out
    containerd.ctr("images", "push", "--hosts-dir", good, "--user", "alice:alice-pw", new)
    assert admin_tags(secured)[("team/ctr-pushed", "v1")]["writer"] == "alice"


def test_new_users_and_certificates_take_effect_without_a_restart(secured, image, tmp_path):
    write_htpasswd(secured.htpasswd, dict(USERS, dave="dave-pw"))
    secured.dir.joinpath("access").write_text(RULES + "dave push,pull team/dave\n")

    def dave_pushes():
        return skopeo_push(secured, image, "team/dave:v1", creds="dave:dave-pw", check=False).returncode == 0
    wait(dave_pushes, 15, "dave's account to be loaded")

    # a new certificate from another CA, written in place: new connections get it
    fresh = make_tls(tmp_path / "fresh", name="fresh")
    shutil.copy(fresh["key"], secured.tls["key"])
    shutil.copy(fresh["cert"], secured.tls["cert"])

    def served_by_fresh_ca():
        try:
            return https_get(secured, "/v2/team/dave/tags/list", ca=fresh["ca"])[0] == 200
        except (ssl.SSLError, urllib.error.URLError):
            return False
    wait(served_by_fresh_ca, 15, "the new certificate to be served")
    with pytest.raises(urllib.error.URLError):
        https_get(secured, "/v2/", ca=secured.dir / "tls" / "ca.pem")
    shutil.copy(fresh["ca"], secured.certs / "ca.crt")  # later tests trust the new CA


def test_plain_http_on_the_https_port_is_told_to_use_https(secured):
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen("http://%s/v2/" % secured.host, timeout=5).read()
    assert refused.value.code == 400
    body = json.loads(refused.value.read())
    assert body["errors"][0]["message"].startswith("this registry listener serves HTTPS"), body
    assert secured.proc.poll() is None


def wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(0.2)
