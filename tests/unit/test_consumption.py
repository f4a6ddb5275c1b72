"""Which ModelVersion a reference names, whether its proof is current, where fetched files may go."""

from __future__ import annotations

import io

import pytest

from modelreg.cli import render
from modelreg.cli.progress import Bar
from modelreg.domain.consumption import (
    InvalidReference,
    Reference,
    Unresolvable,
    UnsafeKey,
    member_paths,
    parse_reference,
    pinned_from_env,
    resolve,
)

SHA = "a" * 64
OTHER = "b" * 64


def mv(name, version, stage="", verified=True, reason="Verified", proven=SHA, ready=None, history=(), model="fraud"):
    conditions = [{"type": "ArtifactVerified", "status": "True" if verified else "False", "reason": reason}]
    if ready:
        conditions.append({"type": "Ready", "status": "False", "reason": ready, "message": "duplicate"})
    return {
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {
            "modelName": model,
            "version": version,
            "artifact": {"uri": f"s3://models/{name}.onnx", "sha256": SHA},
        },
        "status": {
            "stage": stage,
            "conditions": conditions,
            "artifact": {"sha256": proven, "etag": "e1", "versionId": "null", "sizeBytes": 4},
            "stageHistory": list(history),
        },
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fraud@production", Reference("fraud", stage="Production")),
        ("fraud@STAGING", Reference("fraud", stage="Staging")),
        ("fraud@Archived", Reference("fraud", stage="Archived")),
        ("fraud@3", Reference("fraud", version=3)),
        ("fraud@v12", Reference("fraud", version=12)),
    ],
)
def test_references(text, expected):
    assert parse_reference(text) == expected


@pytest.mark.parametrize("text", ["fraud", "fraud@", "@3", "fraud@0", "fraud@prod", "Fraud@3", "fraud@\uff13", "a b@1"])
def test_malformed_references(text):
    with pytest.raises(InvalidReference):
        parse_reference(text)


def test_the_production_holder_with_its_approvers():
    history = [
        {"stage": "Staging", "time": "t1", "promotion": "p0", "approvedBy": ["x"]},
        {"stage": "Production", "time": "t2", "promotion": "p1", "approvedBy": ["bob", "carol"]},
    ]
    versions = [mv("fraud-v1", 1, "Archived"), mv("fraud-v2", 2, "Production", history=history), mv("other-v1", 1)]
    found = resolve(parse_reference("fraud@production"), versions, "ml")
    assert (found.name, found.version, found.stage, found.approvers) == ("fraud-v2", 2, "Production", ("bob", "carol"))
    assert found.version_id is None  # "null" names no immutable version
    assert found.env() == {
        "MODEL_NAME": "fraud",
        "MODEL_VERSION": "2",
        "MODEL_URI": "s3://models/fraud-v2.onnx",
        "MODEL_SHA256": SHA,
        "MODEL_STAGE": "Production",
    }
    assert render.resolved(found, "uri") == "s3://models/fraud-v2.onnx"
    assert "MODEL_URI=s3://models/fraud-v2.onnx\n" in render.resolved(found, "env")


