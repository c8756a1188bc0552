"""Holdings summaries: a blob one member holds is found from the others; a
digest no member holds is answered 404 without asking anyone; a restarted
member announces what it held before.

Each node announces a filter of the blobs it holds (whole at contact, one
delta per blob stored). The node metric edgepier_holder_lookups_total says
whether a lookup asked peers or none could hold the blob.
"""
import hashlib
import os
import time

import sitelib as sl
from sitelib import wait_for
from test_site_storage import upload_blob

ASKED = 'edgepier_holder_lookups_total{peers="asked"}'
NONE = 'edgepier_holder_lookups_total{peers="none_may_hold"}'


def lookups(node):
    m = node.metrics()
    return m.get(ASKED, 0), m.get(NONE, 0)


def blob_get(node, repo, digest):
    return node.session.get(node.url + "/v2/%s/blobs/%s" % (repo, digest), timeout=10)


def absent_digest():
    return "sha256:" + hashlib.sha256(os.urandom(32)).hexdigest()


def test_holdings_summaries_find_held_blobs_and_skip_absent_ones(env):
    (n1, n2, n3), _ = env.site(3, join_timeout=10)
    repo = "team/blobs"
    data_a, data_b = os.urandom(300 << 10), os.urandom(200 << 10)
    digest_a = upload_blob(n1, repo, data_a)
    digest_b = upload_blob(n1, repo, data_b)  # only n1 holds it (no manifest: nothing replicates it)

    # Found on n2 from n1, within moments of the upload (one delta).
    t0 = time.monotonic()
    wait_for(lambda: blob_get(n2, repo, digest_a).status_code == 200, 2, what="blob A on n2")
    sl.record("blob uploaded to n1 -> GET 200 on n2", "%.0f ms" % ((time.monotonic() - t0) * 1000))
    r = blob_get(n2, repo, digest_a)
    assert hashlib.sha256(r.content).hexdigest() == digest_a.split(":")[1]

    # Digests nobody holds: 404 BLOB_UNKNOWN, and no peer is asked.
    asked, skipped = lookups(n2)
    times = []
    for _ in range(100):
        t = time.monotonic()
        r = blob_get(n2, repo, absent_digest())
        times.append(time.monotonic() - t)
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UNKNOWN", r.text
    asked_after, skipped_after = lookups(n2)
    assert skipped_after - skipped == 100, (skipped, skipped_after)
    assert asked_after == asked, "absent digests asked peers: %d lookups" % (asked_after - asked)
    times.sort()
    sl.record("absent digest GET on a 3-node site (p50, p99 of 100, python client)",
              "%.1f / %.1f ms" % (times[50] * 1000, times[98] * 1000))

    # n1 restarts: it announces what it held, blob B included, to both peers.
    n1.stop()
    n1.start()
    wait_for(lambda: sl.full_mesh([n1, n2, n3]), 20, what="full mesh after n1's restart")

    def filters_known():  # an absent digest asks nobody once n1's filter arrived
        before = lookups(n3)[1]
        return blob_get(n3, repo, absent_digest()).status_code == 404 and lookups(n3)[1] == before + 1

    wait_for(filters_known, 10, what="n1's holdings on n3")
    asked = lookups(n3)[0]
    r = blob_get(n3, repo, digest_b)
    assert r.status_code == 200, r.text
    assert hashlib.sha256(r.content).hexdigest() == digest_b.split(":")[1]
    assert lookups(n3)[0] == asked + 1
