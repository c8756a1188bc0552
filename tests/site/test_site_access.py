"""Who may write, across a site (#15): every member makes the same decision.

The nodes share one htpasswd file and one access file (as a DaemonSet mounts one
Secret and one ConfigMap), and derive the token key from the site key, so a token
any member issued is accepted by all of them, and nothing else is.
"""

import base64
import json
import time

import requests

import sitelib as sl
from eptest import write_htpasswd

RULES = "group writers: alice\n@writers all team/*\nbob pull *\n"


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


def token(node, auth, scope):
    r = requests.get(node.url + "/v2/token", params={"service": "edgepier", "scope": scope}, headers=auth,
                     timeout=10)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()["token"]


def start_upload(node, repo, headers):
    """POST an upload (needs push rights): (status, body); a started upload is cancelled."""
    r = requests.post("%s/v2/%s/blobs/uploads/" % (node.url, repo), headers=headers, timeout=10)
    if r.status_code == 202:
        d = requests.delete(node.url + r.headers["Location"], headers=headers, timeout=10)
        assert d.status_code == 204, (d.status_code, d.text)
    return r.status_code, r.text


def secured_site(env, count, rules=RULES, ttl="3s"):
    htpasswd = write_htpasswd(env.dir / "htpasswd", {"alice": "alice-pw", "bob": "bob-pw"})
    access = env.dir / "access"
    access.write_text(rules)
    extra = ["--edgepier.htpasswd-file=%s" % htpasswd, "--edgepier.access-file=%s" % access,
             "--edgepier.token-ttl=" + ttl]
    first = env.node("n1", key=env.key, extra=extra)
    others = [env.node("n%d" % i, key=env.key, seeds=[first.cluster_address], extra=extra)
              for i in range(2, count + 1)]
    nodes = [first] + others
    sl.wait_for(lambda: sl.full_mesh(nodes), 20, what="the site's full mesh")
    return nodes, extra


def test_every_member_refuses_what_one_would(env):
    nodes, _ = secured_site(env, 3)
    n1, n2, n3 = nodes
    prod, other = env.image("access-prod"), env.image("access-other")
    env.skopeo(["copy", "--retry-times", "0", "--dest-tls-verify=false", "--dest-creds", "alice:alice-pw",
                "oci:%s:%s" % (prod.dir, prod.tag), "docker://%s/team/app:prod" % n1.registry_address])
    sl.wait_for(lambda: all(n.manifest_digest("team/app", "prod") == prod.digest for n in nodes), 5,
                what="team/app:prod on every node")

    # what the issue saw: an anonymous client overwrote the tag through n3 and deleted it through n2
    p = env.skopeo(["copy", "--retry-times", "0", "--dest-tls-verify=false",
                    "oci:%s:%s" % (other.dir, other.tag), "docker://%s/team/app:prod" % n3.registry_address],
                   check=False)
    assert p.returncode != 0 and "authentication required" in p.err, p.err
    r = requests.delete("%s/v2/team/app/manifests/prod" % n2.url, timeout=10)
    assert r.status_code == 401 and r.json()["errors"][0]["code"] == "UNAUTHORIZED", r.text
    assert r.headers["WWW-Authenticate"].startswith('Bearer realm="%s/v2/token"' % n2.url), r.headers
    r = requests.delete("%s/v2/team/app/manifests/prod" % n2.url, headers=basic("bob", "bob-pw"), timeout=10)
    assert r.status_code == 403 and r.json()["errors"][0]["code"] == "DENIED", r.text
    time.sleep(1)
    assert [n.manifest_digest("team/app", "prod") for n in nodes] == [prod.digest] * 3

    # who set the tag, on a node that did not take the push
    [tag] = [t for t in n3.tags() if t["repository"] == "team/app" and t["tag"] == "prod"]
    assert (tag["writer"], tag["updated_by"]) == ("alice", "n1"), tag
    row = [line for line in n3.epctl("tags").out.splitlines() if line.startswith("team/app")]
    assert len(row) == 1 and row[0].split()[5:7] == ["n1", "alice"], row

    # a token n1 issued works on every member, with the rights it carries
    alice = {"Authorization": "Bearer " + token(n1, basic("alice", "alice-pw"), "repository:team/app:pull,push")}
    bob = {"Authorization": "Bearer " + token(n1, basic("bob", "bob-pw"), "repository:team/app:pull,push")}
    for n in nodes:
        assert start_upload(n, "team/app", alice)[0] == 202, n.name
        status, body = start_upload(n, "team/app", bob)
        assert status == 403 and "bob may not push team/app" in body, (n.name, body)

    # forged: alice's claims with another signature, or bob's claims with alice's signature
    payload, signature = alice["Authorization"][7:].split(".")
    bob_payload = bob["Authorization"][7:].split(".")[0]
    for forged in ("%s.%s" % (bob_payload, signature), "%s.%s" % (payload, signature[::-1])):
        for n in nodes:
            status, body = start_upload(n, "team/app", {"Authorization": "Bearer " + forged})
            assert status == 401 and "token" in body, (n.name, status, body)

    # a token of another site is refused by every member
    stranger = env.node("stranger", key=env.keygen("other.key"), extra=["--edgepier.htpasswd-file=%s" % (
        env.dir / "htpasswd")])
    foreign = token(stranger, basic("alice", "alice-pw"), "repository:team/app:pull,push")
    for n in nodes:
        status, body = start_upload(n, "team/app", {"Authorization": "Bearer " + foreign})
        assert status == 401 and "not issued by this site" in body, (n.name, body)

    # expired (token-ttl 3s): refused by every member
    time.sleep(3.2)
    for n in nodes:
        status, body = start_upload(n, "team/app", alice)
        assert status == 401 and "token expired" in body, (n.name, body)


def test_a_member_with_other_rules_is_named(env):
    nodes, extra = secured_site(env, 2)
    n1, n2 = nodes
    odd_rules = env.dir / "odd-access"
    odd_rules.write_text(RULES + "bob all *\n")
    odd_extra = [e if not e.startswith("--edgepier.access-file=") else "--edgepier.access-file=%s" % odd_rules
                 for e in extra]
    n3 = env.node("n3", key=env.key, seeds=[n1.cluster_address], extra=odd_extra)
    sl.wait_for(lambda: sl.full_mesh([n1, n2, n3]), 20, what="the full mesh with n3")

    def fingerprints():
        return {name: m["access_fingerprint"] for name, m in n1.members().items()}
    prints = sl.wait_for(lambda: (lambda f: f if len(set(f.values())) == 2 and len(f) == 3 else None)(
        fingerprints()), 10, what="n3's fingerprint at n1")[0]
    assert prints["n1"] == prints["n2"] != prints["n3"], prints
    sl.wait_for(lambda: "member n3 serves other registry users or access rules" in n1.log_text(), 10,
                what="n1's warning about n3")

    # the operator fixes n3's file: it reloads, and the site agrees again
    odd_rules.write_text(RULES)
    sl.wait_for(lambda: len(set(fingerprints().values())) == 1, 15, what="one fingerprint on the site")
