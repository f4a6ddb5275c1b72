"""The emulator's CRD validation ratchets as the API server does: an update is judged on what it changed."""

import copy
from pathlib import Path

from modelreg.sandbox.validation import CRDValidator

VERSIONS = CRDValidator.from_file(Path(__file__).resolve().parents[2] / "crds/modelversions.modelreg.io.yaml")
VALID = {
    "apiVersion": "modelreg.io/v1alpha1",
    "kind": "ModelVersion",
    "metadata": {"name": "fraud-v1", "namespace": "team-a"},
    "spec": {"modelName": "fraud", "version": 1, "artifact": {"uri": "s3://models/fraud/1", "sha256": "a" * 64}},
}


def test_a_status_write_is_judged_on_its_status():
    bad = copy.deepcopy(VALID) | {"status": {"stage": "Nope"}}
    assert VERSIONS.errors(bad, VALID) == [
        "status.stage: Invalid value: \"Nope\": 'Nope' is not one of ['', 'Staging', 'Production', 'Archived']"
    ]


def test_an_unchanged_invalid_spec_does_not_block_a_status_write():
    legacy = copy.deepcopy(VALID)
    legacy["spec"]["version"] = 0  # stored before a stricter schema: ratcheted, as on a cluster
    assert VERSIONS.errors(legacy)
    assert VERSIONS.errors(legacy | {"status": {"stage": "Staging"}}, legacy) == []


def test_changed_spec_and_transition_rules_are_still_enforced():
    renamed = copy.deepcopy(VALID)
    renamed["spec"]["modelName"] = "other"
    assert VERSIONS.errors(renamed, VALID) == [
        'spec: Invalid value: "object": spec.modelName is immutable; register a new ModelVersion instead'
    ]
    dropped = {k: v for k, v in VALID.items() if k != "spec"}
    assert any("'spec' is a required property" in e for e in VERSIONS.errors(dropped, VALID))


def test_a_type_change_is_a_change_even_where_python_calls_it_equal():
    changed = copy.deepcopy(VALID) | {"status": {"observedGeneration": True}}
    assert VERSIONS.errors(changed, copy.deepcopy(VALID) | {"status": {"observedGeneration": 1}})
