"""The API-server semantics modelreg.sandbox adds to kmock behave like a real API server."""

from __future__ import annotations

import base64
import json
import re
import threading

import kubernetes
import pytest
import requests

from tests.integration.conftest import GROUP, NAMESPACE, VERSION, api_client

SHA = "a" * 64
BASE = f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/modelversions"


def mv(name: str | None = None, **meta) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelVersion",
        "metadata": {**({"name": name} if name else {}), **meta},
        "spec": {"modelName": "fraud", "version": 1, "artifact": {"uri": "s3://bucket/k", "sha256": SHA}},
        "status": {"stage": "Production"},
    }


def patch(cluster, path: str, body, content_type="application/merge-patch+json") -> requests.Response:
    headers = {**cluster.headers("admin"), "Content-Type": content_type}
    return requests.patch(cluster.url + path, data=json.dumps(body), headers=headers, verify=cluster.ca_file)


def get(cluster, path: str, headers: dict | None = None, **kwargs) -> requests.Response:
    headers = {**cluster.headers("admin"), **(headers or {})}
    return requests.get(cluster.url + path, headers=headers, verify=cluster.ca_file, **kwargs)


def test_create_assigns_identity_and_drops_status(kube):
    created = kube.create("modelversions", mv("a"))
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and meta["generation"] == 1 and int(meta["resourceVersion"]) > 0
    assert "status" not in created  # status is written through /status only


def test_generate_name_and_conflicts(kube):
    first = kube.create("modelversions", mv(generateName="mv-"))
    second = kube.create("modelversions", mv(generateName="mv-"))
    assert first["metadata"]["name"].startswith("mv-") and first["metadata"]["name"] != second["metadata"]["name"]
    assert re.fullmatch(r"mv-[bcdfghjklmnpqrstvwxz2456789]{5}", first["metadata"]["name"])  # the API server's
    with pytest.raises(kubernetes.client.ApiException) as caught:
        kube.create("modelversions", mv(first["metadata"]["name"]))
    assert caught.value.status == 409


def test_status_subresource_is_isolated(cluster, kube):
    kube.create("modelversions", mv("iso"))
    through_status = patch(
        cluster, f"{BASE}/iso/status", {"spec": {"description": "x"}, "status": {"stage": "Staging"}}
    )
    assert through_status.status_code == 200
    assert (
        through_status.json()["status"] == {"stage": "Staging"} and "description" not in through_status.json()["spec"]
    )
    through_main = patch(cluster, f"{BASE}/iso", {"status": {"stage": "Archived"}})
    assert through_main.json()["status"] == {"stage": "Staging"}


def test_generation_moves_with_spec_only_and_resource_version_with_every_write(cluster, kube):
    created = kube.create("modelversions", mv("gen"))
    rv0 = int(created["metadata"]["resourceVersion"])
    status_write = patch(cluster, f"{BASE}/gen/status", {"status": {"stage": "Staging"}}).json()["metadata"]
    assert status_write["generation"] == 1 and int(status_write["resourceVersion"]) > rv0
    label_write = patch(cluster, f"{BASE}/gen", {"metadata": {"labels": {"a": "b"}}}).json()["metadata"]
    assert label_write["generation"] == 1
    spec_write = patch(cluster, f"{BASE}/gen", {"spec": {"description": "d"}}).json()["metadata"]
    assert spec_write["generation"] == 2
    no_op = patch(cluster, f"{BASE}/gen", {"spec": {"description": "d"}}).json()["metadata"]
    assert no_op["resourceVersion"] == spec_write["resourceVersion"]


def test_stale_resource_version_and_failed_json_patch_test_are_refused(cluster, kube):
    created = kube.create("modelversions", mv("rv"))
    stale = created["metadata"]["resourceVersion"]
    patch(cluster, f"{BASE}/rv", {"spec": {"description": "moved on"}})
    conflict = patch(cluster, f"{BASE}/rv", {"metadata": {"resourceVersion": stale}, "spec": {"description": "x"}})
    assert conflict.status_code == 409 and "has been modified" in conflict.json()["message"]
    failed_test = patch(
        cluster,
        f"{BASE}/rv",
        [{"op": "test", "path": "/metadata/resourceVersion", "value": stale}],
        "application/json-patch+json",
    )
    assert failed_test.status_code == 422


def test_a_staged_refusal_answers_only_its_method_and_resource_until_lifted(cluster, kube):
    kube.create("modelversions", mv("refused"))
    cluster.refuse("PATCH", "modelversions", 403, 'cannot patch resource "modelversions"')
    refused = patch(cluster, f"{BASE}/refused", {"spec": {"description": "x"}})
    assert refused.status_code == 403
    assert refused.json()["reason"] == "Forbidden"
    assert refused.json()["message"] == 'cannot patch resource "modelversions"'
    assert get(cluster, f"{BASE}/refused").status_code == 200  # other methods are served
    cluster.allow("PATCH", "modelversions")
    assert patch(cluster, f"{BASE}/refused", {"spec": {"description": "x"}}).status_code == 200


