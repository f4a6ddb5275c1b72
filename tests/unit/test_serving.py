import jsonpatch
import pytest

from modelreg.domain.serving import DEPLOYMENTS, INFERENCE_SERVICES, ROLLOUTS, MisconfiguredTarget, Served

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


def inference_service(**annotations):
    return {
        "metadata": {"name": "isvc", "resourceVersion": "7", "generation": 2, "annotations": annotations},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "onnx"}, "storageUri": "s3://m/old.onnx"}}},
        "status": {},
    }


def test_an_inference_service_gets_the_storage_uri_escaped_and_the_proof_in_annotations():
    isvc = inference_service(team="risk", **{"modelreg.io/version-id": "stale"})
    served = Served("fraud", 3, "s3://m/$(SECRET)/3.onnx", "c" * 64)
    patched = jsonpatch.apply_patch(isvc, INFERENCE_SERVICES.patch(isvc, served))
    # KServe passes storageUri to its storage initializer as an argument: $(VAR) would expand there
    assert patched["spec"]["predictor"]["model"]["storageUri"] == "s3://m/$$(SECRET)/3.onnx"
    assert patched["metadata"]["annotations"] == {
        "team": "risk",
        "modelreg.io/version": "3",
        "modelreg.io/sha256": "c" * 64,
    }
    assert INFERENCE_SERVICES.patch(patched, served) is None
    assert INFERENCE_SERVICES.served_version(patched) == 3
    pinned = Served("fraud", 3, "s3://m/3.onnx", "c" * 64, "v-123")
    again = jsonpatch.apply_patch(patched, INFERENCE_SERVICES.patch(patched, pinned))
    assert again["metadata"]["annotations"]["modelreg.io/version-id"] == "v-123"


def test_an_inference_service_without_a_predictor_model_is_a_clear_error():
    isvc = inference_service()
    isvc["spec"]["predictor"] = {"sklearn": {"storageUri": "s3://m/x"}}
    with pytest.raises(MisconfiguredTarget, match=r"InferenceService isvc has no spec\.predictor\.model"):
        INFERENCE_SERVICES.patch(isvc, SERVED)


def test_an_inference_service_is_done_when_ready_for_its_new_generation_and_failed_when_its_load_fails():
    isvc = jsonpatch.apply_patch(inference_service(), INFERENCE_SERVICES.patch(inference_service(), SERVED))
    isvc["metadata"]["generation"] = 3
    isvc["status"] = {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]}
    assert not INFERENCE_SERVICES.state(isvc, 3).available  # Ready, but for the previous generation
    isvc["status"]["observedGeneration"] = 3
    assert INFERENCE_SERVICES.state(isvc, 3).available
    assert not INFERENCE_SERVICES.state(isvc, 2).available  # not the version asked about
    isvc["status"] = {
        "observedGeneration": 3,
        "conditions": [{"type": "Ready", "status": "False"}],
        "modelStatus": {"transitionStatus": "BlockedByFailedLoad", "lastFailureInfo": {"reason": "ModelLoadFailed"}},
    }
    failed = INFERENCE_SERVICES.state(isvc, 3)
    assert failed.failed and failed.message == "InferenceService isvc: BlockedByFailedLoad: ModelLoadFailed"
    assert failed.to_status() == {"name": "isvc", "kind": "InferenceService", "updated": False, "available": False}
    isvc["status"]["modelStatus"]["transitionStatus"] = "InProgress"
    assert not INFERENCE_SERVICES.state(isvc, 3).failed  # Ready=False alone: still starting


def rollout(phase, observed="4", **status):
    ro = jsonpatch.apply_patch(deployment(), ROLLOUTS.patch(deployment(), SERVED))
    ro["status"] = {"observedGeneration": observed, "phase": phase, **status}
    return ro


def test_a_rollout_is_patched_as_a_deployment_is_and_done_at_healthy_for_its_generation():
    assert ROLLOUTS.patch(deployment(), SERVED) == DEPLOYMENTS.patch(deployment(), SERVED)
    assert ROLLOUTS.state(rollout("Healthy"), 3).available
    assert not ROLLOUTS.state(rollout("Healthy", observed="3"), 3).available  # Argo has not seen generation 4
    assert not ROLLOUTS.state(rollout("Paused"), 3).available  # a canary pause: Argo's steps go on
    assert not ROLLOUTS.state(rollout("Healthy"), 2).available
    assert ROLLOUTS.state(rollout("Healthy", observed="5d8f6c7b9"), 3).available  # Argo < 0.10: a hash


