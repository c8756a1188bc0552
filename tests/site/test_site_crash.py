"""kill -9 at random moments: nothing served is corrupt, nothing is lost.

Two nodes of a site. Each seeded iteration picks a victim and a moment: in
the middle of a push to it, of its replication of an image pushed to the
other node, or of a chunked upload. The victim is killed with SIGKILL and
started again. Then:
  - `epctl fsck` on it finds nothing corrupt: every blob re-hashes to its
    digest, no tag names a missing manifest (blobs of a replica still on
    their way may be missing until the end);
  - every image pushed so far pulls whole (digests verified) from it, as
    the replicator finishes what the kill interrupted;
  - staged files of interrupted uploads are gone or resumable.
EP_CRASH_ITERATIONS (default 8 here; 50 by hand) and EP_CRASH_SEED set the run.
"""
import json
import os
import random
import subprocess
import time

import sitelib as sl
from sitelib import wait_for

ITERATIONS = int(os.environ.get("EP_CRASH_ITERATIONS", "8"))
SEED = int(os.environ.get("EP_CRASH_SEED", "1206"))


def fsck_clean(node, replicating=False):
    """fsck finds nothing wrong. While replicating, a manifest whose blobs are
    still on their way is expected (a pull fetches them from the peer)."""
    p = node.epctl("--json", "fsck", check=False)
    report = json.loads(p.out)
    problems = [x for x in report["problems"] if not (replicating and x["kind"] == "missing blob")]
    return not problems and (replicating or p.returncode == 0), p.out


def holders_everywhere(nodes, refs):
    pins = {p["ref"]: p for p in nodes[0].admin("/admin/v1/pins")["pins"]}
    return all(ref in pins and len(pins[ref]["holders"]) == len(nodes) for ref in refs)


def test_kill9_at_random_moments_loses_nothing(tmp_path):
    rng = random.Random(SEED)
    env = sl.Env()
    try:
        n1 = env.node("n1", key=env.key)
        n2 = env.node("n2", key=env.key, seeds=[n1.cluster_address])
        nodes = [n1, n2]
        wait_for(lambda: sl.full_mesh(nodes), 30, what="full mesh")
        pushed = {}  # ref -> manifest digest, of pushes that completed
        outcomes = []
        for i in range(ITERATIONS):
            victim, other = (n1, n2) if rng.random() < 0.5 else (n2, n1)
            scenario = rng.choice(["push", "replication", "upload"])
            delay = rng.uniform(0.0, 0.12 if scenario == "push" else 0.35)  # a push of 48 MiB takes ~0.15 s here
            img = sl.Image(env.dir / "images" / ("crash%d" % i), "crash-%d-%d" % (SEED, i), tag="v1",
                           layer_mb=rng.choice([8, 24, 48]))
            ref = "crash/app:i%d" % i
            target = victim if scenario == "push" else other
            if scenario == "upload":
                r = victim.session.post(victim.url + "/v2/crash/app/blobs/uploads/", timeout=5)
                url = r.headers["Location"]
                url = url if url.startswith("http") else victim.url + url
                victim.session.patch(url, data=os.urandom(1 << 20), timeout=5)
            push = subprocess.Popen(
                sl.with_blob_cache(env.dir / "blob-info-cache",
                                   ["skopeo", "copy", "--retry-times", "0", "--dest-tls-verify=false",
                                    "oci:%s:v1" % img.dir, "docker://%s/%s" % (target.registry_address, ref)]),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            victim.kill9()
            completed = push.wait(60) == 0
            if completed:
                pushed[ref] = img.digest
            outcomes.append("%s%s" % (scenario, "" if completed else " (push cut)"))
            victim.start()
            clean, report = fsck_clean(victim, replicating=True)
            assert clean, "iteration %d (%s, %.2fs, seed %d): %s" % (i, scenario, delay, SEED, report)
            # Every staged file left is a partial blob (it resumes) or an upload that resumes.
            for f in (victim.data / "uploads").iterdir():
                if f.name.startswith("chunks-"):
                    continue
                status = victim.session.get(victim.url + "/v2/crash/app/blobs/uploads/" + f.name, timeout=5).status_code
                assert status == 204, "iteration %d: staged file %s has no upload session (%d)" % (i, f.name, status)
        # The replicator finishes what the kills interrupted; every completed push pulls whole.
        wait_for(lambda: holders_everywhere(nodes, list(pushed)), 120, what="every image on both nodes")
        for node in nodes:
            for ref, digest in pushed.items():
                assert node.manifest_digest(*ref.split(":")) == digest, (node.name, ref)
                clean, report = fsck_clean(node)
                assert clean, report
        sl.record("crash iterations (seed %d)" % SEED,
                  "%d: %s" % (ITERATIONS, ", ".join("%s x%d" % (o, outcomes.count(o)) for o in sorted(set(outcomes)))))
    finally:
        env.close()
