"""Starting a site member whose ports are taken: it must fail fast and loudly,
not hang half-started (and never join the site without a registry)."""

import socket
import subprocess

import pytest

import sitelib as sl


@pytest.mark.parametrize("which", ["registry", "admin", "cluster", "data"])
def test_port_in_use_fails_fast(env, which):
    seed = env.node("n1", key=env.key)
    node = env.node("n2", key=env.key, seeds=[seed.cluster_address], start=False)
    address = {"registry": node.registry_address, "admin": node.admin_address,
               "cluster": node.cluster_address, "data": node.data_address}[which]
    host, port = address.rsplit(":", 1)
    squatter = socket.socket()
    squatter.bind((host, int(port)))
    squatter.listen(1)
    try:
        node.start(wait=False)
        try:
            rc = node.proc.wait(8)
        except subprocess.TimeoutExpired:
            rc = None
        log = node.log_text()
        if rc is None:
            joined = seed.states().get("n2")
            node.proc.terminate()
            try:
                node.proc.wait(3)
                sigterm = "it stopped on SIGTERM"
            except subprocess.TimeoutExpired:
                sigterm = "it ignored SIGTERM too (killed)"
                node.kill9()
            raise AssertionError(
                "with its %s address %s taken, edgepier was still running after 8 s (%s); "
                "the seed saw n2 as %r; its output:\n%s" % (which, address, sigterm, joined, log))
        assert rc != 0, log
        assert address in log or ":%s" % port in log, "the error does not name %s:\n%s" % (address, log)
        assert seed.states().get("n2") != "alive", seed.states()
    finally:
        squatter.close()
    # with the port free again, the same node starts and joins
    node.start()
    sl.wait_for(lambda: sl.full_mesh([seed, node]), 5, what="n2 joins once its port is free")
