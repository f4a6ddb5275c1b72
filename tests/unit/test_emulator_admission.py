"""The emulator's admission honours webhooks' matchConditions as an API server does."""

from __future__ import annotations

import pytest

from modelreg.sandbox.admission import AdmissionChain, Rejected

NOT_THE_OPERATOR = 'request.userInfo.username != "system:serviceaccount:modelreg-system:modelreg"'


def webhook(*expressions: str, policy: str = "Fail") -> dict:
    conditions = [{"name": f"c{i}", "expression": e} for i, e in enumerate(expressions)]
    return {"name": "status-modelversions.modelreg.io", "failurePolicy": policy, "matchConditions": conditions}


def request(user: str) -> dict:
    return {"operation": "UPDATE", "userInfo": {"username": user, "groups": []}, "oldObject": None}


def test_a_webhook_is_called_only_when_every_condition_holds():
    chain = AdmissionChain(lambda kind: [])
    obj = {"metadata": {"name": "fraud-v1"}}
    assert not chain._wanted(webhook(NOT_THE_OPERATOR), request("system:serviceaccount:modelreg-system:modelreg"), obj)
    assert chain._wanted(webhook(NOT_THE_OPERATOR), request("alice"), obj)
    by_name = webhook(NOT_THE_OPERATOR, 'object.metadata.name == "fraud-v2"')
    assert not chain._wanted(by_name, request("alice"), obj)
    assert chain._wanted({"name": "plain"}, request("system:serviceaccount:modelreg-system:modelreg"), obj)


def test_a_condition_that_cannot_be_evaluated_is_the_failure_policys_to_decide():
    chain = AdmissionChain(lambda kind: [])
    broken = "request.userInfo.nothing == 1"
    with pytest.raises(Rejected, match="matchCondition"):
        chain._wanted(webhook(broken), request("alice"), {})
    assert not chain._wanted(webhook(broken, policy="Ignore"), request("alice"), {})  # skipped, write admitted
    # a false condition decides before an erring one, wherever it stands
    assert not chain._wanted(webhook(broken, 'request.userInfo.username == "bob"'), request("alice"), {})
