"""The protobuf bodies kubectl's typed `create` commands send, decoded to the JSON an API server
would have read.

client-go's generated clients for built-in kinds send `application/vnd.kubernetes.protobuf`
whenever the caller set no content type (`gentype.PrefersProtobuf`, `Request.UseProtobufAsDefault`),
and nothing a server advertises changes that, nor does a 415 make them fall back (only CBOR
does). So `kubectl create namespace|secret|configmap|serviceaccount|role|clusterrole|rolebinding|
clusterrolebinding|token`, `kubectl auth can-i|whoami` and Helm's release Secrets reach the emulator
as protobuf. The kinds here are
decoded from their field numbers (k8s.io/api's generated.proto); any other kind is refused with 415.

Wire format: the 4 bytes `k8s\\0`, then a runtime.Unknown {typeMeta{apiVersion, kind}, raw}
whose `raw` is the object's message. Go writes every non-pointer scalar, empty or not: empty
strings, zeros and false are dropped here, as `omitempty` drops them from the JSON.
"""

from __future__ import annotations

import base64
from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"


class UndecodableBody(Exception):
    """A body that is not a Kubernetes protobuf object of a kind decoded here."""


# message -> field number -> (JSON name, type); a type is a scalar ("string", "bytes", "int",
# "bool"), a message name, ("repeated", type) or ("map", value type) (map keys are strings here).
Field = tuple[str, Any]
_OBJECT_META: dict[int, Field] = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
    5: ("uid", "string"),
    6: ("resourceVersion", "string"),
    11: ("labels", ("map", "string")),
    12: ("annotations", ("map", "string")),
    13: ("ownerReferences", ("repeated", "OwnerReference")),
    14: ("finalizers", ("repeated", "string")),
}
MESSAGES: dict[str, dict[int, Field]] = {
    "ObjectMeta": _OBJECT_META,
    "OwnerReference": {
        5: ("apiVersion", "string"),
        1: ("kind", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
        6: ("controller", "bool"),
        7: ("blockOwnerDeletion", "bool"),
    },
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", ("repeated", "string"))},
    "Secret": {
        1: ("metadata", "ObjectMeta"),
        2: ("data", ("map", "bytes")),
        3: ("type", "string"),
        4: ("stringData", ("map", "string")),
        5: ("immutable", "bool"),
    },
    "ConfigMap": {
        1: ("metadata", "ObjectMeta"),
        2: ("data", ("map", "string")),
        3: ("binaryData", ("map", "bytes")),
        4: ("immutable", "bool"),
    },
    "ServiceAccount": {
        1: ("metadata", "ObjectMeta"),
        2: ("secrets", ("repeated", "ObjectReference")),
        3: ("imagePullSecrets", ("repeated", "LocalObjectReference")),
        4: ("automountServiceAccountToken", "bool"),
    },
    "ObjectReference": {
        1: ("kind", "string"),
        2: ("namespace", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
        5: ("apiVersion", "string"),
        6: ("resourceVersion", "string"),
        7: ("fieldPath", "string"),
    },
    "LocalObjectReference": {1: ("name", "string")},
    "Role": {1: ("metadata", "ObjectMeta"), 2: ("rules", ("repeated", "PolicyRule"))},
    "ClusterRole": {
        1: ("metadata", "ObjectMeta"),
        2: ("rules", ("repeated", "PolicyRule")),
        3: ("aggregationRule", "AggregationRule"),
    },
    "RoleBinding": {
        1: ("metadata", "ObjectMeta"),
        2: ("subjects", ("repeated", "Subject")),
        3: ("roleRef", "RoleRef"),
    },
    "PolicyRule": {
        1: ("verbs", ("repeated", "string")),
        2: ("apiGroups", ("repeated", "string")),
        3: ("resources", ("repeated", "string")),
        4: ("resourceNames", ("repeated", "string")),
        5: ("nonResourceURLs", ("repeated", "string")),
    },
    "AggregationRule": {1: ("clusterRoleSelectors", ("repeated", "LabelSelector"))},
    "LabelSelector": {
        1: ("matchLabels", ("map", "string")),
        2: ("matchExpressions", ("repeated", "LabelSelectorRequirement")),
    },
    "LabelSelectorRequirement": {
        1: ("key", "string"),
        2: ("operator", "string"),
        3: ("values", ("repeated", "string")),
    },
    "Subject": {1: ("kind", "string"), 2: ("apiGroup", "string"), 3: ("name", "string"), 4: ("namespace", "string")},
    "RoleRef": {1: ("apiGroup", "string"), 2: ("kind", "string"), 3: ("name", "string")},
    # the body of a typed client's DELETE (Helm's uninstall deletes its release Secrets so)
    "DeleteOptions": {
        1: ("gracePeriodSeconds", "int"),
        2: ("preconditions", "Preconditions"),
        3: ("orphanDependents", "bool"),
        4: ("propagationPolicy", "string"),
        5: ("dryRun", ("repeated", "string")),
    },
    "Preconditions": {1: ("uid", "string"), 2: ("resourceVersion", "string")},
    # `kubectl auth can-i` (with `--list`), `kubectl auth whoami`, `kubectl create token`
    "SelfSubjectAccessReview": {1: ("metadata", "ObjectMeta"), 2: ("spec", "SelfSubjectAccessReviewSpec")},
    "SelfSubjectAccessReviewSpec": {
        1: ("resourceAttributes", "ResourceAttributes"),
        2: ("nonResourceAttributes", "NonResourceAttributes"),
    },
    "ResourceAttributes": {
        1: ("namespace", "string"),
        2: ("verb", "string"),
        3: ("group", "string"),
        4: ("version", "string"),
        5: ("resource", "string"),
        6: ("subresource", "string"),
        7: ("name", "string"),
    },
    "NonResourceAttributes": {1: ("path", "string"), 2: ("verb", "string")},
    "SelfSubjectRulesReview": {1: ("metadata", "ObjectMeta"), 2: ("spec", "SelfSubjectRulesReviewSpec")},
    "SelfSubjectRulesReviewSpec": {1: ("namespace", "string")},
    "SelfSubjectReview": {1: ("metadata", "ObjectMeta")},
    "TokenRequest": {1: ("metadata", "ObjectMeta"), 2: ("spec", "TokenRequestSpec")},
    "TokenRequestSpec": {1: ("audiences", ("repeated", "string")), 4: ("expirationSeconds", "int")},
}
MESSAGES["ClusterRoleBinding"] = MESSAGES["RoleBinding"]
# (apiVersion, kind) decoded here; anything else is refused
KINDS = {
    ("v1", "Namespace"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "ServiceAccount"),
    *(("rbac.authorization.k8s.io/v1", k) for k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")),
    ("v1", "DeleteOptions"),
    ("meta.k8s.io/v1", "DeleteOptions"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"),
    ("authentication.k8s.io/v1", "SelfSubjectReview"),
    ("authentication.k8s.io/v1", "TokenRequest"),
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise UndecodableBody("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise UndecodableBody("varint too long")


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) in order: an int for varints, bytes for length-delimited fields."""
    found: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            found.append((number, value))
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise UndecodableBody("truncated field")
            found.append((number, data[pos : pos + size]))
            pos += size
        elif wire in (1, 5):  # fixed64/fixed32: no field decoded here uses them
            pos += 8 if wire == 1 else 4
        else:
            raise UndecodableBody(f"unsupported wire type {wire}")
    return found


def _scalar(kind: str, value: int | bytes) -> Any:
    if kind == "string":
        if not isinstance(value, bytes):
            raise UndecodableBody("a string field is not length-delimited")
        return value.decode("utf-8")
    if kind == "bytes":
        if not isinstance(value, bytes):
            raise UndecodableBody("a bytes field is not length-delimited")
        return base64.b64encode(value).decode()  # JSON carries []byte as base64
    if not isinstance(value, int):
        raise UndecodableBody(f"a {kind} field is not a varint")
    if kind == "bool":
        return bool(value)
    return value - (1 << 64) if value >= 1 << 63 else value  # int64, two's complement


def _value(kind: Any, value: int | bytes) -> Any:
    if isinstance(kind, str) and kind in MESSAGES:
        if not isinstance(value, bytes):
            raise UndecodableBody(f"a {kind} field is not length-delimited")
        return decode_message(kind, value)
    return _scalar(kind, value)


def _empty(value: Any) -> bool:
    return value is None or value is False or value == "" or value == {} or (type(value) is int and value == 0)


def decode_message(name: str, data: bytes) -> dict[str, Any]:
    schema = MESSAGES[name]
    obj: dict[str, Any] = {}
    for number, value in _fields(data):
        if number not in schema:
            continue  # fields nobody sets on create (managedFields, timestamps, status)
        key, kind = schema[number]
        if isinstance(kind, tuple) and kind[0] == "repeated":
            obj.setdefault(key, []).append(_value(kind[1], value))
        elif isinstance(kind, tuple) and kind[0] == "map":
            if not isinstance(value, bytes):
                raise UndecodableBody("a map entry is not length-delimited")
            entry = dict(_fields(value))
            map_key = _scalar("string", entry.get(1, b""))
            obj.setdefault(key, {})[map_key] = _scalar(kind[1], entry.get(2, b""))  # empty values are values
        else:
            decoded = _value(kind, value)
            if not _empty(decoded):
                obj[key] = decoded
            else:
                obj.pop(key, None)
    return obj


def decode(body: bytes) -> dict[str, Any]:
    """The JSON object a protobuf-encoded Kubernetes object stands for; UndecodableBody if it is
    not one, or of a kind not decoded here."""
    if not body.startswith(MAGIC):
        raise UndecodableBody("the body does not start with the Kubernetes protobuf prefix")
    envelope = dict(_fields(body[len(MAGIC) :]))
    type_meta = envelope.get(1, b"")
    raw = envelope.get(2, b"")
    if not isinstance(type_meta, bytes) or not isinstance(raw, bytes):
        raise UndecodableBody("malformed envelope")
    meta = {number: _scalar("string", value) for number, value in _fields(type_meta)}
    api_version, kind = meta.get(1, ""), meta.get(2, "")
    if (api_version, kind) not in KINDS:
        raise UndecodableBody(f"{kind or 'an object'} ({api_version or 'no apiVersion'}) is not read from protobuf")
    return {"apiVersion": api_version, "kind": kind, **decode_message(kind, raw)}
