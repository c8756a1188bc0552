"""epctl end to end against real nodes of a 3-node site."""

import json
import socket
import time

import sitelib as sl


def one_line_error(p, rc):
    assert p.returncode == rc, (p.returncode, p.out, p.err)
    lines = p.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("epctl: "), p.err
    assert p.out == "", p.out
    return lines[0]


def test_epctl_members_tags_pins_blobs_stats(env):
    nodes, _ = env.site(3, join_timeout=5)
    n1, n2, n3 = nodes
    img = env.image("epctl")
    n1.push(img, "team/app", "v1")
    sl.wait_for(lambda: all(n.manifest_digest("team/app", "v1") == img.digest for n in nodes), 2,
                what="team/app:v1 on all")

    # members: the JSON document is the admin API's, the table says the same
    p = n2.epctl("members", json_out=True)
    names = sorted(m["name"] for m in p.doc["members"])
    assert names == ["n1", "n2", "n3"], p.doc
    for m in p.doc["members"]:
        assert set(m) == {"name", "cluster_address", "registry_address", "data_address", "state",
                          "last_seen_ms", "self", "blobs_announced", "access_fingerprint"}, m
        assert isinstance(m["blobs_announced"], int), m
    table = n2.epctl("members").out.splitlines()
    assert table[0].split() == ["NAME", "STATE", "LAST", "SEEN", "REGISTRY", "CLUSTER", "DATA"], table
    assert len(table) == 4, table

    # tags
    p = n3.epctl("tags", json_out=True)
    [t] = p.doc["tags"]
    assert set(t) == {"namespace", "repository", "tag", "digest", "media_type", "updated_by", "writer",
                      "updated_at_ms", "deleted", "conflicts"}, t
    # pushed from loopback on a node without users: the writer is "anonymous"
    assert (t["repository"], t["tag"], t["digest"], t["updated_by"], t["writer"], t["media_type"]) == (
        "team/app", "v1", img.digest, "n1", "anonymous", sl.OCI_MANIFEST), t
    assert abs(t["updated_at_ms"] / 1000 - time.time()) < 60, t
    out = n3.epctl("tags").out
    assert out.splitlines()[0].split() == ["REPOSITORY", "TAG", "DIGEST", "UPDATED", "BY", "USER",
                                            "CONFLICT"], out
    assert "team/app" in out and img.digest[:19] in out and "n1" in out, out
    assert n3.epctl("tags", "team/app", json_out=True).doc["tags"] == p.doc["tags"]
    assert n3.epctl("tags", "team/nothere", json_out=True).doc == {"tags": []}
    assert "no tags" in n3.epctl("tags", "team/nothere").out

    # pins: the push auto-pinned the image (auto-pin defaults to true) with the
    # default factor "all", on every node; n1, which got the push, holds it
    def auto_pinned():
        docs = {n.name: n.epctl("pins", json_out=True).doc["pins"] for n in nodes}
        ok = all([(x["ref"], x["replicas"]) for x in d] == [("team/app:v1", "all")] and "n1" in d[0]["holders"]
                 for d in docs.values())
        return docs if ok else None

    try:
        sl.wait_for(auto_pinned, 5, interval=0.2, what="the auto-pin, held by n1, on every node")
    except AssertionError:
        raise AssertionError("pins after the push: %s" % {n.name: n.epctl("pins", json_out=True).doc
                                                          for n in nodes})
    # the factor changed on n1 with `pin add`, replicated to every node
    p = n1.epctl("pin", "add", "team/app:v1", "--replicas", "2")
    assert "team/app:v1" in p.out, p.out

    def pinned_everywhere():
        docs = {n.name: n.epctl("pins", json_out=True).doc["pins"] for n in nodes}
        return docs if all([x["replicas"] for x in d] == [2] for d in docs.values()) else None

    docs, dt = sl.wait_for(pinned_everywhere, 3, interval=0.1, what="the pin on every node")
    sl.record("pin add on n1 -> visible on all (via epctl)", "%.0f ms" % (dt * 1000))
    for name, [pin] in docs.items():
        assert set(pin) >= {"ref", "replicas", "pinned_by", "pinned_at_ms", "target", "holders"}, pin
        assert (pin["ref"], pin["replicas"], pin["pinned_by"]) == ("team/app:v1", 2, "n1"), (name, pin)
        assert pin["target"] == 2, (name, pin)
        assert isinstance(pin["holders"], list)
    out = n3.epctl("pins").out
    assert out.splitlines()[0].split()[:3] == ["REF", "REPLICAS", "COPIES"], out
    assert "team/app:v1" in out and "n1" in out, out

    # --replicas all, and a second pin
    n3.epctl("pin", "add", "team/other:v9", "--replicas", "all")
    sl.wait_for(lambda: len(n1.epctl("pins", json_out=True).doc["pins"]) == 2, 3, what="second pin on n1")
    [other] = [p for p in n1.epctl("pins", json_out=True).doc["pins"] if p["ref"] == "team/other:v9"]
    assert other["replicas"] == "all" and other["pinned_by"] == "n3", other
    assert other["target"] == 3, other  # "all" is every live member

    # pin rm on another node than the one that pinned it: gone everywhere
    p = n2.epctl("pin", "rm", "team/app:v1")
    assert "team/app:v1" in p.out, p.out
    sl.wait_for(lambda: all([x["ref"] for x in n.epctl("pins", json_out=True).doc["pins"]] == ["team/other:v9"]
                            for n in nodes), 3, what="pin removed everywhere")
    # removing it again: a failed command, one line on stderr, exit 1
    err = one_line_error(n2.epctl("pin", "rm", "team/app:v1", check=False), 1)
    assert "team/app:v1" in err, err
    err = one_line_error(n1.epctl("pin", "rm", "never/pinned:x", check=False), 1)
    err = one_line_error(n1.epctl("pin", "rm", "never/pinned:x", check=False, json_out=True), 1)

    # blobs: what n1 stores (it got the push) as a document and a table
    doc = n1.epctl("blobs", json_out=True).doc
    assert isinstance(doc["blobs"], list) and doc["blobs"], doc
    for b in doc["blobs"]:
        assert {"digest", "size", "complete"} <= set(b), b
    digests = {b["digest"] for b in doc["blobs"]}
    manifest = json.loads(img.manifest_raw)
    want = {manifest["config"]["digest"]} | {l["digest"] for l in manifest["layers"]}
    assert want <= digests, (want, digests)
    assert all(b["complete"] for b in doc["blobs"] if b["digest"] in want)
    assert "DIGEST" in n1.epctl("blobs").out
    # stats: a document with the byte counters
    doc = n1.epctl("stats", json_out=True).doc
    for k in ("bytes_to_clients", "bytes_from_upstream", "bytes_from_peers", "peers"):
        assert k in doc, doc
    assert doc["bytes_from_clients"] > 0 if "bytes_from_clients" in doc else True
    assert n1.epctl("stats").out.strip()