@pytest.mark.parametrize(
    ("versions", "reference", "message"),
    [
        ([], "fraud@production", "model 'fraud' has no registered versions in namespace ml"),
        ([mv("fraud-v1", 1)], "fraud@production", "no version of fraud holds Production in namespace ml"),
        (
            [mv("fraud-v1", 1, "Production", verified=False, reason="ArtifactChanged")],
            "fraud@production",
            "fraud-v1 holds Production but its artifact is not proven: ArtifactVerified=False (ArtifactChanged",
        ),
        (
            [mv("fraud-v1", 1, "Production", proven=OTHER)],
            "fraud@production",
            f"what was proven (sha256 {OTHER})",
        ),
        (
            [mv("fraud-v1", 1, "Production", reason="Verifying")],  # True but not for reason Verified
            "fraud@production",
            "is not proven",
        ),
        (
            [mv("fraud-v1", 1, "Production", ready="DuplicateVersion")],
            "fraud@production",
            "does not own version 1 of fraud (DuplicateVersion)",
        ),
        (
            [mv("fraud-v1", 1, "Production"), mv("fraud-v2", 2, "Production")],
            "fraud@production",
            "2 versions of fraud hold Production (1, 2)",
        ),
        ([mv("fraud-v1", 1)], "fraud@2", "model 'fraud' has no version 2 in namespace ml"),
        (
            [mv("fraud-v3", 3, verified=False, reason="ChecksumMismatch")],
            "fraud@3",
            "fraud-v3 (version 3 of fraud) is registered but its artifact is not proven",
        ),
        (
            [mv("fraud-v3", 3), mv("a-fraud-v3", 3)],
            "fraud@3",
            "claimed by a-fraud-v3, fraud-v3 and the operator has not settled",
        ),
    ],
)
def test_nothing_proven_answers(versions, reference, message):
    with pytest.raises(Unresolvable, match=None) as refused:
        resolve(parse_reference(reference), versions, "ml")
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_version_number_resolves_to_its_owner_not_the_duplicate():
    versions = [mv("fraud-v3", 3), mv("a-fraud-v3", 3, ready="DuplicateVersion")]
    assert resolve(parse_reference("fraud@3"), versions, "ml").name == "fraud-v3"


@pytest.mark.parametrize(
    "key",
    ["../escape", "a/../../escape", "/etc/passwd", "a\\..\\b", "a//b", "./a", "a/.", "a/\x00b", "a/\nb", ".."],
)
def test_keys_that_could_land_elsewhere_are_refused(key):
    with pytest.raises(UnsafeKey):
        member_paths(["config.json", key])


def test_member_paths():
    members = member_paths(["config.json", "sub/weights.bin", "sub/", "", "..hidden", "a..b"])
    expected = [("config.json",), ("sub", "weights.bin"), ("sub",), (), ("..hidden",), ("a..b",)]
    assert [m.parts for m in members] == expected
    assert [m.directory for m in members] == [False, False, True, True, False, False]
    with pytest.raises(UnsafeKey, match="both a file and a directory"):
        member_paths(["a", "a/b"])


def test_the_environment_of_a_serving_container():
    # Kubernetes already turned the operator's `$$` into `$`: what the process sees is the URI
    pinned = pinned_from_env({"MODEL_URI": "s3://models/a$b/m.onnx", "MODEL_SHA256": SHA, "MODEL_VERSION_ID": "v1"})
    assert (pinned.uri, pinned.sha256, pinned.version_id) == ("s3://models/a$b/m.onnx", SHA, "v1")
    unversioned = {"MODEL_URI": "s3://models/m", "MODEL_SHA256": SHA, "MODEL_VERSION_ID": ""}
    assert pinned_from_env(unversioned).version_id is None
    for env, message in (
        ({"MODEL_SHA256": SHA}, "MODEL_URI not set"),
        ({"MODEL_URI": "s3://models/m", "MODEL_SHA256": "ABC"}, "MODEL_SHA256 is not 64 lowercase hex"),
        ({"MODEL_URI": "http://x/m", "MODEL_SHA256": SHA}, "MODEL_URI"),
    ):
        with pytest.raises(InvalidReference, match=message):
            pinned_from_env(env)


class Terminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_a_progress_bar_only_on_a_terminal(tty):
    stream = Terminal(tty)
    bar = Bar("fetching", stream, interval=0)
    bar.started(4 << 20)
    bar.advance(2 << 20)
    bar.advance(2 << 20)
    bar.finish()
    assert ("100%" in stream.getvalue() and "4.00M" in stream.getvalue()) is tty  # percentage, size, rate
    assert (stream.getvalue() == "") is not tty
