"""kill -9 during mirror pulls and eviction: nothing served is corrupt.

A mirror node in front of a real docker-registry, with a storage budget that
holds about one image of three: every cold pull pushes storage over the
budget, so the replicator evicts older images while the next one is fetched.
Each seeded iteration pulls an image through the node (cold, or evicted
since) and kills the node with SIGKILL at a random moment: during that
pull, or in the seconds after it, while the replicator evicts.
After each restart:
  - `epctl fsck` finds no corrupt blob and no tag naming a missing manifest;
  - the image pulls whole from the node (skopeo verifies every digest), from
    what the node kept or from the upstream again;
  - no partial file of the interrupted fetch is ever served.
EP_CRASH_ITERATIONS (default 6 here; 50 by hand) and EP_CRASH_SEED set the run.
"""
import json
import os
import random
import signal
import threading
import time

import mirrorlib as ml

ITERATIONS = int(os.environ.get("EP_CRASH_ITERATIONS", "6"))
SEED = int(os.environ.get("EP_CRASH_SEED", "1207"))
MIB = 1 << 20


def fsck_problems(node):
    p = ml.run([ml.EPCTL, "--admin", node.admin_url, "--json", "fsck"], check=False, timeout=120)
    return json.loads(p.out)["problems"], p.returncode


def test_kill9_during_mirror_pulls_and_eviction(env):
    rng = random.Random(SEED)
    up = env.upstream()
    images = []
    for k in range(3):
        images.append(ml.make_image(env.dir / ("img%d" % k), "crash-mirror-%d-%d" % (SEED, k), layers=2,
                                    layer_mb=rng.choice([6, 12]), tag="v1"))
        up.push(images[-1], "crash/app", "t%d" % k)
    node = env.node({"ns1": up.url}, default="ns1", tag_ttl="60s",
                    extra=["--edgepier.storage-budget=%d" % (26 * MIB)])
    outcomes = []
    for i in range(ITERATIONS):
        k = rng.randrange(len(images))
        # "pull": killed during the fetch (a pull here takes ~0.3 s); "evict":
        # killed after it, while the replicator evicts (a round every 3 s).
        scenario = rng.choice(["pull", "evict"])
        delay = rng.uniform(0.0, 0.3) if scenario == "pull" else rng.uniform(0.0, 3.2)
        pulled = {}

        def pull(dest=env.dir / ("cut%d" % i)):
            pulled["p"] = node.pull("crash/app", "t%d" % k, dest, check=False)

        puller = threading.Thread(target=pull)
        puller.start()
        if scenario == "evict":
            puller.join(120)
        time.sleep(delay)
        os.kill(node.proc.pid, signal.SIGKILL)
        node.proc.wait(10)
        puller.join(120)
        outcomes.append("%s t%d (%s) +%.2fs" % (scenario, k, "cut" if pulled["p"].returncode else "whole", delay))
        node.start()

        problems, rc = fsck_problems(node)
        assert rc == 0 and not problems, (outcomes, problems)
        dest = env.dir / ("pull%d" % i)
        node.pull("crash/app", "t%d" % k, dest)
        assert ml.oci_layout_blobs(dest) == images[k]["blobs"], outcomes
    # Every image still pulls whole at the end, whatever was evicted.
    for k, img in enumerate(images):
        dest = env.dir / ("final%d" % k)
        node.pull("crash/app", "t%d" % k, dest)
        assert ml.oci_layout_blobs(dest) == img["blobs"], outcomes
    print("mirror crash iterations:", outcomes)
