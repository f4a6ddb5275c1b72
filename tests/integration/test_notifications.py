"""Signed notifications reach a real receiver on loopback (the example in examples/notifications),
in order per object, through outages and restarts, without ever slowing a promotion."""

from __future__ import annotations

import base64
import importlib.util
import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from modelreg.config import Settings
from modelreg.sandbox.harness import free_port
from tests.integration.conftest import wait_for
from tests.integration.promotion_helpers import approve, promote, register, succeeded
from tests.integration.test_metrics import scrape

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + base64.b64encode(b"receiver signing key, 32 bytes!").decode()


def example_receiver() -> Any:
    spec = importlib.util.spec_from_file_location("receiver", ROOT / "examples/notifications/receiver.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Receiver:
    """The example receiver in a thread, recording what arrives (and any repeat)."""

    def __init__(self, port: int, hang: float = 0.0) -> None:
        self.port, self.events, self.repeats = port, [], []
        recipe = example_receiver()
        self.server = recipe.make_server(SECRET, port, self._got, on_repeat=self.repeats.append)
        if hang:  # a receiver that holds every request, then answers
            handler = self.server.RequestHandlerClass
            original = handler.do_POST

            def slow(this: Any) -> None:
                self.hung.append(time.monotonic())
                time.sleep(hang)
                original(this)

            handler.do_POST = slow
        self.hung: list[float] = []

    def _got(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def start(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def of(self, name: str) -> list[str]:
        return [e["type"] for e in self.events if e["object"]["name"] == name]


def with_endpoint(port: int, **notifications: Any) -> Settings:
    return Settings(
        promotions={"tick_seconds": 0.3},
        notifications={
            "endpoints": [{"name": "ci", "url": f"http://127.0.0.1:{port}/hooks", "signingKeySecret": "ci-hook"}],
            "retryBaseSeconds": 0.2,
            "retryMaxSeconds": 1.0,
            **notifications,
        },
    )


@pytest.fixture
def signing_key(kube) -> str:
    body = {"metadata": {"name": "ci-hook"}, "stringData": {"secret": SECRET}}
    kube.core.create_namespaced_secret("modelreg-system", body)
    return SECRET


def outbox(kube) -> dict[str, str]:
    maps = kube.core.list_namespaced_config_map("modelreg-system", label_selector="modelreg.io/outbox=true").items
    return {k: v for cm in maps for k, v in (cm.data or {}).items()}


def scenario(kube, s3, bucket) -> None:
    """register -> verify -> promote -> approve -> roll"""
    register(kube, s3, bucket, 1)
    promote(kube, "to-prod", 1)
    approve(kube, "to-prod", "bob", "carol")
    succeeded(kube, "to-prod", "Promoted")


EXPECTED = {
    "fraud-v1": ["model_version.registered", "model_version.verified", "stage.changed"],
    "to-prod": ["promotion.requested", "promotion.approved", "promotion.approved", "promotion.succeeded"],
}


def test_signed_events_arrive_in_order_per_object(kube, s3, bucket, start_operator, signing_key):
    receiver = Receiver(free_port()).start()
    try:
        operator = start_operator(with_endpoint(receiver.port))
        before = scrape(operator)
        scenario(kube, s3, bucket)
        wait_for(lambda: len(receiver.events) >= 7, what="seven events")
        assert {name: receiver.of(name) for name in EXPECTED} == EXPECTED
        stage = next(e for e in receiver.events if e["type"] == "stage.changed")
        assert stage["data"]["to"] == "Production" and stage["data"]["approvers"] == ["bob", "carol"]
        assert stage["data"]["sha256"] == kube.get("modelversions", "fraud-v1")["spec"]["artifact"]["sha256"]
        assert stage["object"]["uid"] == kube.get("modelversions", "fraud-v1")["metadata"]["uid"]
        done = next(e for e in receiver.events if e["type"] == "promotion.succeeded")
        assert done["data"]["approvers"] == ["bob", "carol"] and done["data"]["reason"] == "Promoted"
        assert receiver.repeats == []
        wait_for(lambda: outbox(kube) == {}, what="the outbox emptied")
        after = scrape(operator)
        delivered = ("modelreg_notification_deliveries_total", (("endpoint", "ci"), ("outcome", "delivered")))
        assert after[delivered] - before.get(delivered, 0) == len(receiver.events)
        assert after[("modelreg_notification_outbox_depth", (("endpoint", "ci"),))] == 0
        assert after[("modelreg_recheck_queue_depth", ())] == 0  # nothing overdue once all is verified
    finally:
        receiver.stop()


def test_a_forged_or_tampered_delivery_is_refused_by_the_receiver(kube):
    receiver = Receiver(free_port()).start()
    try:
        body = b'{"id":"msg_x","type":"stage.changed"}'
        from modelreg.storage.webhooks import signed_headers

        headers = signed_headers(SECRET, "msg_x", body.decode())
        tampered = urllib.request.Request(
            f"http://127.0.0.1:{receiver.port}/", data=body.replace(b"stage", b"stagf"), headers=headers
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(tampered, timeout=5)
        assert refused.value.code == 401 and receiver.events == []
        genuine = urllib.request.Request(f"http://127.0.0.1:{receiver.port}/", data=body, headers=headers)
        assert urllib.request.urlopen(genuine, timeout=5).status == 204
        assert [e["id"] for e in receiver.events] == ["msg_x"]
    finally:
        receiver.stop()


def test_receiver_down_then_up_gets_every_event_once(kube, s3, bucket, start_operator, signing_key):
    port = free_port()
    start_operator(with_endpoint(port))
    scenario(kube, s3, bucket)
    wait_for(lambda: len(outbox(kube)) >= 7, what="undelivered events kept in the outbox")
    time.sleep(1.5)  # a few failed attempts, each backing off
    receiver = Receiver(port).start()
    try:
        wait_for(lambda: len(receiver.events) >= 7, what="every event after the receiver came up")
        assert {name: receiver.of(name) for name in EXPECTED} == EXPECTED
        assert len({e["id"] for e in receiver.events}) == len(receiver.events) and receiver.repeats == []
        wait_for(lambda: outbox(kube) == {}, what="the outbox emptied")
    finally:
        receiver.stop()


def test_undelivered_events_survive_an_operator_restart(kube, s3, bucket, start_operator, signing_key):
    port = free_port()
    first = start_operator(with_endpoint(port))
    scenario(kube, s3, bucket)
    wait_for(lambda: len(outbox(kube)) >= 7, what="undelivered events kept in the outbox")
    first.stop()
    receiver = Receiver(port).start()
    try:
        start_operator(with_endpoint(port))
        wait_for(lambda: len(receiver.events) >= 7, what="the events of the previous run")
        assert {name: receiver.of(name) for name in EXPECTED} == EXPECTED
        assert receiver.repeats == []
    finally:
        receiver.stop()


def test_a_hanging_receiver_does_not_delay_a_promotion(kube, s3, bucket, start_operator, signing_key):
    receiver = Receiver(free_port(), hang=20.0).start()
    try:
        start_operator(with_endpoint(receiver.port, timeoutSeconds=15, concurrency=2))
        register(kube, s3, bucket, 1)
        wait_for(lambda: receiver.hung, what="the receiver holding a delivery")
        promote(kube, "to-prod", 1)
        started = time.monotonic()
        approve(kube, "to-prod", "bob", "carol")
        succeeded(kube, "to-prod", "Promoted")
        took = time.monotonic() - started
        # Reconciles never wait on delivery: far below the 15 s a single held delivery lasts.
        assert took < 5.0, took
        assert receiver.events == []  # nothing answered yet: the deliveries are still held
    finally:
        receiver.stop()


def test_a_full_outbox_drops_the_oldest_and_says_so(kube, s3, bucket, start_operator, signing_key):
    start_operator(with_endpoint(free_port(), maxPending=3))
    scenario(kube, s3, bucket)
    wait_for(lambda: len(outbox(kube)) == 3, what="the outbox at its cap")
    dropped = wait_for(
        lambda: [e for e in kube.core.list_namespaced_event("ml").items if e.reason == "NotificationDropped"],
        what="a NotificationDropped Event",
    )
    assert "outbox of namespace ml holds at most 3" in dropped[0].message
    assert any('"promotion.succeeded"' in v for v in outbox(kube).values())  # the newest are kept


def test_a_receiver_that_rejects_is_not_retried(kube, s3, bucket, start_operator, signing_key):
    wrong = "whsec_" + base64.b64encode(b"a different key altogether....!!").decode()
    kube.core.patch_namespaced_secret("ci-hook", "modelreg-system", {"stringData": {"secret": wrong}})
    receiver = Receiver(free_port()).start()  # verifies with SECRET: answers 401 to every delivery
    try:
        start_operator(with_endpoint(receiver.port))
        register(kube, s3, bucket, 1)
        failed = wait_for(
            lambda: [e for e in kube.core.list_namespaced_event("ml").items if e.reason == "NotificationFailed"],
            what="a NotificationFailed Event",
        )
        assert "answered HTTP 401; not retried" in failed[0].message
        wait_for(lambda: outbox(kube) == {}, what="the failed deliveries removed")
        assert receiver.events == []
    finally:
        receiver.stop()


def grant_config_map_writer(kube, user: str) -> Any:
    """`user` may write ConfigMaps in the operator's namespace (and nothing else there: no Secrets)."""
    role = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "create", "patch"]}
    kube.cluster.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "config-map-writer", "namespace": "modelreg-system"},
                "rules": [role],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "config-map-writer", "namespace": "modelreg-system"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "config-map-writer"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
            },
        ]
    )
    return kube.as_user(user).core


