"""The admin listener's status page, in a real browser.

A 3-node loopback site (real edgepier processes, tests/site/sitelib.py); an
image pushed to n1 is auto-pinned and replicated to n2 and n3. Headless
Chromium (Debian's `chromium`) loads http://<n1 admin>/ and runs its script;
the test reads the rendered DOM (--dump-dom): every member with its state,
the pinned image with every node's replication at 100 %, the traffic tiles
and chart. A screenshot goes to EP_BUILD_DIR/status-page.png. With an admin
token the page asks for it, and renders once given it in the URL fragment.
"""
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "site"))
import sitelib as sl  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BUILD = Path(os.environ.get("EP_BUILD_DIR", sl.REPO / "build"))
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="needs Debian's chromium (scripts/install-deps.sh installs it)")


class Dom(HTMLParser):
    """Elements by id, and every element carrying data-* attributes, with their text."""

    def __init__(self, html):
        super().__init__()
        self.by_id, self.tagged, self._open = {}, [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        node = {"tag": tag, "attrs": dict(attrs), "text": ""}
        if tag not in ("meta", "input", "br", "img", "link"):
            self._open.append(node)
        if "id" in node["attrs"]:
            self.by_id[node["attrs"]["id"]] = node
        if any(k.startswith("data-") for k in node["attrs"]):
            self.tagged.append(node)

    def handle_endtag(self, tag):
        if self._open and self._open[-1]["tag"] == tag:
            self._open.pop()

    def handle_data(self, data):
        for node in self._open:
            node["text"] += data

    def text(self, element_id):
        return " ".join(self.by_id[element_id]["text"].split())

    def with_attr(self, name):
        return [n for n in self.tagged if name in n["attrs"]]


def chromium(url, tmp, screenshot=None):
    profile = tmp / ("chrome-%d" % len(list(tmp.glob("chrome-*"))))
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--enable-logging=stderr", "--user-data-dir=%s" % profile, "--virtual-time-budget=8000"]
    cmd += ["--window-size=1280,1100", "--screenshot=%s" % screenshot] if screenshot else ["--dump-dom"]
    p = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Content Security Policy" not in p.stderr, p.stderr[-3000:]
    return p.stdout


@pytest.fixture
def env():
    e = sl.Env()
    yield e
    e.close()


def test_status_page_shows_the_site(env, tmp_path):
    nodes, _ = env.site(3, join_timeout=30)
    n1 = nodes[0]
    image = env.image("status-page")
    n1.push(image, "team/app", "v1")
    ref = "team/app:v1"

    def replicated():
        pins = {p["ref"]: p for p in n1.admin("/admin/v1/pins")["pins"]}
        return ref in pins and len(pins[ref]["holders"]) == 3
    sl.wait_for(replicated, 60, what="the pushed image on all three nodes")

    dom = Dom(chromium(n1.admin_url + "/", tmp_path))
    assert dom.by_id["error"]["text"].strip() == "", dom.text("error")
    assert dom.text("node-name") == "n1"
    assert dom.text("site-size") == "3 of 3 members alive"

    members = {n["attrs"]["data-node"]: n for n in dom.with_attr("data-state")}
    assert set(members) == {"n1", "n2", "n3"}, members.keys()
    for name, node in members.items():
        assert node["attrs"]["data-state"] == "alive"
        address = next(n for n in nodes if n.name == name).registry_address
        assert address in node["text"], node["text"]

    images = {n["attrs"]["data-ref"]: n for n in dom.with_attr("data-ref")}
    assert ref in images, images.keys()
    assert images[ref]["attrs"]["data-holders"] == "3"
    assert images[ref]["attrs"]["data-kind"] == "auto"  # pinned by its first push
    progress = {n["attrs"]["data-node"]: n["attrs"] for n in dom.with_attr("data-percent")}
    assert set(progress) == {"n1", "n2", "n3"}, progress
    assert all(p["data-percent"] == "100" and p["data-complete"] == "true" for p in progress.values()), progress

    # n1 received the push from a client and served n2 and n3 from it.
    assert dom.text("to-peers") not in ("–", "0 B"), dom.text("to-peers")
    assert dom.text("uplink-saved") == "–"  # nothing fetched here: no share to show
    series = {n["attrs"]["data-series"] for n in dom.with_attr("data-series")}
    assert series == {"up", "peer"}
    # n2 fetched the image from its peers: the page on n2 shows the uplink saved.
    dom2 = Dom(chromium(nodes[1].admin_url + "/", tmp_path))
    assert dom2.text("uplink-saved") == "100%", dom2.text("uplink-saved")
    assert dom2.text("from-peers") != "0 B"

    shot = BUILD / "status-page.png"
    chromium(n1.admin_url + "/", tmp_path, screenshot=shot)
    assert shot.stat().st_size > 10000


def test_status_page_asks_for_the_admin_token(env, tmp_path):
    token_file = env.dir / "admin.token"
    token_file.write_text("s3cret-token-for-the-page\n")
    node = env.node("tok", extra=["--edgepier.admin-token-file=%s" % token_file])
    dom = Dom(chromium(node.admin_url + "/", tmp_path))
    assert "display: block" in dom.by_id["token-form"]["attrs"].get("style", "")
    assert "token" in dom.text("error")
    assert not dom.with_attr("data-state")  # no data without the token

    dom = Dom(chromium(node.admin_url + "/#token=s3cret-token-for-the-page", tmp_path))
    assert dom.by_id["error"]["text"].strip() == ""
    assert [n["attrs"]["data-node"] for n in dom.with_attr("data-state")] == ["tok"]
