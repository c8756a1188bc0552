"""A real network partition: three nodes in three network namespaces on one
bridge (10.78.0.0/24); node 3's port on the bridge goes down and comes back.

Both sides keep serving and accepting pushes; after the link heals every node
converges (all tags everywhere) within 5 s, and a tag written on both sides
during the partition ends up with one digest on every node, marked as a
conflict in `epctl tags`.
"""

import time

import pytest

import sitelib as sl

pytestmark = pytest.mark.usefixtures("netns_ok")

REPO = "team/part"


def digests(node, tags):
    return {t: node.manifest_digest(REPO, t) for t in tags}


def views(nodes):
    return {n.name: n.states() for n in nodes}


def wait_sides_apart(nodes, states, timeout):
    """Until n1, n2 see n3 in one of `states` and n3 sees n1, n2 so."""
    n1, n2, n3 = nodes

    def apart():
        return (n1.states().get("n3") in states and n2.states().get("n3") in states
                and n3.states().get("n1") in states and n3.states().get("n2") in states)

    _, dt = sl.wait_for(apart, timeout, interval=0.1,
                        what="both sides to see the other %s (views: see log)" % (states,))
    return dt


def partition_scenario(env, hold):
    """hold: "dead" (keep the link down until each side declared the other
    dead) or a number of seconds (shorter than the suspect timeout)."""
    lan = sl.Lan(env, 3)
    nodes, dt = env.site(3, lan=lan, join_timeout=5)
    n1, n2, n3 = nodes
    sl.record("join of 3 nodes in 3 network namespaces", "%.0f ms" % (dt * 1000))
    imgs = {k: env.image("part-%s-%s" % (hold, k)) for k in ("base", "left", "right", "same-l", "same-r")}

    n1.push(imgs["base"], REPO, "base")
    sl.wait_for(lambda: all(n.manifest_digest(REPO, "base") == imgs["base"].digest for n in nodes), 2,
                what="base on all")

    lan.cut(3)
    t_cut = time.monotonic()
    assert not lan.can_connect(1, 3), "the cut did not cut"
    assert lan.can_connect(1, 2) and lan.can_connect(3, 3)
    if hold == "dead":
        dt = wait_sides_apart(nodes, ("dead",), 12)
        sl.record("partition: both sides see the other dead after", "%.2f s" % dt)

    # both sides accept pushes and serve reads
    n1.push(imgs["left"], REPO, "left")
    n3.push(imgs["right"], REPO, "right")
    n2.push(imgs["same-l"], REPO, "same")
    n3.push(imgs["same-r"], REPO, "same")
    sl.wait_for(lambda: n2.manifest_digest(REPO, "left") == imgs["left"].digest, 2,
                what="'left' n1 -> n2 inside the majority side")
    assert digests(n1, ["base", "left", "right", "same"]) == {
        "base": imgs["base"].digest, "left": imgs["left"].digest, "right": None,
        "same": imgs["same-l"].digest}
    assert digests(n3, ["base", "left", "right", "same"]) == {
        "base": imgs["base"].digest, "left": None, "right": imgs["right"].digest,
        "same": imgs["same-r"].digest}
    if isinstance(hold, (int, float)):
        left = hold - (time.monotonic() - t_cut)
        assert left > 0, "pushes took longer than the partition was meant to last"
        time.sleep(left)
        # a short partition: no one was declared dead
        assert not any("dead" in v.values() for v in views(nodes).values()), views(nodes)
    assert not lan.can_connect(3, 1), "the link came back by itself"

    repairs_before = sum(n.metric("edgepier_anti_entropy_repairs_total") for n in nodes)
    lan.heal(3)
    t_heal = time.monotonic()

    want = {"base": imgs["base"].digest, "left": imgs["left"].digest, "right": imgs["right"].digest}

    def converged():
        seen = [digests(n, ["base", "left", "right", "same"]) for n in nodes]
        if any(s["same"] is None for s in seen):
            return False
        if any({k: s[k] for k in want} != want for s in seen):
            return False
        return len({s["same"] for s in seen}) == 1 and seen[0]["same"]

    try:
        winner, _ = sl.wait_for(converged, 5, interval=0.05, what="convergence within 5 s of healing")
    except AssertionError:
        raise AssertionError("not converged 5 s after healing: %s; members: %s" % (
            {n.name: digests(n, ["base", "left", "right", "same"]) for n in nodes}, views(nodes)))
    t_conv = time.monotonic() - t_heal
    sl.record("partition (%s) healed -> all tags on all nodes" % (
        "until dead" if hold == "dead" else "%.1f s" % hold), "%.0f ms" % (t_conv * 1000))
    assert winner in (imgs["same-l"].digest, imgs["same-r"].digest)
    if hold == "dead":
        # nothing was sent to members declared dead: anti-entropy did the repair
        repairs_after = sum(n.metric("edgepier_anti_entropy_repairs_total") for n in nodes)
        assert repairs_after > repairs_before, (repairs_before, repairs_after)

    # membership heals too
    _, dt = sl.wait_for(lambda: sl.full_mesh(nodes), 8, interval=0.1, what="full mesh after healing")
    sl.record("partition (%s) healed -> full mesh" % (
        "until dead" if hold == "dead" else "%.1f s" % hold), "%.0f ms" % ((time.monotonic() - t_heal) * 1000))

    # one index everywhere; the concurrent write is marked as a conflict
    loser = imgs["same-r"].digest if winner == imgs["same-l"].digest else imgs["same-l"].digest
    tables = {}
    for n in nodes:
        entries = {t["tag"]: t for t in n.tags(REPO)}
        assert set(entries) == {"base", "left", "right", "same"}, (n.name, entries)
        same = entries["same"]
        assert same["digest"] == winner, (n.name, same)
        assert [c["digest"] for c in same["conflicts"]] == [loser], (n.name, same)
        assert same["updated_by"] in ("n2", "n3")
        assert {c["updated_by"] for c in same["conflicts"]} | {same["updated_by"]} == {"n2", "n3"}
        for t in ("base", "left", "right"):
            assert entries[t]["conflicts"] == [], (n.name, entries[t])
        tables[n.name] = n.epctl("tags", REPO).out
        doc = n.epctl("tags", REPO, json_out=True).doc
        [same_json] = [t for t in doc["tags"] if t["tag"] == "same"]
        assert same_json["conflicts"] and same_json["digest"] == winner
    loser_by = ({"n2", "n3"} - {[t for t in n1.tags(REPO) if t["tag"] == "same"][0]["updated_by"]}).pop()
    for name, out in tables.items():
        rows = {l.split()[1]: l for l in out.strip().splitlines()[1:] if len(l.split()) > 1}
        assert set(["base", "left", "right", "same"]) <= set(rows), out
        # the table marks the conflicting row (with the losing digest and writer) and no other
        assert "vs %s (%s)" % (loser[:19], loser_by) in rows["same"], (name, out)
        for t in ("base", "left", "right"):
            assert " vs " not in rows[t], (name, out)
        assert "1 tag was written concurrently" in out, (name, out)
    print("epctl tags on n1 after healing:\n" + tables["n1"])

    # a write after healing observes the winner: the conflict is resolved everywhere
    n1.push(imgs["same-l"], REPO, "same")
    sl.wait_for(lambda: all(
        [t for t in n.tags(REPO) if t["tag"] == "same"][0]["conflicts"] == [] for n in nodes), 3,
        what="conflict cleared by a newer write")
    for n in nodes:
        assert n.manifest_digest(REPO, "same") == imgs["same-l"].digest