def test_epctl_usage_and_failures(env):
    n1 = env.node("n1", key=env.key)
    for args in (["bogus"], ["pin"], ["pin", "add"], ["pin", "rm"], ["pin", "frob", "x"],
                 ["pin", "add", "x:1", "--replicas", "0"], ["pin", "add", "x:1", "--replicas", "-1"],
                 ["pin", "add", "x:1", "--replicas", "abc"], ["members", "extra"], ["tags", "a", "b"],
                 ["--no-such-flag", "members"], ["keygen"]):
        one_line_error(n1.epctl(*args, check=False), 2)
        one_line_error(n1.epctl(*args, check=False, json_out=True), 2)
    p = sl.run([sl.EPCTL], check=False)
    assert p.returncode == 2, (p.returncode, p.out, p.err)
    p = sl.run([sl.EPCTL, "--admin", "ftp://127.0.0.1:1", "members"], check=False)
    one_line_error(p, 2)

    # nobody listening: a failed command
    port = sl.free_port()
    for args in (["members"], ["tags"], ["pins"], ["pin", "add", "a/b:c"], ["pin", "rm", "a/b:c"], ["blobs"],
                 ["stats"], ["leave"]):
        p = sl.run([sl.EPCTL, "--admin", "http://127.0.0.1:%d" % port] + args, check=False)
        err = one_line_error(p, 1)
        assert "127.0.0.1:%d" % port in err, err
    # a listener that never answers: a failed command too, in bounded time
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        t0 = time.monotonic()
        p = sl.run([sl.EPCTL, "--admin", "http://127.0.0.1:%d" % s.getsockname()[1], "members"], check=False,
                   timeout=60)
        dt = time.monotonic() - t0
    one_line_error(p, 1)
    sl.record("epctl against a silent admin port gives up after", "%.1f s" % dt)
    assert dt < 30
    # the registry port is not the admin API
    one_line_error(sl.run([sl.EPCTL, "--admin", n1.url, "members"], check=False), 1)

    # keygen never replaces a key by accident; --force does
    key = env.dir / "k.key"
    sl.run([sl.EPCTL, "keygen", key])
    first = key.read_text()
    err = one_line_error(sl.run([sl.EPCTL, "keygen", key], check=False), 1)
    assert "--force" in err and key.read_text() == first, err
    sl.run([sl.EPCTL, "keygen", "--force", key])
    assert key.read_text() != first and len(key.read_text().strip()) == 64
    assert key.stat().st_mode & 0o777 == 0o600


