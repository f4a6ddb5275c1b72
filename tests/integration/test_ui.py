"""`kubectl modelreg ui` against the real operator, the emulated API server (HTTPS, RBAC, webhooks)
and moto's S3: the pages, the attacks on the local server, and a real browser (Debian's chromium)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from modelreg.cli.main import main as kubectl_modelreg
from modelreg.cli.main import parser
from modelreg.cli.ui.server import Pages, UIServer
from modelreg.config import Settings
from modelreg.domain.approvals import approval_key
from modelreg.storage.kube_client import KubeClient
from tests.conftest import ROOT
from tests.integration.conftest import wait_for
from tests.integration.promotion_helpers import promote, register, succeeded

CHROMIUM = "/usr/bin/chromium"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def settings() -> Settings:
    return Settings(promotions={"tick_seconds": 0.3})


@pytest.fixture
def kubeconfig(cluster, tmp_path) -> Callable[[str], Path]:
    def write(user: str) -> Path:
        return cluster.write_kubeconfig(tmp_path / f"kubeconfig-{user}", namespace="ml", user=user)

    return write


@pytest.fixture
def ui(kubeconfig, operator) -> Iterator[Callable[[str], UIServer]]:
    """Start `kubectl modelreg ui` as `user` (what the command builds: KubeClient from their kubeconfig)."""
    started: list[UIServer] = []

    def start(user: str) -> UIServer:
        kube = KubeClient(str(kubeconfig(user)), None)
        server = UIServer(Pages(kube, "ml", kube.whoami(), "modelreg-emulator")).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def signed_in(server: UIServer) -> requests.Session:
    session = requests.Session()
    answer = session.get(server.url, allow_redirects=False)
    assert answer.status_code == 303 and "token" not in answer.headers["Location"]
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    return session


@pytest.fixture
def fraud(kube, s3, bucket, operator) -> str:
    """fraud v1 in Production, v2 registered (child of v1), and v2 -> Production waiting for approvals."""
    register(kube, s3, bucket, 1, {"auc": 0.90, "latency_ms": 40})
    promote(kube, "fraud-v1-to-production", 1, approvers=("bob", "carol"))
    succeeded(kube, "fraud-v1-to-production", "Promoted")
    register(kube, s3, bucket, 2, {"auc": 0.93, "latency_ms": 35})
    kube.patch("modelversions", "fraud-v2", {"spec": {"lineage": {"parentVersion": 1, "runId": "run-2"}}})
    promote(kube, "fraud-v2-to-production", 2, criteria=[{"metric": "auc", "min": 0.9}])
    return "fraud-v2-to-production"


def annotations(kube, name: str) -> dict[str, str]:
    return kube.get("modelpromotions", name)["metadata"].get("annotations") or {}


def test_listens_on_loopback_by_default():
    args = parser().parse_args(["ui"])
    assert (args.address, args.no_browser) == ("127.0.0.1", False)


def test_attacks_on_the_local_server_are_refused_and_write_nothing(ui, kube, fraud):
    server = ui("bob")
    host, port = server.httpd.server_address[:2]
    assert host == "127.0.0.1"
    base = f"http://127.0.0.1:{port}"
    before = annotations(kube, fraud)
    session = signed_in(server)
    assert "fraud" in session.get(base + "/").text

    # DNS rebinding: a page at evil.example resolving to 127.0.0.1 sends its own Host, with the cookie
    rebound = session.get(base + "/", headers={"Host": f"evil.example:{port}"})
    assert rebound.status_code == 403 and "fraud" not in rebound.text
    assert session.get(base + "/", headers={"Host": "127.0.0.1"}).status_code == 403  # another port

    # without the per-run token (another local user, or any web page): nothing
    for attempt in (requests.get(base + "/"), requests.get(base + "/?token=guess"), requests.get(base + "/events")):
        assert attempt.status_code == 403 and "fraud" not in attempt.text
    assert requests.get(base + "/", cookies={f"modelreg-ui-{port}": "guess"}).status_code == 403

    csrf = session.get(base + "/promotions").text.split('name="csrf" value="')[1].split('"')[0]
    approve = f"{base}/promotions/ml/{fraud}/approve"
    # a cross-site form POST (as if the browser sent the cookie): no CSRF token
    assert session.post(approve, data={"promotion": fraud}).status_code == 403
    assert session.post(approve, data={"csrf": "guess"}).status_code == 403
    # ... or the token but from another origin / another site
    assert session.post(approve, data={"csrf": csrf}, headers={"Origin": "https://evil.example"}).status_code == 403
    assert session.post(approve, data={"csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    # a GET (an <img src>, a link) changes nothing
    assert session.get(approve).status_code == 404
    # a JSON body (fetch with text/plain or JSON) is not a form
    assert session.post(approve, json={"csrf": csrf}).status_code == 415
    # CORS: a preflight gets no Access-Control-* headers, nor does any answer
    preflight = session.options(
        approve, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 405
    for answer in (preflight, session.get(base + "/", headers={"Origin": "https://evil.example"})):
        assert not [h for h in answer.headers if h.lower().startswith("access-control-")]
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert annotations(kube, fraud) == before  # nothing was written

    # the page itself: the approval is written as bob
    done = session.post(approve, data={"csrf": csrf}, headers={"Origin": base})
    assert done.status_code == 200 and f"approved {fraud} as bob" in done.text
    assert annotations(kube, fraud)[approval_key("bob")] == "bob"
    # Withdraw: the same checks guard it, and it takes back bob's own approval only
    withdraw = f"{base}/promotions/ml/{fraud}/withdraw"
    assert session.post(withdraw, data={"csrf": "guess"}, headers={"Origin": base}).status_code == 403
    assert approval_key("bob") in annotations(kube, fraud)
    undone = session.post(withdraw, data={"csrf": csrf}, headers={"Origin": base})
    assert undone.status_code == 200 and f"withdrew the approval of {fraud} as bob" in undone.text
    assert approval_key("bob") not in annotations(kube, fraud)


def test_hostile_names_annotations_and_metrics_render_as_text(ui, kube, s3, bucket, operator):
    register(kube, s3, bucket, 1, {HOSTILE: 1.0, "auc": 0.9})
    kube.patch(
        "modelversions",
        "fraud-v1",
        {
            "metadata": {"annotations": {"note": f'"><img src=x onerror=alert(1)>{HOSTILE}'}},
            "spec": {"description": HOSTILE, "lineage": {"runId": HOSTILE}},
        },
    )
    promote(kube, "fraud-v1-to-staging", 1, target="Staging", criteria=[{"metric": HOSTILE, "min": 0}])
    server = ui("bob")
    session, base = signed_in(server), server.gate.origin
    for path in ("/", "/models/ml/fraud", "/models/ml/fraud/versions/1", "/promotions"):
        text = session.get(base + path).text
        assert "<script>alert" not in text and "<img src=x" not in text, path
    model = session.get(base + "/models/ml/fraud").text
    assert 'aria-label="Chart of metric &lt;script&gt;alert(1)&lt;/script&gt;' in model
    version = session.get(base + "/models/ml/fraud/versions/1").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in version and "&lt;img src=x onerror=alert(1)&gt;" in version


def test_pages_show_models_charts_versions_gates_and_lineage(ui, kube, fraud):
    server = ui("bob")
    session = signed_in(server)
    base = server.gate.origin
    models = session.get(base + "/").text
    assert "/models/ml/fraud" in models and "1 awaiting your approval" in models and "v1" in models
    model = session.get(base + "/models/ml/fraud").text
    assert 'aria-label="Chart of metric auc across 2 versions; Production: v1 = 0.9"' in model
    assert 'aria-label="Chart of metric latency_ms' in model
    assert '<th scope="col" aria-sort="ascending"><button type="button" data-kind="number">Version</button>' in model
    assert "approved by bob, carol" in model
    version = session.get(base + "/models/ml/fraud/versions/2?diff=1").text
    sha = kube.get("modelversions", "fraud-v2")["spec"]["artifact"]["sha256"]
    assert sha in version and "run-2" in version and "fraud v1" in version
    assert "<td>0.93</td><td>0.9</td>" in version.replace("\n", "").replace("  ", "")
    promotions = session.get(base + "/promotions").text
    assert fraud in promotions and "0/2" in promotions and "Requested by alice" in promotions
    assert '<button type="submit" aria-label="Approve fraud-v2-to-production">Approve</button>' in promotions
    assert "For you: you may approve it." in promotions  # the API server's answer (SelfSubjectAccessReview)
    outsider = ui("dave")  # an editor without the approve permission is told so before trying
    dave = signed_in(outsider)
    assert "RBAC does not let you approve fraud/Production" in dave.get(outsider.gate.origin + "/promotions").text
    requester = ui("alice")  # the requester gets no Approve button, nor a badge
    alice = signed_in(requester)
    assert "you requested it" in alice.get(requester.gate.origin + "/promotions").text
    assert "awaiting your approval" not in alice.get(requester.gate.origin + "/").text


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no {CHROMIUM}: apt-get install -y chromium")
def test_in_a_browser_bob_approves_dave_is_denied_and_changes_appear_live(ui, kube, s3, bucket, fraud, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    dave_denial = kubectl_denial(kube, fraud)
    bob, dave = ui("bob"), ui("dave")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(bob.url)
            assert page.url == bob.gate.origin + "/"  # the token left the address bar
            page.get_by_role("link", name="fraud", exact=True).click()
            assert page.locator("svg[role=img][aria-label^='Chart of metric auc']").count() == 1
            assert page.locator("svg[role=img]").count() == 2
            assert page.get_by_role("columnheader", name="Version").count() == 1

            # live: a version registered with kubectl appears on the open page, without reload
            register(kube, s3, bucket, 3, {"auc": 0.95, "latency_ms": 30}, wait=False)
            page.get_by_role("link", name="v3", exact=True).wait_for(timeout=15000)
            page.screenshot(path=str(tmp_path / "model.png"), full_page=True)
            (ROOT / "docs").mkdir(exist_ok=True)
            page.screenshot(path=str(ROOT / "docs/ui.png"), full_page=True)

            page.get_by_role("link", name="Promotions").click()
            page.get_by_role("button", name=f"Approve {fraud}").click()
            assert page.get_by_role("status").inner_text() == f"approved {fraud} as bob"
            wait_for(
                lambda: (
                    [
                        (a["user"], a.get("via"))
                        for a in kube.get("modelpromotions", fraud).get("status", {}).get("approvals") or []
                    ]
                    == [("bob", "webhook")]
                ),
                what="bob's approval counted via the webhook",
            )
            page.screenshot(path=str(tmp_path / "approved.png"), full_page=True)

            before = annotations(kube, fraud)
            other = browser.new_page(viewport={"width": 420, "height": 900})  # a narrow window
            other.goto(dave.url)
            other.get_by_role("link", name="Promotions").click()
            other.get_by_role("button", name=f"Approve {fraud}").click()
            assert other.get_by_role("alert").inner_text() == dave_denial
            other.screenshot(path=str(tmp_path / "denied.png"), full_page=True)
            assert annotations(kube, fraud) == before
        finally:
            browser.close()


def kubectl_denial(kube, promotion: str) -> str:
    """What the API server says to dave's approval (checked through the CLI: nothing is written)."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        path = Path(f"/tmp/kubeconfig-dave-{time.time_ns()}")
        kube.cluster.write_kubeconfig(path, namespace="ml", user="dave")
        code = kubectl_modelreg(["approve", promotion, "--kubeconfig", str(path)])
    path.unlink()
    assert code == 1, err.getvalue()
    return err.getvalue().strip().removeprefix("error: ")
