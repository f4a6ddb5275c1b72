"""Admission as an API server runs it: the webhooks of the stored Mutating- and
ValidatingWebhookConfigurations are called over HTTPS with an AdmissionReview v1 (userInfo from
the caller's bearer token), mutations (JSON patches) are applied in order, and a denial or an
unreachable webhook with `failurePolicy: Fail` rejects the write with the API server's words.
"""

from __future__ import annotations

import base64
import collections
import copy
import ssl
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aiohttp
import celpy
import jsonpatch

Obj = Mapping[str, Any]


class Rejected(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def _has(values: Iterable[str] | None, wanted: str) -> bool:
    values = list(values or ["*"])
    return "*" in values or wanted in values


def matches(webhook: Obj, group: str, version: str, resource: str, operation: str) -> bool:
    subresource = resource.partition("/")[2]
    for rule in webhook.get("rules") or []:
        resources = rule.get("resources") or []
        resource_ok = resource in resources or "*/*" in resources or (not subresource and "*" in resources)
        if (
            resource_ok
            and _has(rule.get("apiGroups"), group)
            and _has(rule.get("apiVersions"), version)
            and _has(rule.get("operations"), operation)
        ):
            return True
    return False


_CEL = celpy.Environment()


def _program(expression: str) -> Any:
    return _CEL.program(_CEL.compile(expression))


class AdmissionChain:
    def __init__(self, configurations: Callable[[str], list[Obj]]) -> None:
        # kind ("MutatingWebhookConfiguration" / "ValidatingWebhookConfiguration") -> stored objects
        self.configurations = configurations
        self.bypassed = False  # tests flip this to play an attacker who got past admission
        self.calls: collections.Counter[str] = collections.Counter()  # webhook name -> requests sent to it
        # (certificate file, key file) presented to webhooks, as an API server's AdmissionConfiguration does
        self.client_cert: tuple[str, str] | None = None
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._programs: dict[str, Any] = {}  # matchConditions' CEL, compiled once per expression

    def _session(self, ca_bundle: str) -> aiohttp.ClientSession:
        """One keep-alive session per CA bundle, as an API server keeps its webhook connections."""
        session = self._sessions.get(ca_bundle)
        if session is None or session.closed:
            context = ssl.create_default_context(cadata=base64.b64decode(ca_bundle).decode() or None)
            if self.client_cert is not None:
                context.load_cert_chain(*self.client_cert)
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))
            self._sessions[ca_bundle] = session
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()

    def _webhooks(self, kind: str, group: str, version: str, resource: str, operation: str) -> list[Obj]:
        found = []
        for config in sorted(self.configurations(kind), key=lambda c: c["metadata"]["name"]):
            found += [w for w in config.get("webhooks") or [] if matches(w, group, version, resource, operation)]
        return found

    async def review(
        self,
        *,
        group: str,
        version: str,
        kind: str,
        plural: str,
        subresource: str | None,
        operation: str,
        namespace: str | None,
        name: str | None,
        user: Obj,
        old: Obj | None,
        new: dict[str, Any] | None,
        before_validation: Callable[[dict[str, Any]], None] = lambda obj: None,
        dry_run: bool = False,
    ) -> dict[str, Any] | None:
        """The object as admitted (mutated), or Rejected. A DELETE has no new object (`new` None):
        webhooks see `oldObject` only, and there is nothing to mutate."""
        resource = f"{plural}/{subresource}" if subresource else plural
        request = {
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": plural},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": plural},
            "name": name,
            "namespace": namespace,
            "operation": operation,
            "userInfo": dict(user),
            "oldObject": copy.deepcopy(old) if old is not None else None,
            "dryRun": dry_run,
            "options": {},
        }
        if subresource:
            request["subResource"] = subresource
        obj = copy.deepcopy(new)
        if self.bypassed:
            if obj is not None:
                before_validation(obj)
            return obj
        if obj is None:
            for webhook in self._webhooks("ValidatingWebhookConfiguration", group, version, resource, operation):
                if self._wanted(webhook, request, obj):
                    await self._call(webhook, {**request, "object": None})
            return None
        for webhook in self._webhooks("MutatingWebhookConfiguration", group, version, resource, operation):
            if not self._wanted(webhook, request, obj):
                continue
            answer = await self._call(webhook, {**request, "object": obj})
            if answer is not None and answer.get("patch"):
                ops = jsonpatch.JsonPatch.from_string(base64.b64decode(answer["patch"]).decode())
                obj = ops.apply(obj)
        before_validation(obj)
        for webhook in self._webhooks("ValidatingWebhookConfiguration", group, version, resource, operation):
            if self._wanted(webhook, request, obj):
                await self._call(webhook, {**request, "object": obj})
        return obj

    def _wanted(self, webhook: Obj, request: dict[str, Any], obj: dict[str, Any] | None) -> bool:
        """The webhook's matchConditions (CEL on `request`, `object`, `oldObject`): called only if
        all hold; skipped if any is false; else one that cannot be evaluated is the failure
        policy's to decide, as on a cluster."""
        conditions = webhook.get("matchConditions") or []
        if not conditions:
            return True
        activation = {
            "request": celpy.json_to_cel({k: v for k, v in request.items() if k != "oldObject"}),
            "object": celpy.json_to_cel(obj),
            "oldObject": celpy.json_to_cel(request.get("oldObject")),
        }
        errors = []
        for condition in conditions:
            expression = condition.get("expression", "")
            if expression not in self._programs:
                self._programs[expression] = _program(expression)
            try:
                result = self._programs[expression].evaluate(activation)
            except celpy.CELEvalError as exc:
                result = exc
            if isinstance(result, celpy.CELEvalError):
                errors.append(result)
            elif not bool(result):
                return False  # one false condition skips the webhook, even where another errs
        if errors:
            if webhook.get("failurePolicy", "Fail") == "Ignore":
                return False
            name = webhook.get("name", "")
            raise Rejected(500, "InternalError", f'failed to evaluate matchCondition of "{name}": {errors[0]}')
        return True

    async def _call(self, webhook: Obj, request: dict[str, Any]) -> dict[str, Any] | None:
        name = webhook.get("name", "")
        self.calls[name] += 1
        config = webhook.get("clientConfig") or {}
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {**request, "uid": str(uuid.uuid4())},
        }
        try:
            timeout = aiohttp.ClientTimeout(total=webhook.get("timeoutSeconds") or 10)
            async with self._session(config.get("caBundle", "")).post(
                config["url"], json=review, timeout=timeout
            ) as response:
                response.raise_for_status()
                answer = (await response.json())["response"]
        except Exception as exc:  # unreachable, TLS, timeout, garbage: the failure policy decides
            if webhook.get("failurePolicy", "Fail") == "Ignore":
                return None
            raise Rejected(
                500, "InternalError", f'Internal error occurred: failed calling webhook "{name}": {exc}'
            ) from exc
        if not answer.get("allowed"):
            status = answer.get("status") or {}
            message = status.get("message") or "without explanation"
            raise Rejected(
                status.get("code") or 403, "Forbidden", f'admission webhook "{name}" denied the request: {message}'
            )
        return answer
