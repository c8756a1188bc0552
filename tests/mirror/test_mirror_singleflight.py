"""Single flight: concurrent clients of one uncached blob cause one upstream
fetch and are streamed the bytes as they arrive; Range requests on a blob
still arriving are served as soon as those bytes are in."""

import hashlib
import os
import threading
import time

import requests

import mirrorlib as ml

MiB = 1 << 20


def read_all(url, out, abort_after=None, headers=None):
    """GET url, hashing the body; records status, size, digest, first/last byte times."""
    out["t0"] = time.monotonic()
    h = hashlib.sha256()
    n = 0
    try:
        with requests.get(url, stream=True, timeout=60, headers=headers) as r:
            out["status"] = r.status_code
            out["headers"] = dict(r.headers)
            for chunk in r.iter_content(256 << 10):
                if "t_first" not in out:
                    out["t_first"] = time.monotonic()
                h.update(chunk)
                n += len(chunk)
                if abort_after is not None and n >= abort_after:
                    break
    except Exception as e:
        out["error"] = repr(e)[:200]
    out["t_end"] = time.monotonic()
    out["size"] = n
    out["digest"] = "sha256:" + h.hexdigest()


def test_single_flight_streams_one_fetch_to_all_clients(env):
    size = 64 * MiB
    data = os.urandom(size)
    up = env.upstream()
    digest = up.push_blob("big/blob", data)
    proxy = env.proxy(up)
    # ~2.5 s over the "uplink", so that every client arrives while it is in flight
    proxy.set((lambda m, p: m == "GET" and digest in p, ("throttle", 26 * MiB)))
    node = env.node({"ns1": proxy.url}, default="ns1")
    url = node.v2("big/blob/blobs/" + digest, "ns1")

    # a HEAD of an uncached blob is answered from upstream metadata, no download
    r = requests.head(url, timeout=10)
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == size, (r.status_code, r.headers)
    assert proxy.requests("GET", digest) == []

    results = [{} for _ in range(5)]
    start = threading.Barrier(len(results))

    def client(i):
        start.wait()
        # client 4 hangs up after 1 MiB: the others must not notice
        read_all(url, results[i], abort_after=MiB if i == 4 else None)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    # and one more client that comes late, half-way through the transfer
    late = {}
    ml.wait_for(lambda: any(e["sent"] >= size // 2 for e in proxy.requests("GET", digest)), 30,
                what="half of the blob to arrive")
    threads.append(threading.Thread(target=read_all, args=(url, late)))
    threads[-1].start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "clients still running after 120 s"

    for i, res in enumerate(results[:4]):
        assert res.get("status") == 200 and "error" not in res, (i, res)
        assert res["size"] == size and res["digest"] == digest, (i, res["size"], res["digest"])
    assert late.get("status") == 200 and late["size"] == size and late["digest"] == digest, late
    gets = proxy.requests("GET", digest)
    assert len(gets) == 1, "upstream saw %d GETs for one blob: %s" % (len(gets), gets)
    assert len(up.requests_from_node("GET", digest)) == 1
    assert gets[0]["done"]
    # streamed as it arrived: clients had their first bytes long before the uplink finished
    upstream_done = gets[0]["t_done"]
    early = [res["t_first"] < upstream_done - 0.5 for res in results[:4]]
    assert all(early), "first byte times vs upstream end: %s" % [
        round(res["t_first"] - upstream_done, 2) for res in results[:4]]

    # complete and stored: served locally from now on
    res = {}
    read_all(url, res)
    assert res["status"] == 200 and res["digest"] == digest
    assert len(proxy.requests("GET", digest)) == 1
    assert node.alive()


def test_range_requests_on_a_blob_still_arriving(env):
    size = 16 * MiB
    data = os.urandom(size)
    up = env.upstream()
    digest = up.push_blob("big/blob", data)
    proxy = env.proxy(up)
    proxy.set((lambda m, p: m == "GET" and digest in p, ("throttle", 6 * MiB)))  # ~2.7 s
    node = env.node({"ns1": proxy.url}, default="ns1")
    url = node.v2("big/blob/blobs/" + digest, "ns1")

    full = {}
    t = threading.Thread(target=read_all, args=(url, full))
    t.start()
    try:
        ml.wait_for(lambda: any(e["sent"] >= 2 * MiB for e in proxy.requests("GET", digest)), 20,
                    what="the upstream transfer to be under way")
        entry = proxy.requests("GET", digest)[0]
        assert not entry["done"]

        # bytes already in: served at once, while the blob still arrives
        r = requests.get(url, headers={"Range": "bytes=0-1023"}, timeout=10)
        assert r.status_code == 206, (r.status_code, r.text[:200])
        assert r.headers["Content-Range"] == "bytes 0-1023/%d" % size
        assert r.content == data[:1024]
        assert not proxy.requests("GET", digest)[0]["done"], "answered only after the whole blob arrived"

        # the second half: served once those bytes (and the verification) are in
        half = size // 2
        second = {}
        read_all(url, second, headers={"Range": "bytes=%d-" % half})
        assert second["status"] == 206, second
        assert second["headers"]["Content-Range"] == "bytes %d-%d/%d" % (half, size - 1, size)
        assert second["size"] == size - half
        assert second["digest"] == ml.sha256_bytes(data[half:])

        # a suffix range and a middle range
        r = requests.get(url, headers={"Range": "bytes=-4096"}, timeout=30)
        assert r.status_code == 206 and r.content == data[-4096:]
        r = requests.get(url, headers={"Range": "bytes=%d-%d" % (MiB, 3 * MiB - 1)}, timeout=30)
        assert r.status_code == 206 and r.content == data[MiB:3 * MiB]
    finally:
        t.join(60)
    assert full.get("status") == 200 and full["digest"] == digest, full
    assert len(proxy.requests("GET", digest)) == 1


def test_single_flight_does_not_mix_repositories(env):
    """Fetches are shared by digest, but whether the upstream serves a blob
    depends on the repository asked for: a client of a repository that has the
    blob must get it even while a fetch of the same digest through a repository
    that lacks it is under way."""
    data = os.urandom(2 * MiB)
    up = env.upstream()
    digest = up.push_blob("has/it", data)
    proxy = env.proxy(up)
    proxy.set((lambda m, p: m == "GET" and p.startswith("/v2/lacks/it/blobs/"), ("delay", 1.0)))
    node = env.node({"ns1": proxy.url}, default="ns1")

    lacking = {}
    t = threading.Thread(target=lambda: lacking.update(r=node.blob("lacks/it", digest, ns="ns1")))
    t.start()
    ml.wait_for(lambda: proxy.requests("GET", "/v2/lacks/it/blobs/"), 5, what="the first fetch")
    r = node.blob("has/it", digest, ns="ns1")
    t.join(30)
    assert lacking["r"].status_code == 404, lacking["r"].status_code
    assert r.status_code == 200 and r.content == data, \
        "GET has/it@%s: %s %s (the upstream has it there)" % (digest[:19], r.status_code, r.text[:200])


def test_upstream_without_content_length(env):
    """An upstream that sends a blob chunked (no Content-Length): served correctly."""
    data = os.urandom(3 * MiB)
    up = env.upstream()
    digest = up.push_blob("c/blob", data)
    proxy = env.proxy(up)
    proxy.set((lambda m, p: m == "GET" and digest in p, ("chunked",)))
    node = env.node({"ns1": proxy.url}, default="ns1")
    r = node.blob("c/blob", digest, ns="ns1")
    assert r.status_code == 200 and r.content == data, (r.status_code, len(r.content))
    assert int(r.headers["Content-Length"]) == len(data)
    assert proxy.requests("GET", digest)[0]["done"]
    r = node.blob("c/blob", digest, ns="ns1", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]


def test_many_cold_blobs_at_once_cost_no_thread_each(env):
    """200 different cold blobs asked at once through one mirror node: every one
    arrives intact, each from one upstream GET, while the node's thread count
    stays bounded (a fetch waits on the I/O pool, not on a thread of its own;
    the issue's bound is 32 threads for 400 cold GETs)."""
    up = env.upstream()
    blobs = {}
    for i in range(200):
        data = os.urandom(64 << 10) + b"%d" % i
        blobs[up.push_blob("many/blobs", data)] = data
    proxy = env.proxy(up)
    # slow enough that the GETs overlap: every one is in flight at once
    proxy.set((lambda m, p: m == "GET" and "/blobs/" in p, ("delay", 0.5)))
    node = env.node({"ns1": proxy.url}, default="ns1")
    pid = node.proc.pid

    peak = [0]
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            try:
                peak[0] = max(peak[0], len(os.listdir("/proc/%d/task" % pid)))
            except OSError:
                pass
            time.sleep(0.005)

    results = {}

    def get(digest):
        results[digest] = requests.get(node.v2("many/blobs/blobs/" + digest, "ns1"), timeout=60)

    sampler = threading.Thread(target=sample)
    sampler.start()
    clients = [threading.Thread(target=get, args=(d,)) for d in blobs]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    sampling.set()
    sampler.join()
    for digest, data in blobs.items():
        r = results[digest]
        assert r.status_code == 200, (digest, r.status_code, r.text[:200])
        assert r.content == data
    for digest in blobs:
        assert len(proxy.requests("GET", digest)) == 1, digest
    assert peak[0] <= 32, "the node ran %d threads for 200 cold blobs at once" % peak[0]
