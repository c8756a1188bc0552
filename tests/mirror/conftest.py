"""Fixtures of the pull-through mirror tests (see README.md and mirrorlib.py)."""

import os
import shutil
import tempfile

import pytest

import mirrorlib as ml

_worlds = ml.RunningWorlds()


def pytest_report_header(config):
    return "edgepier mirror tests: EP_BIN=%s" % ml.EP_BIN


def pytest_sessionstart(session):
    missing = [p for p in (ml.EP_BIN, ml.DOCKER_REGISTRY, shutil.which("skopeo"), shutil.which("openssl"))
               if not p or not os.access(p, os.X_OK)]
    if missing:
        raise pytest.UsageError("mirror tests need edgepier (build it or set EP_BIN), Debian's "
                                "docker-registry, skopeo and openssl; missing: %s" % missing)


@pytest.fixture
def env():
    """A per-test world (temp dir, processes); everything is stopped and removed after."""
    yield from _worlds.run(ml.Env)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of every log of the test's processes."""
    outcome = yield
    _worlds.attach_logs(outcome.get_result(), lines=40)


@pytest.fixture(scope="session")
def images():
    """Deterministic images, made once: a/b/c (2 x 1 MiB layers), different bytes each."""
    d = tempfile.mkdtemp(prefix="ep-mirror-img-")
    try:
        yield {name: ml.make_image(os.path.join(d, name), "edgepier-mirror-" + name, layers=2,
                                   layer_mb=1, tag="v1")
               for name in ("a", "b", "c")}
    finally:
        shutil.rmtree(d, ignore_errors=True)
