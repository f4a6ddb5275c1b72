"""Notifications: payload, filters, retry classification and backoff, per-object order, the cap."""

import base64
import importlib.util
import json
from pathlib import Path

import pytest
import standardwebhooks

from modelreg.domain import notifications as n
from modelreg.domain.notifications import Endpoint, Pending
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
