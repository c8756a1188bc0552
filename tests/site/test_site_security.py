"""Intruders: a node with another site key, a node with the site key that
claims an existing member's name, raw garbage on the cluster and data ports,
and a node with seeds but no key at all."""

import random
import socket
import subprocess
import struct
import time

import pytest

import sitelib as sl


def rejected_total(nodes):
    return sum(n.rejected() for n in nodes)


def test_node_with_another_site_key_is_kept_out(env):
    nodes, _ = env.site(3, join_timeout=5)
    n1, n2, n3 = nodes
    rejected_before = {n.name: n.rejected() for n in nodes}
    other_key = env.keygen("other.key")
    # seeds: every member, so each of them is probed
    evil = env.node("evil", key=other_key, seeds=[n.cluster_address for n in nodes])
    img, evil_img = env.image("sec-site"), env.image("sec-evil")
    n1.push(img, "team/app", "v1")
    evil.push(evil_img, "team/evil", "v1")
    evil.push(evil_img, "team/app", "v2")
    sl.wait_for(lambda: all(n.manifest_digest("team/app", "v1") == img.digest for n in nodes), 2,
                what="the site's own replication")
    # several heartbeats, anti-entropy rounds and the intruder's reconnects (every 2 s)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for n in nodes:
            assert "evil" not in n.members(), (n.name, n.members())
        time.sleep(0.25)
    for n in nodes:
        assert "evil" not in n.members()
        assert n.manifest_digest("team/evil", "v1") is None, n.name
        assert n.manifest_digest("team/app", "v2") is None, n.name
        assert not [t for t in n.tags() if t["updated_by"] == "evil"], n.tags()
        assert "evil" not in n.log_text()
    # the intruder learnt nothing: no index, no members
    assert evil.manifest_digest("team/app", "v1") is None
    status, _, _ = evil.manifest("team/app", "v1")
    assert status == 404
    assert sorted((t["repository"], t["tag"], t["updated_by"]) for t in evil.tags()) == [
        ("team/app", "v2", "evil"), ("team/evil", "v1", "evil")], evil.tags()
    assert sorted(evil.members()) == ["evil"], evil.members()
    # and what it sent was counted as rejected by the site
    rejected_after = {n.name: n.rejected() for n in nodes}
    print("rejected before/after:", rejected_before, rejected_after)
    assert all(rejected_after[k] >= rejected_before[k] for k in rejected_after)
    assert sum(rejected_after.values()) > sum(rejected_before.values()), (rejected_before, rejected_after)
    assert rejected_after["n1"] > rejected_before["n1"], (rejected_before, rejected_after)
    sl.record("intruder (other key, 5 s): messages rejected by n1/n2/n3",
              "/".join("%d" % (rejected_after[k] - rejected_before[k]) for k in ("n1", "n2", "n3")))
    # the site is unharmed
    assert sl.full_mesh(nodes)


def test_plain_caf_messages_from_the_network_change_nothing(env):
    """BASP itself is unauthenticated: a stock CAF process can connect to the cluster
    port and send any message. The node-local commands (delete or write a tag, pin,
    leave, timer ticks, admin queries) must not be reachable that way: only sealed
    envelopes are."""
    import os
    from pathlib import Path
    tool = os.environ.get("CAF_INTRUDER_BIN", str(Path(sl.EP_BIN).parent / "caf_intruder"))
    (n1, n2), _ = env.site(2, join_timeout=5)
    img = env.image("caf-intruder")
    n1.push(img, "team/app", "v1")
    sl.wait_for(lambda: n2.manifest_digest("team/app", "v1") == img.digest, 2, what="tag on n2")
    pins_before = sorted(p["ref"] for p in n1.epctl("pins", json_out=True).doc["pins"])
    host, port = n1.cluster_address.rsplit(":", 1)
    p = sl.run([tool, host, port, "team/app", "v1"], check=False, timeout=30)
    assert p.returncode == 0, (p.returncode, p.out, p.err)   # it did connect and send
    assert "no answer" in p.out, p.out                         # admin queries are not served
    time.sleep(1.5)
    for n in (n1, n2):
        assert n.manifest_digest("team/app", "v1") == img.digest, n.name   # not deleted
        assert n.manifest_digest("team/app", "forged") is None, n.name     # not written
        assert n.states() == {m: "alive" for m in ("n1", "n2") if m != n.name}, n.states()  # nobody left
    assert sorted(p["ref"] for p in n1.epctl("pins", json_out=True).doc["pins"]) == pins_before
    assert sl.full_mesh([n1, n2])