def test_finalizers_hold_deletion_until_removed(cluster, kube):
    kube.create("modelversions", {**mv("fin"), "metadata": {"name": "fin", "finalizers": ["x/y"]}})
    kube.delete("modelversions", "fin")
    held = kube.get("modelversions", "fin")
    assert held["metadata"]["deletionTimestamp"]
    patch(cluster, f"{BASE}/fin", {"metadata": {"finalizers": None}})
    with pytest.raises(kubernetes.client.ApiException) as caught:
        kube.get("modelversions", "fin")
    assert caught.value.status == 404


def test_lists_have_kind_and_honour_label_selectors(cluster, kube):
    kube.create("modelversions", {**mv("l1"), "metadata": {"name": "l1", "labels": {"modelreg.io/model": "fraud"}}})
    kube.create("modelversions", {**mv("l2"), "metadata": {"name": "l2", "labels": {"modelreg.io/model": "churn"}}})
    listed = kube.custom.list_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "modelversions", label_selector="modelreg.io/model=fraud"
    )
    assert listed["kind"] == "ModelVersionList" and [o["metadata"]["name"] for o in listed["items"]] == ["l1"]


def test_server_side_table_uses_the_crd_printer_columns(cluster, kube):
    kube.create("modelversions", mv("t1"))
    table = get(cluster, BASE, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).json()
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == ["Name", "Model", "Version", "Stage", "Verified", "Age", "Format", "URI", "Message"]
    assert table["rows"][0]["cells"][:3] == ["t1", "fraud", 1]


def test_watch_hands_over_from_snapshot_to_stream_without_loss(cluster, kube):
    kube.create("modelversions", mv("w0"))
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:
        with get(cluster, BASE, params={"watch": "true"}, stream=True, timeout=10) as response:
            for line in response.iter_lines():
                if line:
                    event = json.loads(line)
                    seen.append(f"{event['type']} {event['object']['metadata']['name']}")
                    if len(seen) == 6:
                        done.set()
                        return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    for i in range(1, 6):
        kube.create("modelversions", mv(f"w{i}"))
    assert done.wait(10), seen
    assert sorted(seen) == sorted(f"ADDED w{i}" for i in range(6))


def test_crds_are_listed_and_an_out_of_range_integer_is_a_400_not_a_500(cluster, kube):
    from kubernetes.client import ApiException, ApiextensionsV1Api

    names = {c.metadata.name for c in ApiextensionsV1Api(kube.client).list_custom_resource_definition().items}
    assert names == {"modelversions.modelreg.io", "modelpromotions.modelreg.io"}
    body = {
        "apiVersion": "modelreg.io/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": "huge"},
        "spec": {"modelName": "m", "version": 10**30, "artifact": {"uri": "s3://models/m", "sha256": "a" * 64}},
    }
    with pytest.raises(ApiException) as refused:
        kube.create("modelversions", body)
    assert refused.value.status == 400 and "spec.version does not fit a 64-bit integer" in refused.value.body


def test_events_are_served_by_both_apis_and_field_selectors_narrow_lists(cluster, kube):
    from kubernetes.client import EventsV1Api

    for name in ("a", "b"):
        kube.core.create_namespaced_event(
            NAMESPACE,
            {
                "metadata": {"name": f"{name}.1"},
                "involvedObject": {"kind": "ModelVersion", "name": name, "namespace": NAMESPACE},
                "reason": "Verified",
                "message": f"{name} verified",
                "type": "Normal",
            },
        )
    only_a = kube.core.list_namespaced_event(
        NAMESPACE, field_selector="involvedObject.name=a,involvedObject.kind=ModelVersion"
    )
    assert [e.message for e in only_a.items] == ["a verified"]
    assert [
        e.message for e in kube.core.list_namespaced_event(NAMESPACE, field_selector="involvedObject.name!=a").items
    ] == ["b verified"]
    v1 = EventsV1Api(kube.client).list_namespaced_event(NAMESPACE).items
    assert sorted((e.regarding.name, e.note, e.reason) for e in v1) == [
        ("a", "a verified", "Verified"),
        ("b", "b verified", "Verified"),
    ]


def test_secret_string_data_is_folded_into_data(cluster):
    with api_client(cluster, "admin") as client:
        core = kubernetes.client.CoreV1Api(client)
        core.create_namespaced_secret("ml", {"metadata": {"name": "s"}, "stringData": {"k": "v1"}})
        core.patch_namespaced_secret("s", "ml", {"stringData": {"k": "v2", "j": "w"}})
        secret = core.read_namespaced_secret("s", "ml")
    assert secret.data == {"k": base64.b64encode(b"v2").decode(), "j": base64.b64encode(b"w").decode()}
    assert secret.string_data is None
