"""The emulator reads the protobuf bodies kubectl's typed `create` commands send.

The bodies below are what kubectl 1.32.4 sent (`kubectl ... -v=9`, "Request Body").
"""

from __future__ import annotations

import base64

import pytest

from modelreg.sandbox import protobuf

# kubectl create secret generic s2 --from-literal=a=b --from-literal=empty=
SECRET = (
    "6b3873000a0c0a027631120653656372657412290a120a02733212001a0022002a0032003800420012060a01611201621209"
    "0a05656d70747912001a001a002200"
)
# kubectl create namespace ml
NAMESPACE = "6b3873000a0f0a02763112094e616d657370616365121a0a120a026d6c12001a0022002a0032003800420012001a020a001a002200"
# kubectl create clusterrolebinding b1 --clusterrole=modelreg-approver --user=bob --serviceaccount=ml:ci
BINDING = (
    "6b3873000a320a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f76311212436c7573746572526f6c6542696e64"
    "696e671297010a120a02623112001a0022002a0032003800420012280a04557365721219726261632e617574686f72697a6174696f"
    "6e2e6b38732e696f1a03626f622200121a0a0e536572766963654163636f756e7412001a02636922026d6c1a3b0a19726261632e61"
    "7574686f72697a6174696f6e2e6b38732e696f120b436c7573746572526f6c651a116d6f64656c7265672d617070726f7665721a0022"
    "00"
)
# kubectl create configmap c1 --from-literal=k=v -n default
CONFIGMAP = (
    "6b3873000a0f0a0276311209436f6e6669674d617012230a190a02633112001a0764656661756c7422002a00320038004200"
    "12060a016b1201761a002200"
)


def test_a_secret_reads_as_kubectl_would_have_sent_it_in_json():
    assert protobuf.decode(bytes.fromhex(SECRET)) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s2"},  # Go writes every empty string: omitted, as omitempty omits them
        "data": {"a": base64.b64encode(b"b").decode(), "empty": ""},  # an empty value is a value
    }


def test_namespace_configmap_and_binding():
    assert protobuf.decode(bytes.fromhex(NAMESPACE)) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "ml"},
    }
    assert protobuf.decode(bytes.fromhex(CONFIGMAP)) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c1", "namespace": "default"},
        "data": {"k": "v"},
    }
    assert protobuf.decode(bytes.fromhex(BINDING)) == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "b1"},
        "subjects": [
            {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob"},
            {"kind": "ServiceAccount", "name": "ci", "namespace": "ml"},
        ],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "modelreg-approver"},
    }


@pytest.mark.parametrize(
    "body",
    [
        b'{"kind": "Secret"}',  # not protobuf
        bytes.fromhex(NAMESPACE)[:-20],  # truncated
        # a Deployment: a kind not read here
        b"k8s\x00\n\x14\n\x07apps/v1\x12\nDeployment\x12\x00",
    ],
)
def test_what_is_not_read_is_refused(body):
    with pytest.raises(protobuf.UndecodableBody):
        protobuf.decode(body)
