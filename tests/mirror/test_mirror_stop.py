"""Stopping a mirror node while its upstream hangs: SIGTERM ends it within 5 s, exit 0.

Clients wait on a blob fetch, a manifest and a tag revalidation that the
upstream (a fault proxy that accepts and never answers) will not complete; the
node must not wait out its upstream timeouts before it exits."""

import signal
import threading
import time

import requests

STOP_LIMIT_S = 5.0


def test_sigterm_while_the_upstream_hangs(env, images):
    img = images["a"]
    up = env.upstream()
    up.push(img, "app")
    proxy = env.proxy(up)
    node = env.node({"slow": proxy.url}, default="slow", tag_ttl="1s")
    # The tag is cached (so a revalidation starts later), then the upstream hangs.
    assert node.manifest("app", "v1", ns="slow").status_code == 200
    time.sleep(1.2)  # past tag-ttl: the next read revalidates
    proxy.set((lambda m, p: True, ("hang",)))

    def ask(url):
        try:
            requests.get(url, timeout=60)
        except requests.RequestException:
            pass  # the node went away: expected

    urls = [node.v2("app/blobs/%s" % d, "slow") for d in img["layer_digests"]]
    urls += [node.v2("app/manifests/v1", "slow"), node.v2("other/manifests/v1", "slow")]
    clients = [threading.Thread(target=ask, args=(u,), daemon=True) for u in urls]
    for c in clients:
        c.start()
    deadline = time.monotonic() + 10
    while len(proxy.requests()) < 3 and time.monotonic() < deadline:  # the node is waiting on the upstream
        time.sleep(0.05)
    assert len(proxy.requests()) >= 3, proxy.requests()
    t0 = time.monotonic()
    node.proc.send_signal(signal.SIGTERM)
    rc = node.proc.wait(timeout=30)
    took = time.monotonic() - t0
    print("MEASURED stop while the upstream hangs: exit %s after %.2f s" % (rc, took))
    assert rc == 0 and took <= STOP_LIMIT_S, (rc, took)
