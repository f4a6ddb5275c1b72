from modelreg.domain.webhooks import skip_operator_patch

USER = "system:serviceaccount:modelreg-system:modelreg-operator"
CONDITION = {"name": "not-the-operator", "expression": f'request.userInfo.username != "{USER}"'}


def test_the_webhooks_that_always_allow_the_operator_get_the_condition_once():
    webhooks = [
        {"name": "check-promotions.modelreg.io"},  # reviews the operator too: never skipped
        {"name": "check-versions.modelreg.io"},
        {"name": "status-modelversions.modelreg.io", "matchConditions": [CONDITION]},
        {"name": "status-modelpromotions.modelreg.io", "matchConditions": [{**CONDITION, "expression": "true"}]},
    ]
    ops = skip_operator_patch(webhooks, USER)
    assert ops == [
        {"op": "test", "path": "/webhooks/1/name", "value": "check-versions.modelreg.io"},
        {"op": "add", "path": "/webhooks/1/matchConditions", "value": [CONDITION]},
        {"op": "test", "path": "/webhooks/3/name", "value": "status-modelpromotions.modelreg.io"},
        {"op": "add", "path": "/webhooks/3/matchConditions", "value": [CONDITION]},
    ]
    done = [{**w, "matchConditions": [CONDITION]} if i in (1, 3) else w for i, w in enumerate(webhooks)]
    assert skip_operator_patch(done, USER) == []


def test_a_username_is_quoted_as_a_cel_string():
    ops = skip_operator_patch([{"name": "check-versions.x"}], 'evil" || true || "')
    assert ops[1]["value"][0]["expression"] == 'request.userInfo.username != "evil\\" || true || \\""'


def test_a_user_may_not_add_a_finalizer_or_owner_reference_whatever_the_object_carried_before():
    from modelreg.services.admission import _held

    def obj(finalizers=(), owners=()):
        return {"metadata": {"finalizers": list(finalizers), "ownerReferences": list(owners)}}

    owner = {"kind": "ConfigMap", "name": "mine", "uid": "0"}
    assert _held(obj(), obj(finalizers=["x/hold"])) == "metadata.finalizers"
    assert _held(None, obj(owners=[owner])) == "metadata.ownerReferences"
    # an object that already carried one (from before the rule) gains no other
    assert _held(obj(finalizers=["x/hold"]), obj(finalizers=["x/hold"], owners=[owner])) == "metadata.ownerReferences"
    assert _held(obj(finalizers=["x/hold"]), obj(finalizers=["x/hold", "y/hold"])) == "metadata.finalizers"
    assert _held(obj(finalizers=["x/hold"]), obj(finalizers=["x/hold"])) is None  # unchanged
    assert _held(obj(), obj(finalizers=["modelreg.io/finalizer"])) is None  # the operator's own
