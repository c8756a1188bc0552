"""The replicated tag index: a push on one node resolves on all, deletes too."""

import threading
import time

import sitelib as sl


def poll_until(pred, timeout, interval=0.005):
    t0 = time.monotonic()
    while True:
        if pred():
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            return None
        time.sleep(interval)


def test_push_replicates_within_a_second_and_delete_follows(env):
    (n1, n2, n3), _ = env.site(3, join_timeout=5)
    img = env.image("repl")
    # blobs and the manifest reach n1 with skopeo under another tag first; the
    # timed step is then only the tag write, so the clock starts at the PUT
    n1.push(img, "team/app", "staging")
    assert n1.manifest_digest("team/app", "staging") == img.digest
    assert n3.manifest_digest("team/app", "v1") is None

    t0 = time.monotonic()
    n1.put_manifest("team/app", "v1", img.manifest_raw)
    dt = poll_until(lambda: n3.manifest_digest("team/app", "v1") == img.digest, 5)
    assert dt is not None, "team/app:v1 pushed on n1 never resolved on n3"
    total = time.monotonic() - t0
    sl.record("tag replication n1 -> n3 (PUT start -> GET 200 on n3)", "%.1f ms" % (dt * 1000))
    assert total < 1.0, "replication took %.0f ms" % (total * 1000)

    # the manifest served by n3 is byte for byte the pushed one
    status, digest, body = n3.manifest("team/app", "v1")
    assert (status, digest, body) == (200, img.digest, img.manifest_raw)
    # n1 sends the delta to n2 and n3 at once: n2 may be a moment behind n3,
    # but within the same second
    assert poll_until(lambda: n2.manifest_digest("team/app", "v1") == img.digest, 1) is not None
    total = time.monotonic() - t0
    assert total < 1.0, "replication to n2 took %.0f ms" % (total * 1000)
    # and so are tag listing and the index on every node
    for n in (n1, n2, n3):
        r = n.session.get(n.url + "/v2/team/app/tags/list", timeout=5)
        assert r.status_code == 200 and "v1" in r.json()["tags"], (n.name, r.text)
        entry = [t for t in n.tags() if t["repository"] == "team/app" and t["tag"] == "v1"]
        assert len(entry) == 1, (n.name, n.tags())
        assert entry[0]["digest"] == img.digest and entry[0]["updated_by"] == "n1", entry
        assert entry[0]["deleted"] is False and entry[0]["conflicts"] == [], entry

    # a skopeo push is timed end to end too (from skopeo's exit)
    img2 = env.image("repl-2")
    n1.push(img2, "team/other", "v1")
    dt2 = poll_until(lambda: n3.manifest_digest("team/other", "v1") == img2.digest, 5)
    assert dt2 is not None
    sl.record("tag replication n1 -> n3 after skopeo exits", "%.1f ms" % (dt2 * 1000))

    # delete on n2 -> gone on n1 and n3
    t0 = time.monotonic()
    n2.delete_tag("team/app", "v1")
    gone = poll_until(lambda: n1.manifest_digest("team/app", "v1") is None
                      and n3.manifest_digest("team/app", "v1") is None, 5)
    assert gone is not None, "tag deleted on n2 still resolves: n1=%s n3=%s" % (
        n1.manifest_digest("team/app", "v1"), n3.manifest_digest("team/app", "v1"))
    sl.record("tag delete n2 -> gone on n1 and n3", "%.1f ms" % (gone * 1000))
    assert gone < 1.0
    for n in (n1, n2, n3):
        status, _, _ = n.manifest("team/app", "v1")
        assert status == 404, (n.name, status)
        r = n.session.get(n.url + "/v2/team/app/tags/list", timeout=5)
        assert "v1" not in (r.json().get("tags") or []), (n.name, r.text)
        # the other tag of the repository is untouched
        assert n.manifest_digest("team/app", "staging") == img.digest, n.name
        # manifest by digest stays (a tag delete untags only)
        assert n.manifest_digest("team/app", img.digest) == img.digest, n.name


def test_retag_moves_everywhere_and_repush_after_delete(env):
    """A tag moved to another image follows on every node; a tag deleted and
    pushed again (a newer write than the tombstone) comes back everywhere."""
    nodes, _ = env.site(3, join_timeout=5)
    n1, n2, n3 = nodes
    a, b = env.image("move-a"), env.image("move-b")
    n1.push(a, "team/move", "v1")
    sl.wait_for(lambda: all(n.manifest_digest("team/move", "v1") == a.digest for n in nodes), 2,
                what="v1 -> a on all")
    n3.push(b, "team/move", "v1")
    sl.wait_for(lambda: all(n.manifest_digest("team/move", "v1") == b.digest for n in nodes), 2,
                what="v1 -> b on all")
    n2.delete_tag("team/move", "v1")
    sl.wait_for(lambda: all(n.manifest_digest("team/move", "v1") is None for n in nodes), 2,
                what="v1 deleted on all")
    n1.push(a, "team/move", "v1")
    sl.wait_for(lambda: all(n.manifest_digest("team/move", "v1") == a.digest for n in nodes), 2,
                what="v1 -> a again on all")
    for n in nodes:
        [entry] = [t for t in n.tags() if t["repository"] == "team/move"]
        assert entry["digest"] == a.digest and not entry["deleted"], (n.name, entry)


def test_many_tags_from_every_node(env):
    """30 tags written on all three nodes at once converge to the same index."""
    nodes, _ = env.site(3, join_timeout=5)
    img = env.image("many")
    # blobs are not replicated yet: each node gets them (and tag "base") by skopeo
    for n in nodes:
        n.push(img, "team/many", "base")
    sl.wait_for(lambda: all(n.manifest_digest("team/many", "base") for n in nodes), 2, what="base")
    errors = []

    def writer(node, k):
        try:
            for i in range(10):
                node.put_manifest("team/many", "t%d-%d" % (k, i), img.manifest_raw)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((node.name, e))

    threads = [threading.Thread(target=writer, args=(n, k)) for k, n in enumerate(nodes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    want = {"base"} | {"t%d-%d" % (k, i) for k in range(3) for i in range(10)}

    def converged():
        for n in nodes:
            r = n.session.get(n.url + "/v2/team/many/tags/list", timeout=5)
            if set(r.json().get("tags") or []) != want:
                return False
        return True

    _, dt = sl.wait_for(converged, 3, what="all 31 tags on all nodes")
    sl.record("30 concurrent tag writes on 3 nodes -> converged", "%.0f ms after the last write" % (dt * 1000))
    entries = [sorted((t["tag"], t["digest"]) for t in n.tags("team/many")) for n in nodes]
    assert entries[0] == entries[1] == entries[2]
    assert len(entries[0]) == 31
