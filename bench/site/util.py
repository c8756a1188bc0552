"""Shared helpers of site-bench: logging, processes we own, commands in namespaces,
statistics, digests.

Every process the bench starts goes through spawn(): it gets its own session (so it is
killed as a group) and is remembered in CHILDREN, so teardown can end exactly the
processes we started, never anything by name.
"""

import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

# The helpers shared with the test suites (tests/lib/eptest.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))),
                                "tests", "lib"))

PYTHON = "/usr/bin/python3"
SYSTEM_BLOB_CACHE = "/var/lib/containers/cache"   # containers/image blob-info cache of root
CLK_TCK = os.sysconf("SC_CLK_TCK")
MiB = 1 << 20

CHILDREN = []            # every Popen we start
_children_lock = threading.Lock()
VERBOSE = False


class BenchError(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def vlog(msg):
    if VERBOSE:
        print("  . " + msg, flush=True)


def spawn(cmd, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.Popen([str(c) for c in cmd], start_new_session=True, **kw)
    with _children_lock:
        CHILDREN.append(p)
    vlog("spawn pid %d: %s" % (p.pid, " ".join(map(str, cmd))[:300]))
    return p


def kill_tree(p, grace=5.0, sig=signal.SIGTERM):
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        return
    try:
        p.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            pass


def kill_all_children():
    with _children_lock:
        procs = list(reversed(CHILDREN))
    for p in procs:
        try:
            kill_tree(p, grace=3.0)
        except Exception as e:   # keep cleaning up
            print("warning: could not stop pid %d: %s" % (p.pid, e), file=sys.stderr)


def run(cmd, timeout=120, check=True, **kw):
    """Run a command to completion in its own process group.
    Returns (rc, stdout, stderr, seconds)."""
    t0 = time.monotonic()
    p = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(p, 1, signal.SIGKILL)
        out, err = p.communicate()
        if check:
            raise BenchError("timeout after %ss: %s\n%s" % (
                timeout, " ".join(map(str, cmd)), err.decode(errors="replace")[-2000:]))
        return -9, out.decode(errors="replace"), "timeout after %ss\n" % timeout + \
            err.decode(errors="replace"), time.monotonic() - t0
    out, err = out.decode(errors="replace"), err.decode(errors="replace")
    if check and p.returncode != 0:
        raise BenchError("command failed (rc=%d): %s\nstdout: %s\nstderr: %s" % (
            p.returncode, " ".join(map(str, cmd)), out[-2000:], err[-2000:]))
    return p.returncode, out, err, time.monotonic() - t0


def sh(cmd, check=True):
    """Quick administrative command (ip, tc, ...); returns stdout."""
    p = subprocess.run([str(c) for c in cmd], capture_output=True, stdin=subprocess.DEVNULL,
                       timeout=60)
    if check and p.returncode != 0:
        raise BenchError("command failed (rc=%d): %s\n%s" % (
            p.returncode, " ".join(map(str, cmd)), p.stderr.decode(errors="replace").strip()))
    return p.stdout.decode(errors="replace")


def in_ns(ns, cmd):
    return ["ip", "netns", "exec", ns] + list(cmd)


def with_blob_cache(cache_dir, cmd):
    """Run a containers/image client (skopeo) with a fresh private blob-info-cache:
    a private mount namespace with cache_dir bind-mounted over the root-wide cache
    directory (see tests/clients/conftest.py)."""
    os.makedirs(cache_dir, exist_ok=True)
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" %s && exec "$@"' % SYSTEM_BLOB_CACHE, str(cache_dir)] + list(cmd)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def proc_stats(pid):
    """(peak RSS in MiB = VmHWM, CPU seconds = utime+stime) of a live process, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            hwm = next((int(l.split()[1]) for l in f if l.startswith("VmHWM:")), 0)
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK   # utime, stime (fields 14, 15)
        return hwm / 1024.0, cpu
    except (OSError, StopIteration, IndexError, ValueError):
        return None


def med_min_max(values):
    v = [x for x in values if x is not None]
    if not v:
        return None, None, None
    return statistics.median(v), min(v), max(v)


def fmt(x, nd=1):
    if x is None:
        return "-"
    return ("%%.%df" % nd) % x


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)


def tail(path, n=30):
    try:
        with open(path, "rb") as f:
            return "\n".join(f.read().decode(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log %s)" % path
