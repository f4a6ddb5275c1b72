import jsonpatch
import pytest

from modelreg.domain.serving import DEPLOYMENTS, Served

SERVED = Served("fraud", 3, "s3://m/3.onnx", "c" * 64)


def deployment(**annotations):
    return {
        "metadata": {"name": "d", "resourceVersion": "7", "generation": 4, "annotations": annotations},
        "spec": {
            "replicas": 2,
            "template": {
                "metadata": {"labels": {"app": "d"}},
                "spec": {
                    "containers": [
                        {
                            "name": "a",
                            "image": "a:1",
                            "env": [
                                {"name": "X", "value": "1"},
                                {"name": "MODEL_URI", "valueFrom": {"secretKeyRef": {}}},
                            ],
                        },
                        {"name": "b", "image": "b:1"},
                    ]
                },
            },
        },
        "status": {},
    }


def test_patch_touches_only_the_selected_container_and_is_idempotent():
    dep = deployment(**{"modelreg.io/container": "b"})
    patched = jsonpatch.apply_patch(dep, DEPLOYMENTS.patch(dep, SERVED))
    containers = patched["spec"]["template"]["spec"]["containers"]
    assert containers[0] == dep["spec"]["template"]["spec"]["containers"][0]
    assert containers[1]["env"] == [{"name": k, "value": v} for k, v in SERVED.env().items()]
    assert patched["spec"]["template"]["metadata"]["annotations"] == {"modelreg.io/version": "3"}
    assert patched["spec"]["template"]["metadata"]["labels"] == {"app": "d"}
    assert DEPLOYMENTS.patch(patched, SERVED) is None


def test_default_container_keeps_other_vars_in_place():
    dep = deployment()
    env = jsonpatch.apply_patch(dep, DEPLOYMENTS.patch(dep, SERVED))["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["name"] for e in env] == ["X", "MODEL_URI", "MODEL_NAME", "MODEL_VERSION", "MODEL_SHA256"]
    assert env[1] == {"name": "MODEL_URI", "value": "s3://m/3.onnx"}


def test_unknown_container_is_a_clear_error():
    with pytest.raises(ValueError, match="no container 'c'"):
        DEPLOYMENTS.patch(deployment(**{"modelreg.io/container": "c"}), SERVED)


def test_rollout_state_needs_the_new_template_observed_and_available():
    dep = jsonpatch.apply_patch(deployment(), DEPLOYMENTS.patch(deployment(), SERVED))
    dep["status"] = {"observedGeneration": 3, "updatedReplicas": 2, "availableReplicas": 2, "replicas": 2}
    assert not DEPLOYMENTS.state(dep, 3).available  # the controller has not seen generation 4 yet
    dep["status"]["observedGeneration"] = 4
    assert DEPLOYMENTS.state(dep, 3).available
    dep["status"]["conditions"] = [{"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "slow"}]
    failed = DEPLOYMENTS.state(dep, 3)
    assert failed.failed and "ProgressDeadlineExceeded" in failed.message and "Deployment d" in failed.message
    assert not DEPLOYMENTS.state(dep, 2).failed  # a deadline on another version's template is not ours


def test_history_at_a_point_in_time_names_holders_approvers_and_reasons():
    from modelreg.cli.render import held_at, history

    def mv(version, *entries):
        return {"spec": {"version": version}, "status": {"stageHistory": list(entries)}}

    versions = [
        mv(
            1,
            {
                "stage": "Production",
                "time": "2026-10-01T10:00:00.000001Z",
                "promotion": "p1",
                "approvedBy": ["bob", "carol"],
            },
            {"stage": "Archived", "time": "2026-11-02T09:00:00.5Z", "promotion": "p2"},
        ),
        mv(
            2,
            {"stage": "Staging", "time": "2026-10-20T08:00:00Z", "promotion": "s2"},
            {
                "stage": "Production",
                "time": "2026-11-02T09:00:00.6Z",
                "promotion": "p2",
                "approvedBy": ["dave", "erin"],
            },
        ),
    ]
    reasons = {"p1": "first release", "p2": "better AUC"}
    then = held_at(history(versions), "2026-11-01T12:00:00Z", reasons)
    assert [(r["stage"], r["version"], r["approvedBy"], r["reason"]) for r in then] == [
        ("Production", 1, ["bob", "carol"], "first release"),
        ("Staging", 2, [], ""),
    ]
    now = held_at(history(versions), "2026-11-03T00:00:00Z", reasons)
    assert [(r["stage"], r["version"]) for r in now] == [("Production", 2), ("Archived", 1)]
    assert held_at(history(versions), "2026-09-01T00:00:00Z", reasons) == []