def test_member_name_cannot_be_taken_over(env):
    """A process holding the site key but not n2's identity key claims to be n2:
    peers pinned n2's key, so it is rejected, and n2's entry stays n2's."""
    nodes, _ = env.site(3, join_timeout=5)
    n1, n2, n3 = nodes
    before = {n.name: n.rejected() for n in (n1, n3)}
    fake = env.node("n2", key=env.key, seeds=[n1.cluster_address, n3.cluster_address])
    fake_img = env.image("sec-fake")
    fake.push(fake_img, "team/fake", "v1")
    time.sleep(4)
    for n in (n1, n3):
        m = n.members()["n2"]
        assert m["registry_address"] == n2.registry_address, (n.name, m)
        assert m["cluster_address"] == n2.cluster_address, (n.name, m)
        assert m["state"] == "alive", (n.name, m)
        assert n.manifest_digest("team/fake", "v1") is None, n.name
        assert n.rejected() > before[n.name], (n.name, before, n.rejected())
    assert fake.manifest_digest("team/fake", "v1") == fake_img.digest
    # the real n2 keeps working
    img = env.image("sec-real")
    n2.push(img, "team/real", "v1")
    sl.wait_for(lambda: n1.manifest_digest("team/real", "v1") == img.digest, 2, what="real n2 -> n1")
    # with the real n2 dead the impostor still cannot take its place
    n2.kill9()
    time.sleep(3)
    for n in (n1, n3):
        m = n.members()["n2"]
        assert m["state"] != "alive" and m["cluster_address"] == n2.cluster_address, (n.name, m)
        assert "n2 is alive (restarted)" not in n.log_text()


