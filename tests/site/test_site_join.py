"""Joining: three nodes through one seed form a full mesh, as epctl reports it."""

import time

import sitelib as sl


def epctl_view(node):
    """{name: member} from `epctl members --json` on node."""
    doc = node.epctl("members", json_out=True).doc
    return {m["name"]: m for m in doc["members"]}


def test_three_nodes_join_through_one_seed(env):
    n1 = env.node("n1", key=env.key)
    n2 = env.node("n2", key=env.key, seeds=[n1.cluster_address], start=False)
    n3 = env.node("n3", key=env.key, seeds=[n1.cluster_address], start=False)
    t0 = time.monotonic()
    n2.start(wait=False)
    n3.start(wait=False)
    n2.wait_ready()
    n3.wait_ready()
    nodes = [n1, n2, n3]

    def everyone_alive():
        views = {n.name: epctl_view(n) for n in nodes}
        for name, view in views.items():
            if sorted(view) != ["n1", "n2", "n3"]:
                return False
            if any(m["state"] != "alive" for m in view.values()):
                return False
        return views

    views, _ = sl.wait_for(everyone_alive, 5, interval=0.1, what="n1..n3 alive on every node")
    dt = time.monotonic() - t0
    sl.record("join of 3 nodes (n2, n3 started -> all alive on all, via epctl)", "%.0f ms" % (dt * 1000))
    assert dt < 5

    for n in nodes:
        view = views[n.name]
        assert [m["name"] for m in view.values() if m["self"]] == [n.name]
        for other in nodes:
            m = view[other.name]
            assert m["cluster_address"] == other.cluster_address, (n.name, m)
            assert m["registry_address"] == other.registry_address, (n.name, m)
            assert m["data_address"] == other.data_address, (n.name, m)
            assert isinstance(m["last_seen_ms"], int)
            if other is not n:
                # heartbeats every second: nobody was silent for long
                assert m["last_seen_ms"] < 3000, (n.name, m)
        metrics = n.metrics()
        assert metrics['edgepier_site_members{state="alive"}'] == 2, metrics
        for state in ("suspect", "dead", "left"):
            assert metrics['edgepier_site_members{state="%s"}' % state] == 0, metrics
        assert metrics['edgepier_control_messages_total{direction="rejected"}'] == 0, metrics
        assert n.http_status("/readyz") == 200

    # the table form lists the same members, self marked
    out = n2.epctl("members").out
    lines = out.strip().splitlines()
    assert lines[0].split()[:2] == ["NAME", "STATE"], out
    assert any(l.startswith("n2 (self)") for l in lines), out
    for name in ("n1", "n3"):
        assert any(l.split()[0] == name and "alive" in l for l in lines[1:]), out


def test_mesh_stays_stable(env):
    """Once joined, nobody flaps to suspect while everyone is up and idle."""
    nodes, _ = env.site(3, join_timeout=5)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        views = sl.member_states_everywhere(nodes)
        for name, view in views.items():
            assert set(view.values()) == {"alive"}, views
        time.sleep(0.25)
    for n in nodes:
        assert "suspect" not in n.log_text(), n.log_text()
        m = n.metrics()
        assert m["edgepier_anti_entropy_rounds_total"] >= 3, m