@pytest.mark.parametrize(
    ("phase", "status", "said"),
    [
        ("Degraded", {"message": "ProgressDeadlineExceeded: slow"}, "Rollout d: Degraded: ProgressDeadlineExceeded"),
        (
            "Degraded",
            {"abort": True, "message": "RolloutAborted: analysis failed"},
            "Rollout d: aborted: RolloutAborted",
        ),
        ("Progressing", {"abort": True}, "Rollout d: aborted"),
    ],
)
def test_a_degraded_or_aborted_rollout_of_its_own_generation_fails(phase, status, said):
    assert ROLLOUTS.state(rollout(phase, **status), 3).message.startswith(said)
    assert ROLLOUTS.state(rollout(phase, **status), 3).failed
    assert not ROLLOUTS.state(rollout(phase, observed="3", **status), 3).failed  # an earlier template's


def test_a_rollout_without_a_template_names_what_to_label_instead():
    ro = deployment()
    ro["spec"] = {"workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"}}
    with pytest.raises(MisconfiguredTarget, match=r"Rollout d has no spec\.template"):
        ROLLOUTS.patch(ro, SERVED)


def test_an_annotated_init_container_gets_the_model_env_too():
    # `modelreg fetch --from-env` there: the pod refuses unproven bytes before its server starts
    dep = deployment(**{"modelreg.io/init-container": "fetch-model"})
    dep["spec"]["template"]["spec"]["initContainers"] = [{"name": "other"}, {"name": "fetch-model", "image": "m:1"}]
    patched = jsonpatch.apply_patch(dep, DEPLOYMENTS.patch(dep, SERVED))
    init = patched["spec"]["template"]["spec"]["initContainers"]
    assert init[0] == {"name": "other"}
    assert init[1]["env"] == [{"name": k, "value": v} for k, v in SERVED.env().items()]
    assert DEPLOYMENTS.patch(patched, SERVED) is None  # idempotent, init container included
    patched["spec"]["template"]["spec"]["initContainers"][1]["env"][0]["value"] = "tampered"
    assert DEPLOYMENTS.patch(patched, SERVED) is not None  # a hand edit of it is converged back
    with pytest.raises(MisconfiguredTarget, match="no init container 'fetch'"):
        DEPLOYMENTS.patch(deployment(**{"modelreg.io/init-container": "fetch"}), SERVED)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{.items[*].metadata.name}", "a b"),
        ('{range .items[*]}{.metadata.name}{"\\t"}{.spec.version}{"\\n"}{end}', "a\t1\nb\t2\n"),
        ('{.items[0].status.conditions[?(@.type=="Succeeded")].reason}', "Promoted"),
        ("names: {.items[1].metadata.name}!", "names: b!"),
        ("{.items[0].spec}", '{"version": 1}'),
        ("{range .nothing[*]}x{end}done", "done"),
    ],
)
def test_kubectl_jsonpath_templates(template, expected):
    from modelreg.cli.render import as_list, jsonpath

    items = [
        {
            "metadata": {"name": "a"},
            "spec": {"version": 1},
            "status": {"conditions": [{"type": "Ready", "reason": "R"}, {"type": "Succeeded", "reason": "Promoted"}]},
        },
        {"metadata": {"name": "b"}, "spec": {"version": 2}},
    ]
    assert jsonpath(template, as_list(items)) == expected


def test_a_bad_jsonpath_is_an_error_not_a_traceback():
    from modelreg.cli.render import JsonPathError, jsonpath

    with pytest.raises(JsonPathError):
        jsonpath("{.items[?(}", {})
    with pytest.raises(JsonPathError):
        jsonpath("x{end}", {})
    with pytest.raises(JsonPathError, match="unclosed action"):
        jsonpath("{.items[", {"items": []})  # kubectl refuses it too; it printed the text back
