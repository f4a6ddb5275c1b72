"""Notifications: payload, filters, retry classification and backoff, per-object order, the cap,
and the seal that keeps planted or altered outbox entries from ever being signed."""

import asyncio
import base64
import dataclasses
import importlib.util
import json
import logging
from pathlib import Path

import pytest
import standardwebhooks

from modelreg.config import NotificationSettings
from modelreg.domain import notifications as n
from modelreg.domain.notifications import Endpoint, OutboxSeals, Pending
from modelreg.domain.seals import Sealer
from modelreg.logs import JsonFormatter
from modelreg.services.notifications import Notifier
from modelreg.storage.webhooks import signed_headers

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
VERSION = {
    "apiVersion": "modelreg.io/v1alpha1",
    "kind": "ModelVersion",
    "metadata": {"namespace": "fraud", "name": "fraud-v3", "uid": "u-1"},
    "spec": {"modelName": "fraud", "version": 3, "artifact": {"sha256": "a" * 64}},
}


def receiver():
    spec = importlib.util.spec_from_file_location("receiver", ROOT / "examples/notifications/receiver.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pending(key, uid="u-1", endpoint="ci", **kw):
    return Pending(key, endpoint, f"msg_{key}", "stage.changed", {"uid": uid, "namespace": "fraud"}, "{}", **kw)


def test_payload_names_the_object_and_its_excerpt():
    item = n.notice(n.STAGE_CHANGED, VERSION, **{"from": "Staging", "to": "Production"}, approvers=["bob", "carol"])
    body = json.loads(n.payload(item, "msg_1", "2026-11-28T00:00:00Z"))
    assert body == {
        "id": "msg_1",
        "type": "stage.changed",
        "time": "2026-11-28T00:00:00Z",
        "object": {
            "apiVersion": "modelreg.io/v1alpha1",
            "kind": "ModelVersion",
            "namespace": "fraud",
            "name": "fraud-v3",
            "uid": "u-1",
        },
        "data": {
            "model": "fraud",
            "version": 3,
            "sha256": "a" * 64,
            "from": "Staging",
            "to": "Production",
            "approvers": ["bob", "carol"],
        },
    }


def test_a_long_user_written_message_is_clipped():
    item = n.notice(n.FAILED, VERSION, message="x" * 100_000)
    assert len(item.data["message"]) == n.MAX_TEXT


def test_endpoints_hear_only_their_types_and_namespaces():
    item = n.notice(n.STAGE_CHANGED, VERSION)
    assert Endpoint("all", "http://x").wants(item)
    assert Endpoint("ci", "http://x", frozenset({n.STAGE_CHANGED}), frozenset({"fraud"})).wants(item)
    assert not Endpoint("ci", "http://x", frozenset({n.SUCCEEDED})).wants(item)
    assert not Endpoint("other-team", "http://x", namespaces=frozenset({"payments"})).wants(item)


@pytest.mark.parametrize(
    ("status", "retry", "ok"),
    [
        (None, True, False),
        (200, False, True),
        (204, False, True),
        (408, True, False),
        (429, True, False),
        (500, True, False),
        (503, True, False),
        (400, False, False),
        (401, False, False),
        (404, False, False),
        (302, False, False),
    ],
)
def test_which_answers_are_retried(status, retry, ok):
    assert n.retryable(status) is retry
    assert n.delivered(status) is ok


def test_backoff_doubles_to_its_cap_with_jitter():
    assert [n.retry_delay(a, 1.0, 300.0, 0.0) for a in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert n.retry_delay(4, 1.0, 300.0, 0.999) == pytest.approx(8.0, rel=1e-3)
    assert n.retry_delay(60, 1.0, 300.0, 0.5) == 225.0  # capped at 300, jittered in [150, 300)
    assert n.retry_delay(10_000, 1.0, 300.0, 0.0) == 150.0  # no overflow however many attempts


def test_a_later_notice_about_an_object_waits_for_the_earlier_one():
    queue = [pending("3", uid="a"), pending("1", uid="a", attempts=2, due=50.0), pending("2", uid="b")]
    assert [p.key for p in n.heads(queue)] == ["1", "2"]  # "3" waits behind "1", even though "1" is backing off
    queue[1].in_flight = True
    assert [p.key for p in n.heads(queue)] == ["1", "2"]
    other_endpoint = pending("4", uid="a", endpoint="chat")
    assert "4" in [p.key for p in n.heads([*queue, other_endpoint])]  # each endpoint has its own order


def test_a_full_outbox_drops_the_oldest_never_one_being_sent():
    queue = [pending(str(k)) for k in range(5)]
    queue[0].in_flight = True
    assert [p.key for p in n.overflow(queue, 3)] == ["1", "2"]
    assert n.overflow(queue, 5) == []


def test_records_round_trip():
    entry = pending("7", attempts=3, due=9.0)
    again = Pending.from_record("7", entry.record)
    assert (again.endpoint, again.id, again.type, again.ref, again.body) == (
        entry.endpoint,
        entry.id,
        entry.type,
        entry.ref,
        entry.body,
    )


def test_signature_verifies_with_the_recipe_and_the_library():
    body = n.payload(n.notice(n.VERIFIED, VERSION), "msg_9", "2026-11-28T00:00:00Z")
    headers = signed_headers(SECRET, "msg_9", body)
    assert headers["webhook-signature"].startswith("v1,")
    recipe = receiver()
    assert recipe.verify(SECRET, headers, body.encode())["id"] == "msg_9"
    assert standardwebhooks.Webhook(SECRET).verify(body, headers)["id"] == "msg_9"
    with pytest.raises(recipe.InvalidSignature):
        recipe.verify(SECRET, headers, body.replace("fraud", "fraue").encode())  # tampered body
    with pytest.raises(recipe.InvalidSignature):
        other = "whsec_" + base64.b64encode(b"o" * 32).decode()
        recipe.verify(other, headers, body.encode())  # another key
    with pytest.raises(recipe.InvalidSignature):
        recipe.verify(SECRET, headers, body.encode(), now=int(headers["webhook-timestamp"]) + 301)  # replayed late


def test_a_full_outbox_is_bounded_in_bytes_too():
    # hostile texts escape to several bytes per character: the count cap alone would overflow 1 MiB
    big = [
        Pending(f"{k:03d}", "ci", f"msg_{k}", "promotion.failed", {"uid": f"u{k}"}, '"\\u0001' * 1500)
        for k in range(50)
    ]
    dropped = n.overflow(big, cap=500, max_bytes=100_000)
    kept = [p for p in big if p not in dropped]
    assert sum(p.size for p in kept) <= 100_000
    assert [p.key for p in dropped] == [f"{k:03d}" for k in range(len(dropped))]  # the oldest


# -- sealed outbox entries ------------------------------------------------------------------------
KEY, OLD_KEY, OTHER_KEY = (
    b"outbox seal key, 32 bytes long!!",
    b"the previous seal key, retired..",
    b"someone else's key, 32 bytes!!!!",
)
SEALS = OutboxSeals(Sealer(KEY))


def stored(entry):
    """What a restart reads back from the ConfigMap."""
    return Pending.from_record(entry.key, entry.record)


def test_a_sealed_entry_read_back_is_proven():
    entry = SEALS.sealed("fraud", pending("0000000000000000001.ci"))
    assert entry.seal.startswith("v1.") and json.loads(entry.record)["seal"] == entry.seal
    assert SEALS.proven("fraud", stored(entry))


def test_an_unsealed_entry_is_not_proven():
    assert not SEALS.proven("fraud", stored(pending("0000000000000000001.ci")))
    old_format = json.dumps({"endpoint": "ci", "id": "msg_1", "type": "stage.changed", "ref": {}, "body": "{}"})
    assert not SEALS.proven("fraud", Pending.from_record("1.ci", old_format))  # written before seals: no seal key


@pytest.mark.parametrize(
    "change",
    [
        {"body": '{"id":"msg_evil","type":"stage.changed"}'},
        {"endpoint": "chat"},
        {"id": "msg_other"},
        {"type": "promotion.succeeded"},
        {"ref": {"uid": "u-2", "namespace": "fraud"}},
        {"ref": {"uid": "u-1", "namespace": "payments"}},
        {"key": "0000000000000000000.ci"},  # moved ahead of earlier notices
    ],
)
def test_an_entry_altered_anywhere_is_not_proven(change):
    entry = SEALS.sealed("fraud", pending("0000000000000000001.ci"))
    altered = dataclasses.replace(stored(entry), **change)
    assert not SEALS.proven("fraud", stored(altered))


def test_a_seal_proves_only_in_its_own_outbox():
    entry = SEALS.sealed("fraud", pending("0000000000000000001.ci"))
    assert not SEALS.proven("payments", stored(entry))  # copied into another namespace's outbox


def test_a_seal_made_with_another_key_is_not_proven():
    forged = OutboxSeals(Sealer(OTHER_KEY)).sealed("fraud", pending("0000000000000000001.ci"))
    assert not SEALS.proven("fraud", stored(forged))


def test_entries_sealed_before_a_key_rotation_still_verify():
    before = OutboxSeals(Sealer(OLD_KEY)).sealed("fraud", pending("0000000000000000001.ci"))
    rotated = OutboxSeals(Sealer(KEY, [OLD_KEY]))
    assert rotated.proven("fraud", stored(before))
    assert (
        rotated.sealed("fraud", pending("0000000000000000002.ci")).seal
        != OutboxSeals(Sealer(OLD_KEY)).sealed("fraud", pending("0000000000000000002.ci")).seal
    )  # new entries are sealed with the current key
    assert not SEALS.proven("fraud", stored(before))  # once the old key is dropped, so are its entries


@pytest.mark.parametrize("text", ["not json", "[]", '{"endpoint": 1, "id": "x", "type": "t", "ref": {}, "body": ""}'])
def test_a_record_that_is_no_entry_is_unreadable(text):
    with pytest.raises((ValueError, KeyError, TypeError)):
        Pending.from_record("1.ci", text)


class FakeKube:
    """The outbox ConfigMaps a restart finds; the Events posted."""

    def __init__(self, maps):
        self.maps, self.events, self.merged = maps, [], []

    async def config_maps(self, namespace, selector):
        assert (namespace, selector) == ("modelreg-system", "modelreg.io/outbox=true")
        return self.maps

    async def post_event(self, ref, type_, reason, message):
        self.events.append((dict(ref), type_, reason, message))

    async def merge_config_map(self, namespace, name, labels, data):
        self.merged.append((name, dict(data)))


def notifier(kube, key=KEY, previous=()):
    settings = NotificationSettings(endpoints=[{"name": "ci", "url": "http://127.0.0.1:1/", "signingKeySecret": "s"}])
    return Notifier(kube, settings, "modelreg-system", OutboxSeals(Sealer(key, list(previous))))


async def test_a_restart_keeps_sealed_entries_and_drops_planted_ones(caplog):
    genuine = SEALS.sealed("fraud", pending("0000000000000000001.ci"))
    altered = SEALS.sealed("fraud", pending("0000000000000000002.ci", uid="u-2"))
    altered = dataclasses.replace(altered, body='{"type":"promotion.succeeded"}')  # body swapped, seal kept
    planted = pending("0000000000000000003.ci", uid="u-3")  # never sealed
    future = pending("9999999999999999999.ci", uid="u-4")  # would push every later key past it
    kube = FakeKube(
        {
            "modelreg-outbox-fraud": {e.key: e.record for e in (genuine, altered, planted, future)},
            "innocent-looking": {"1.ci": genuine.record},  # labelled, but not an outbox the operator writes
        }
    )
    outbox = notifier(kube)
    with caplog.at_level(logging.WARNING):
        await outbox.load()
        await asyncio.sleep(0)  # the Events are posted by a task
    assert list(outbox.pending["fraud"]) == [genuine.key]
    assert outbox._next_key("ci") < "9"  # a planted key does not steer the order of what comes next
    assert outbox.unsaved["fraud"] == dict.fromkeys([altered.key, planted.key, future.key])
    events = {ref["name"]: (ref, type_, reason, message) for ref, type_, reason, message in kube.events}
    ref, type_, reason, message = events["modelreg-outbox-fraud"]
    assert ref == {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "modelreg-system", "name": ref["name"]}
    assert (type_, reason) == ("Warning", "OutboxTampered")
    assert "3 outbox entries dropped, never signed nor delivered" in message
    assert genuine.key not in message and planted.key in message
    assert events["innocent-looking"][2] == "OutboxTampered"
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    dropped = [line for line in lines if "dropped: not sealed" in line["message"]]
    assert len(dropped) == 4 and all(line["k8s_ref"]["kind"] == "ConfigMap" for line in dropped)
    assert any(f"entry {altered.key} altered" in line["message"] for line in dropped)
    assert any(f"entry {planted.key} unsealed" in line["message"] for line in dropped)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "promotion.succeeded" not in text and altered.seal not in text  # no body, no seal


async def test_a_restart_after_a_key_rotation_keeps_what_the_previous_key_sealed():
    before = OutboxSeals(Sealer(OLD_KEY)).sealed("fraud", pending("0000000000000000001.ci"))
    kube = FakeKube({"modelreg-outbox-fraud": {before.key: before.record}})
    outbox = notifier(kube, KEY, [OLD_KEY])
    await outbox.load()
    assert list(outbox.pending["fraud"]) == [before.key] and kube.events == []


async def test_what_is_published_is_stored_sealed():
    outbox = notifier(FakeKube({}))
    outbox.publish([n.notice(n.VERIFIED, VERSION)])
    (entry,) = outbox.pending["fraud"].values()
    assert SEALS.proven("fraud", Pending.from_record(entry.key, outbox.unsaved["fraud"][entry.key]))
