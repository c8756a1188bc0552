"""The emulated edge site: Linux network namespaces, veth pairs and one bridge.

    epsb-cloud  eth0 10.77.0.2 ──(tbf both ways = the uplink)──┐
                                                               │  "cloud"
    epsb-site   br0  ───────────────────────────────────────────┤
                                                               │  "n1" .. "nN"
    epsb-n1     eth0 10.77.0.11 ─── ... ─── epsb-nN eth0 10.77.0.(10+N)

Every address lives inside a namespace this module creates; the host's interfaces and
routes are never touched (veth pairs are created directly inside their namespaces).
The uplink is the veth pair cloud<->bridge; its rate is limited with tbf on the egress
of BOTH ends (cloud eth0: downloads to the site; site-side "cloud": requests/uploads).
Bytes over the uplink are read from the cloud-side veth's counters.

All names start with PREFIX, so a crashed run's leftovers are found and removed by
cleanup_leftovers() (processes inside them are ours: we started them there).
"""

import fcntl
import glob
import json
import os
import shutil
import signal
import subprocess
import time

from util import BenchError, log, sh, vlog
from eptest import mounts_under, unmount_all_under  # noqa: F401  (tests/lib, on the path via util)

PREFIX = "epsb-"
SITE_NS = PREFIX + "site"
CLOUD_NS = PREFIX + "cloud"
SUBNET = "10.77.0"
CLOUD_IP = SUBNET + ".2"
TMP_PREFIX = "epsb-"          # /tmp/epsb-XXXX work dirs
LOCK = "/run/epsb-site-bench.lock"


def node_ns(k):
    return "%sn%d" % (PREFIX, k)


def node_ip(k):
    return "%s.%d" % (SUBNET, 10 + k)


def list_our_netns():
    out = sh(["ip", "netns", "list"], check=False)
    return [l.split()[0] for l in out.splitlines() if l.startswith(PREFIX)]


def kill_ns_pids(ns):
    pids = sh(["ip", "netns", "pids", ns], check=False).split()
    for p in pids:
        try:
            os.kill(int(p), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    return len(pids)

def remove_tree(path):
    if path and os.path.exists(path):
        unmount_all_under(path)
        shutil.rmtree(path, ignore_errors=True)


def acquire_lock():
    """One site-bench at a time: a second one would delete the first one's namespaces."""
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise BenchError("another site-bench is running (lock %s held); not touching its site"
                         % LOCK)
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def cleanup_leftovers(quiet=False):
    """Remove what a previous (crashed) run left: our namespaces (and the processes in
    them), and /tmp/epsb-* work dirs. Call only while holding the lock."""
    found = []
    for ns in list_our_netns():
        n = kill_ns_pids(ns)
        found.append("netns %s (%d processes)" % (ns, n))
    if found:
        time.sleep(0.3)
    for ns in list_our_netns():
        kill_ns_pids(ns)
        sh(["ip", "netns", "del", ns], check=False)
    for d in glob.glob("/tmp/%s*" % TMP_PREFIX):
        found.append(d)
        remove_tree(d)
    if found and not quiet:
        log("cleaned up leftovers of a previous run: " + ", ".join(found))


class Site:
    def __init__(self, nodes):
        self.nodes = nodes
        self.uplink_mbit = None        # None = not shaped
        self.cut = False

    # ------------------------------------------------------------------ lifecycle
    def create(self):
        if self.nodes < 1 or self.nodes > 200:
            raise BenchError("nodes must be 1..200")
        for ns in [SITE_NS, CLOUD_NS] + [node_ns(k) for k in range(1, self.nodes + 1)]:
            sh(["ip", "netns", "add", ns])
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        sh(["ip", "-n", SITE_NS, "link", "add", "br0", "type", "bridge", "stp_state", "0",
            "forward_delay", "0"])
        sh(["ip", "-n", SITE_NS, "link", "set", "br0", "up"])
        self._attach(CLOUD_NS, "cloud", CLOUD_IP)
        for k in range(1, self.nodes + 1):
            self._attach(node_ns(k), "n%d" % k, node_ip(k))
        vlog("site with %d nodes created" % self.nodes)

    def _attach(self, ns, port, ip):
        sh(["ip", "link", "add", "eth0", "netns", ns, "type", "veth",
            "peer", "name", port, "netns", SITE_NS])
        sh(["ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0"])
        sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
        sh(["ip", "-n", SITE_NS, "link", "set", port, "master", "br0", "up"])

    def destroy(self):
        for ns in [node_ns(k) for k in range(1, self.nodes + 1)] + [CLOUD_NS, SITE_NS]:
            kill_ns_pids(ns)
        for ns in [node_ns(k) for k in range(1, self.nodes + 1)] + [CLOUD_NS, SITE_NS]:
            sh(["ip", "netns", "del", ns], check=False)

    # ------------------------------------------------------------------ uplink
    def set_uplink(self, mbit):
        """Limit the uplink to mbit Mbit/s in both directions (tbf on the egress of both
        veth ends); 0 or None = unlimited."""
        for ns, dev in ((CLOUD_NS, "eth0"), (SITE_NS, "cloud")):
            sh(["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"], check=False)
            if mbit:
                rate_bps = mbit * 1e6 / 8
                burst = max(32 * 1024, int(rate_bps / 100))        # >= 10 ms of traffic
                sh(["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf",
                    "rate", "%dmbit" % mbit, "burst", str(burst), "latency", "100ms"])
        self.uplink_mbit = mbit or None
        vlog("uplink %s" % ("%d Mbit/s" % mbit if mbit else "unlimited"))

    def cut_uplink(self):
        """Black-hole the uplink: the site-side port goes down, frames are dropped,
        TCP connections stall (no RST), new connections fail after ARP gives up."""
        sh(["ip", "-n", SITE_NS, "link", "set", "cloud", "down"])
        self.cut = True

    def restore_uplink(self):
        sh(["ip", "-n", SITE_NS, "link", "set", "cloud", "up"])
        self.cut = False

    def uplink_bytes(self):
        """(tx, rx) byte counters of the cloud's veth: tx = cloud -> site."""
        # netlink in the cloud netns (ip -n): no mount namespace / sysfs remount needed
        st = json.loads(sh(["ip", "-n", CLOUD_NS, "-s", "-j", "link", "show", "dev", "eth0"]))
        s64 = st[0]["stats64"]
        return int(s64["tx"]["bytes"]), int(s64["rx"]["bytes"])

    # ------------------------------------------------------------------ helpers
    def http_status(self, ns, url, timeout=2):
        p = subprocess.run(["ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null",
                            "-m", str(timeout), "-w", "%{http_code}", url],
                           capture_output=True, stdin=subprocess.DEVNULL)
        try:
            return int(p.stdout.decode().strip() or 0)
        except ValueError:
            return 0

    def wait_http(self, ns, url, proc=None, timeout=30, logfile=None, want=200):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise BenchError("process for %s exited rc=%s during startup%s" % (
                    url, proc.returncode, "; log %s" % logfile if logfile else ""))
            if self.http_status(ns, url) == want:
                return
            time.sleep(0.1)
        raise BenchError("%s not ready after %ss%s" % (
            url, timeout, "; log %s" % logfile if logfile else ""))
