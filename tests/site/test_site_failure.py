"""A node killed with SIGKILL: detected by the others, restarted with its data
dir it comes back as the same member, with its index, and catches up."""

import shutil
import time

import sitelib as sl


def watch_states(observers, victim, until, timeout):
    """Poll every observer's view of `victim` until each reached every state of
    `until`; returns {observer: {state: seconds after the start of watching}}."""
    t0 = time.monotonic()
    seen = {o.name: {} for o in observers}
    while time.monotonic() - t0 < timeout:
        for o in observers:
            state = o.states().get(victim)
            if state is not None:
                seen[o.name].setdefault(state, time.monotonic() - t0)
        if all(all(s in seen[o.name] for s in until) for o in observers):
            break
        time.sleep(0.05)
    return seen


def test_kill9_detect_restart_keep_index_catch_up(env):
    (n1, n2, n3), _ = env.site(3, join_timeout=5)
    before = env.image("before")
    n3.push(before, "team/app", "before")  # written on the node that dies
    sl.wait_for(lambda: all(n.manifest_digest("team/app", "before") == before.digest for n in (n1, n2, n3)),
                2, what="'before' on all")

    n3.kill9()
    seen = watch_states([n1, n2], "n3", ("suspect", "dead"), timeout=10)
    for obs, states in seen.items():
        for state in ("suspect", "dead"):
            assert state in states, "%s never saw n3 %s (saw %s)" % (obs, state, states)
        sl.record("kill -9 n3 -> %s sees suspect / dead" % obs,
                  "%.2f s / %.2f s" % (states["suspect"], states["dead"]))
        # a lost connection makes it suspect at once; silence of 6 s makes it dead
        assert states["suspect"] < 3.5, states
        assert states["dead"] < 7.5, states
        assert states["suspect"] < states["dead"]
    for n in (n1, n2):
        m = n.metrics()
        assert m['edgepier_site_members{state="dead"}'] == 1, (n.name, m)
        assert m['edgepier_site_members{state="alive"}'] == 1, (n.name, m)

    # the site keeps working without n3
    during = env.image("during")
    n2.push(during, "team/app", "during")
    sl.wait_for(lambda: n1.manifest_digest("team/app", "during") == during.digest, 2, what="'during' on n1")

    # n3's index survived the kill: started alone (no seeds, a cluster port
    # nobody knows) it still has 'before' and, of course, not 'during'
    real_cluster = n3.cluster_address
    n3.cluster_address = "127.0.0.1:%d" % sl.free_port()
    n3.seeds = []
    n3.start()
    try:
        assert n3.manifest_digest("team/app", "before") == before.digest
        tags = {t["tag"]: t for t in n3.tags("team/app")}
        assert "before" in tags and tags["before"]["digest"] == before.digest, tags
        assert "during" not in tags, tags
        assert n3.manifest_digest("team/app", "during") is None
    finally:
        n3.stop()
    n3.cluster_address = real_cluster
    n3.seeds = [n1.cluster_address]

    # restarted for real: the same member again, and it catches up
    log_marks = {n.name: len(n.log_text()) for n in (n1, n2)}
    t0 = time.monotonic()
    n3.start()
    sl.wait_for(lambda: sl.full_mesh([n1, n2, n3]), 5, what="n3 alive again everywhere")
    sl.wait_for(lambda: n3.manifest_digest("team/app", "during") == during.digest, 3,
                what="n3 catches up with 'during'")
    sl.record("restart of n3 -> alive everywhere and caught up", "%.0f ms" % ((time.monotonic() - t0) * 1000))
    for n in (n1, n2):
        new_lines = n.log_text()[log_marks[n.name]:]
        assert "member n3 is alive (restarted)" in new_lines, (n.name, new_lines)
    assert n3.manifest_digest("team/app", "before") == before.digest
    for n in (n1, n2, n3):
        members = n.members()
        assert sorted(members) == ["n1", "n2", "n3"], members  # one n3, not a second one
        assert members["n3"]["cluster_address"] == real_cluster
        m = n.metrics()
        assert m['edgepier_site_members{state="alive"}'] == 2, (n.name, m)
        assert m['edgepier_site_members{state="dead"}'] == 0, (n.name, m)

    # and it takes part again: a push on n3 reaches the others
    after = env.image("after")
    n3.push(after, "team/app", "after")
    sl.wait_for(lambda: all(n.manifest_digest("team/app", "after") == after.digest for n in (n1, n2)),
                2, what="'after' from n3 on n1, n2")


def test_seed_killed_others_stay_joined_and_seed_rejoins(env):
    """The seed is not special once joined: with n1 dead, n2 and n3 still
    replicate; n1 restarted (no seeds of its own) finds them again."""
    (n1, n2, n3), _ = env.site(3, join_timeout=5)
    n1.kill9()
    sl.wait_for(lambda: n2.states().get("n1") in ("suspect", "dead")
                and n3.states().get("n1") in ("suspect", "dead"), 5, what="n1 suspect")
    img = env.image("seedless")
    n2.push(img, "team/x", "v1")
    sl.wait_for(lambda: n3.manifest_digest("team/x", "v1") == img.digest, 2, what="n2 -> n3 without the seed")
    assert n2.states().get("n3") == "alive" and n3.states().get("n2") == "alive"
    n1.start()
    _, dt = sl.wait_for(lambda: sl.full_mesh([n1, n2, n3]), 8, what="seed rejoined")
    sl.record("seed n1 restarted without seeds -> full mesh", "%.2f s" % dt)
    sl.wait_for(lambda: n1.manifest_digest("team/x", "v1") == img.digest, 3, what="n1 catches up")


def test_graceful_stop_is_seen_at_once(env):
    """SIGTERM closes the connections: the others notice without waiting 3 s."""
    (n1, n2, n3), _ = env.site(3, join_timeout=5)
    t0 = time.monotonic()
    n3.stop()
    stopped = time.monotonic() - t0
    _, dt = sl.wait_for(lambda: n1.states().get("n3") != "alive" and n2.states().get("n3") != "alive",
                        4, what="n3 no longer alive")
    sl.record("SIGTERM n3 (stop took %.2f s) -> not alive on n1, n2" % stopped, "%.2f s" % dt)
    assert stopped < 5, "edgepier took %.1f s to stop on SIGTERM" % stopped


def test_node_with_a_wiped_data_dir_rejoins_under_its_name_once_dead(env):
    """A disk replaced or a data dir wiped: the node comes back with a new identity key.
    While its old self is still alive that key is refused (nobody takes over a running
    member's name); once the others consider it dead it rejoins under its name and
    catches up with the index."""
    (n1, n2), _ = env.site(2, join_timeout=5)
    img = env.image("wiped")
    n1.push(img, "team/app", "v1")
    n2.kill9()
    seen = watch_states([n1], "n2", ("dead",), timeout=10)
    assert "dead" in seen["n1"], seen
    shutil.rmtree(n2.data)
    n2.start()
    sl.wait_for(lambda: n1.states().get("n2") == "alive" and n2.states().get("n1") == "alive", 10,
                what="n2 alive again under its name")
    sl.wait_for(lambda: n2.manifest_digest("team/app", "v1") == img.digest, 5, what="n2 caught up")
