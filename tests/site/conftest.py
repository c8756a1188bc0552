"""Fixtures of the multi-node site tests (see README.md and sitelib.py)."""

import os
import shutil

import pytest

import sitelib as sl

_worlds = sl.RunningWorlds()


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running (a 50-node site); runs only with EP_SLOW=1")
    config.addinivalue_line("markers", "netns: needs root to create network namespaces")


def pytest_report_header(config):
    return "edgepier site tests: EP_BIN=%s EPCTL_BIN=%s" % (sl.EP_BIN, sl.EPCTL)


def pytest_sessionstart(session):
    missing = [p for p in (sl.EP_BIN, sl.EPCTL, shutil.which("skopeo"))
               if not p or not os.access(p, os.X_OK)]
    if missing:
        raise pytest.UsageError("site tests need edgepier and epctl (build them, or set EP_BIN "
                                "and EPCTL_BIN) and skopeo; missing: %s" % missing)
    if os.geteuid() == 0 and shutil.which("ip"):
        sl.cleanup_stale_namespaces()


def pytest_collection_modifyitems(config, items):
    if os.environ.get("EP_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set EP_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def env():
    """A per-test world (temp dir, processes, namespaces); all removed after."""
    yield from _worlds.run(sl.Env)


@pytest.fixture
def netns_ok():
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("network namespaces need root and iproute2")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of every node's log."""
    outcome = yield
    _worlds.attach_logs(outcome.get_result(), max_logs=6, lines=30)


def pytest_terminal_summary(terminalreporter):
    if sl.RESULTS:
        terminalreporter.section("site measurements")
        for line in sl.RESULTS:
            terminalreporter.write_line(line)