def test_planted_or_altered_outbox_entries_are_never_signed(kube, s3, bucket, start_operator, signing_key):
    """Whoever may write ConfigMaps in the operator's namespace plants notices and alters one the
    operator wrote; after a restart only what the operator sealed is signed and delivered."""
    port = free_port()
    first = start_operator(with_endpoint(port))
    register(kube, s3, bucket, 1)  # registered + verified, undelivered: the receiver is not up yet
    wait_for(lambda: len(outbox(kube)) >= 2, what="undelivered events kept in the outbox")
    first.stop()
    genuine = outbox(kube)
    verified_key = next(k for k, v in genuine.items() if '"model_version.verified"' in v)
    registered_id = next(json.loads(v)["id"] for v in genuine.values() if '"model_version.registered"' in v)
    mv = kube.get("modelversions", "fraud-v1")
    ref = {k: mv[k] for k in ("apiVersion", "kind")} | {
        "namespace": "ml",
        "name": "fraud-v1",
        "uid": mv["metadata"]["uid"],
    }
    forged_body = json.dumps({"id": "msg_forged", "type": "stage.changed", "object": ref, "data": {"to": "Production"}})
    forged = json.dumps(
        {"endpoint": "ci", "id": "msg_forged", "type": "stage.changed", "ref": ref, "body": forged_body}
    )
    mallory = grant_config_map_writer(kube, "mallory")
    # 1. an entry planted in the operator's own outbox ConfigMap
    mallory.patch_namespaced_config_map(
        "modelreg-outbox-ml", "modelreg-system", {"data": {"00000000000000000001.ci": forged}}
    )
    # 2. an outbox ConfigMap of the attacker's own making, for another namespace
    labels = {"modelreg.io/outbox": "true"}
    planted = {"metadata": {"name": "modelreg-outbox-payments", "labels": labels}, "data": {"1.ci": forged}}
    mallory.create_namespaced_config_map("modelreg-system", planted)
    # 3. an entry the operator wrote, its body altered, its seal kept
    altered = json.loads(genuine[verified_key])
    altered["body"] = altered["body"].replace('"model_version.verified"', '"stage.changed"')
    altered_text = json.dumps(altered)
    mallory.patch_namespaced_config_map("modelreg-outbox-ml", "modelreg-system", {"data": {verified_key: altered_text}})

    receiver = Receiver(port).start()
    try:
        start_operator(with_endpoint(port))
        wait_for(lambda: outbox(kube) == {}, what="the outbox emptied")  # every entry delivered or dropped
        wait_for(lambda: registered_id in [e["id"] for e in receiver.events], what="the sealed entry delivered")
        assert [e["id"] for e in receiver.events] == [registered_id]  # nothing planted, nothing altered
        assert all(e["type"] != "stage.changed" for e in receiver.events) and receiver.repeats == []
        tampered = wait_for(
            lambda: [
                e for e in kube.core.list_namespaced_event("modelreg-system").items if e.reason == "OutboxTampered"
            ],
            what="OutboxTampered Events",
        )
        on = {e.involved_object.name: e for e in tampered}
        assert set(on) == {"modelreg-outbox-ml", "modelreg-outbox-payments"}
        assert all(e.type == "Warning" and e.involved_object.kind == "ConfigMap" for e in tampered)
        assert "2 outbox entries dropped, never signed nor delivered" in on["modelreg-outbox-ml"].message
        assert verified_key in on["modelreg-outbox-ml"].message
        assert not [e for e in kube.core.list_namespaced_event("ml").items if e.reason == "OutboxTampered"]
        # what the operator publishes now is still sealed and delivered
        promote(kube, "to-prod", 1)
        wait_for(lambda: "promotion.requested" in receiver.of("to-prod"), what="a new event delivered")
    finally:
        receiver.stop()