def test_partition_until_dead_then_heal(env):
    partition_scenario(env, "dead")


def test_short_partition_then_heal(env):
    """Shorter than the suspect timeout: queued messages and anti-entropy repair it."""
    partition_scenario(env, 2.0)


def test_concurrent_delete_and_write_during_partition(env):
    """During a partition n3 re-pushes a tag and, later, n1 deletes it. The
    delete is the newer write: after healing the tag is gone on every node,
    and the lost concurrent push is still visible to `epctl tags` (the tag
    listed as deleted, the push among its conflicts) rather than vanishing."""
    lan = sl.Lan(env, 3)
    nodes, _ = env.site(3, lan=lan, join_timeout=5)
    n1, n2, n3 = nodes
    a, b = env.image("del-a"), env.image("del-b")
    n1.push(a, REPO, "gone")
    sl.wait_for(lambda: all(n.manifest_digest(REPO, "gone") == a.digest for n in nodes), 2, what="gone on all")
    lan.cut(3)
    n3.push(b, REPO, "gone")        # older write, minority side
    time.sleep(0.05)
    n1.delete_tag(REPO, "gone")     # newer write, majority side
    sl.wait_for(lambda: n2.manifest_digest(REPO, "gone") is None, 2, what="delete n1 -> n2")
    assert n3.manifest_digest(REPO, "gone") == b.digest
    time.sleep(1.0)
    lan.heal(3)
    _, dt = sl.wait_for(lambda: all(n.manifest_digest(REPO, "gone") is None for n in nodes), 5,
                        what="the delete wins on every node")
    sl.record("concurrent delete vs push, healed -> deleted everywhere", "%.0f ms" % (dt * 1000))
    sl.wait_for(lambda: sl.full_mesh(nodes), 8, what="full mesh")
    # The delete already wins everywhere before anti-entropy has carried the
    # lost push across; give convergence the 5 s to show it.
    sl.wait_for(lambda: all(any(t["tag"] == "gone" and t["conflicts"] for t in n.tags(REPO)) for n in nodes), 5,
                what="the overridden push visible as a conflict on every node")
    for n in nodes:
        entries = [t for t in n.tags(REPO) if t["tag"] == "gone"]
        assert entries, ("%s: `epctl tags` does not show the tag at all, so the push of %s on n3 that "
                         "the concurrent delete overrode is invisible" % (n.name, b.digest[:19]))
        [e] = entries
        assert e["deleted"] is True, (n.name, e)
        assert [c["digest"] for c in e["conflicts"]] == [b.digest], (n.name, e)