def test_epctl_leave(env):
    nodes, _ = env.site(3, join_timeout=5)
    n1, n2, n3 = nodes
    p = n3.epctl("leave")
    assert p.out.strip(), p.out
    _, dt = sl.wait_for(lambda: n1.states().get("n3") == "left" and n2.states().get("n3") == "left", 3,
                        what="n3 left on n1 and n2")
    sl.record("epctl leave on n3 -> left on n1, n2", "%.0f ms" % (dt * 1000))
    for n in (n1, n2):
        m = n.metrics()
        assert m['edgepier_site_members{state="left"}'] == 1, m
        assert m['edgepier_site_members{state="alive"}'] == 1, m
        assert "member n3 is left" in n.log_text()
    # it stays left (not suspect/dead/alive) while the site goes on, and does
    # not get the site's new tags pushed to it any more
    time.sleep(7)
    assert n1.states().get("n3") == "left" and n2.states().get("n3") == "left", \
        (n1.states(), n2.states())
    assert n1.states().get("n2") == "alive"
    # a left node restarted is a new incarnation: it rejoins
    n3.stop()
    n3.start()
    sl.wait_for(lambda: sl.full_mesh(nodes), 5, what="n3 rejoined after a restart")


def test_epctl_shell_from_stdin(env):
    nodes, _ = env.site(2, join_timeout=5)
    n1, n2 = nodes
    img = env.image("shell")
    n1.push(img, "team/app", "v1")
    sl.wait_for(lambda: n2.manifest_digest("team/app", "v1") == img.digest, 2, what="tag on n2")
    script = "\n".join([
        "members",
        "tags team/app",
        "pins",
        "pin add team/shell:v1 --replicas 2",
        "pins --json",
        "bogus",
        "pin rm never/pinned:x",
        "help",
        "pin rm team/shell:v1",
        "pins",
        "quit",
        "members",  # after quit: not run
    ]) + "\n"
    p = n2.epctl("shell", input=script.encode(), check=False)
    out = p.out
    print(out)
    print(p.err)
    # a script with failed lines fails, with the status of the first failure (bogus: usage, 2)
    assert p.returncode == 2, (p.returncode, p.err)
    assert "n1" in out and "n2 (self)" in out, out
    assert out.count("NAME ") == 1, "commands after quit ran:\n" + out
    assert "team/app" in out and img.digest[:19] in out, out
    assert "pinned team/shell:v1" in out
    assert '"pins"' in out and '"replicas": 2' in out and '"ref": "team/shell:v1"' in out, out
    assert "unpinned team/shell:v1" in out or "removed" in out, out
    # the last `pins` table lists the push's auto-pin, not the removed pin
    last = out[out.rindex("REF "):]
    assert "team/app:v1" in last and "team/shell:v1" not in last, out
    # failed lines are reported on stderr, one line each, and the shell goes on
    errs = p.err.strip().splitlines()
    assert any("bogus" in e for e in errs) and any("never/pinned:x" in e for e in errs), p.err
    assert len(errs) == 2, p.err
    # the pin the shell removed is gone on n1 as well
    sl.wait_for(lambda: [x["ref"] for x in n1.epctl("pins", json_out=True).doc["pins"]] == ["team/app:v1"],
                3, what="only the auto-pin left on n1")
    # end of input without quit ends the shell too
    p = n2.epctl("shell", input=b"members\n")
    assert p.returncode == 0 and "n2 (self)" in p.out
    p = n2.epctl("shell", input=b"")
    assert p.returncode == 0


def test_left_node_stays_left(env):
    """A node that left and keeps running (nobody stopped the process) must
    stay `left` on the others, also when a client pushes to it: not come back
    `alive` with no heartbeats and then be reported suspect and dead."""
    nodes, _ = env.site(3, join_timeout=5)
    n1, n2, n3 = nodes
    n3.epctl("leave")
    sl.wait_for(lambda: n1.states().get("n3") == "left" and n2.states().get("n3") == "left", 3,
                what="n3 left")
    img = env.image("after-leave")
    n3.push(img, "team/after-leave", "v1")
    seen = {"n1": set(), "n2": set()}
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        for n in (n1, n2):
            seen[n.name].add(n.states().get("n3"))
        time.sleep(0.1)
    assert seen == {"n1": {"left"}, "n2": {"left"}}, (
        "after `epctl leave` and a push to the left node, the others saw n3 as %s; n1's log:\n%s"
        % (seen, sl.log_tail(n1.log, 6)))