GARBAGE_PATTERNS = [
    ("random 64 KiB", lambda: random.Random(1).randbytes(65536)),
    ("zeros 4 KiB", lambda: b"\0" * 4096),
    ("0xff 4 KiB", lambda: b"\xff" * 4096),
    ("HTTP request", lambda: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    # a BASP client handshake header (CAF 0.17: op, 2 pad, flags, payload_len,
    # operation_data, source actor, dest actor; network byte order) that
    # announces a 4 GiB payload
    ("BASP header, 4 GiB payload", lambda: struct.pack(">BBBBIQQQ", 1, 0, 0, 0, 0xFFFFFFFF, 0, 0, 0)),
    ("BASP header, 256 MiB payload + some", lambda: struct.pack(">BBBBIQQQ", 1, 0, 0, 0, 256 << 20, 0, 0, 0)
     + b"x" * 1000),
    ("BASP server handshake, 1 MiB junk payload", lambda: struct.pack(">BBBBIQQQ", 0, 0, 0, 0, 1 << 20, 1, 0, 0)
     + random.Random(2).randbytes(1 << 20)),
    ("BASP direct message, junk payload", lambda: struct.pack(">BBBBIQQQ", 2, 0, 0, 0, 64, 0, 1, 1)
     + random.Random(3).randbytes(64)),
    ("BASP heartbeat before handshake", lambda: struct.pack(">BBBBIQQQ", 6, 0, 0, 0, 0, 0, 0, 0)),
]


def blast(address, payload, hold=0.3):
    host, port = address.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    try:
        s.sendall(payload)
        time.sleep(hold)
    except OSError:
        pass  # the node may close on us: fine
    finally:
        s.close()


def connect(address):
    host, port = address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


# The node under test runs with its address space limited to this: an edge box
# with a few GiB of memory (and it keeps an allocation storm off the test host).
ADDRESS_SPACE_LIMIT = 3 << 30


def sanitized(binary):
    """ASan and TSan reserve terabytes of address space for their shadow memory:
    no address-space limit can apply to such a build (the RSS checks still do)."""
    libs = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    return "libasan" in libs or "libtsan" in libs


@pytest.mark.parametrize("port_kind", ["cluster", "data"])
def test_garbage_on_site_ports_does_not_hurt(env, port_kind):
    """Unauthenticated bytes on a site port: the node must neither die nor
    allocate memory on the say-so of a peer that proved nothing."""
    nodes, _ = env.site(3, join_timeout=5)
    n1, n2, n3 = nodes
    target = n2
    command = target.command
    if not sanitized(sl.EP_BIN):
        target.command = lambda: ["prlimit", "--as=%d" % ADDRESS_SPACE_LIMIT, "--"] + command()
    target.stop()
    target.start()
    sl.wait_for(lambda: sl.full_mesh(nodes), 5, what="mesh with the limited n2")
    address = target.cluster_address if port_kind == "cluster" else target.data_address
    problems = []
    for label, make in GARBAGE_PATTERNS:
        hwm0 = vm_kib(target.proc.pid, "VmHWM")
        blast(address, make())
        time.sleep(0.2)
        if not target.running():
            problems.append("%r killed the node (exit %s): %s" % (
                label, target.proc.returncode, sl.log_tail(target.log, 3).splitlines()[-2:]))
            target.start()  # the same data dir; go on with the next pattern
            sl.wait_for(lambda: sl.full_mesh(nodes), 8, what="mesh after restarting n2")
            continue
        grown = vm_kib(target.proc.pid, "VmHWM") - hwm0
        print("%-45s peak RSS +%d KiB" % (label, grown))
        if grown > 64 * 1024:
            problems.append("%r made the node's peak RSS grow by %d MiB" % (label, grown // 1024))
    sl.record("garbage on %s port: patterns that hurt" % port_kind, "%d of %d" % (len(problems), len(GARBAGE_PATTERNS)))

    rss0 = vm_kib(target.proc.pid, "VmRSS")
    # connections that open and say nothing, left open for the rest of the test
    idle = [connect(address) for _ in range(20)]
    # a burst of connect/close
    for _ in range(200):
        try:
            connect(address).close()
        except OSError as e:
            raise AssertionError("%s port refused a connection during the burst: %s" % (port_kind, e))
    # random chunks on 5 connections at once
    socks = [connect(address) for _ in range(5)]
    rnd = random.Random(4)
    for _ in range(50):
        for s in socks:
            try:
                s.sendall(rnd.randbytes(rnd.randint(1, 8192)))
            except OSError:
                pass
    for s in socks:
        s.close()
    time.sleep(1)
    if not target.running():
        problems.append("idle/burst/random streams killed the node: %s" % sl.log_tail(target.log, 3))
        target.start()
    assert target.http_status("/healthz") == 200
    rss1 = vm_kib(target.proc.pid, "VmRSS")
    sl.record("garbage on %s port: RSS before/after idle+burst+random streams" % port_kind,
              "%d / %d KiB" % (rss0, rss1))
    if rss1 > rss0 + 64 * 1024:
        problems.append("RSS grew from %d to %d KiB" % (rss0, rss1))

    # still a member in good standing: alive everywhere, replication both ways
    sl.wait_for(lambda: sl.full_mesh(nodes), 8, what="full mesh after the garbage")
    a, b = env.image("garbage-a-" + port_kind), env.image("garbage-b-" + port_kind)
    target.push(a, "team/g", "from-target")
    n1.push(b, "team/g", "to-target")
    sl.wait_for(lambda: n3.manifest_digest("team/g", "from-target") == a.digest
                and target.manifest_digest("team/g", "to-target") == b.digest, 2,
                what="replication to and from the node that got the garbage")
    for s in idle:
        s.close()
    # a new member joins through it
    n4 = env.node("n4", key=env.key, seeds=[target.cluster_address])
    sl.wait_for(lambda: sl.full_mesh(nodes + [n4]), 5, what="n4 joins through the node that got garbage")
    assert not problems, "\n".join(problems)


def test_seeds_without_site_key_is_a_config_error(env):
    cmd = [sl.EP_BIN, "--edgepier.node-name=nokey", "--edgepier.data-dir=%s" % (env.dir / "nokey"),
           "--edgepier.registry-address=127.0.0.1:%d" % sl.free_port(),
           "--edgepier.admin-address=127.0.0.1:%d" % sl.free_port(),
           "--edgepier.cluster-address=127.0.0.1:%d" % sl.free_port(),
           "--edgepier.data-address=127.0.0.1:%d" % sl.free_port(),
           '--edgepier.seeds=["127.0.0.1:%d"]' % sl.free_port()]
    p = sl.run(cmd, check=False, timeout=20)
    assert p.returncode == 2, (p.returncode, p.out, p.err)
    assert "site-key-file" in p.err, p.err
    assert len(p.err.strip().splitlines()) == 1, p.err
    # it stopped before opening anything
    assert not (env.dir / "nokey").exists() or not any((env.dir / "nokey").iterdir())

    # the same with the setting in an INI file
    ini = env.dir / "nokey.ini"
    ini.write_text('[edgepier]\nnode-name="nokey"\ndata-dir="%s"\nseeds=["127.0.0.1:%d"]\n'
                   'registry-address="127.0.0.1:%d"\nadmin-address="127.0.0.1:%d"\n'
                   'cluster-address="127.0.0.1:%d"\ndata-address="127.0.0.1:%d"\n'
                   % (env.dir / "nokey", sl.free_port(), sl.free_port(), sl.free_port(), sl.free_port(),
                      sl.free_port()))
    p = sl.run([sl.EP_BIN, "--config-file=%s" % ini], check=False, timeout=20)
    assert p.returncode == 2 and "site-key-file" in p.err, (p.returncode, p.err)

    # an unreadable or malformed key file is an error naming the file
    bad = env.dir / "bad.key"
    bad.write_text("not a key\n")
    for keyfile in (bad, env.dir / "missing.key"):
        p = sl.run(cmd + ["--edgepier.site-key-file=%s" % keyfile], check=False, timeout=20)
        assert p.returncode == 2 and str(keyfile) in p.err, (keyfile, p.returncode, p.err)
