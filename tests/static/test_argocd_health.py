"""The Argo CD health scripts pass their own health_test.yaml cases (Argo CD's upstream layout)."""

from __future__ import annotations

import pytest
import yaml

from tests.argocd_health import CUSTOMIZATIONS, health

CASES = [
    pytest.param(kind, case, id=f"{kind}/{case['inputPath']}")
    for kind in ("ModelVersion", "ModelPromotion")
    for case in yaml.safe_load((CUSTOMIZATIONS / kind / "health_test.yaml").read_text())["tests"]
]


@pytest.mark.parametrize(("kind", "case"), CASES)
def test_health_script_case(kind, case):
    obj = yaml.safe_load((CUSTOMIZATIONS / kind / case["inputPath"]).read_text())
    assert health(kind, obj) == case["healthStatus"]


def test_every_status_argo_shows_is_covered():
    seen = {(kind, case.values[1]["healthStatus"]["status"]) for case in CASES for kind in [case.values[0]]}
    assert {s for k, s in seen if k == "ModelVersion"} == {"Progressing", "Healthy", "Degraded"}
    assert {s for k, s in seen if k == "ModelPromotion"} == {"Progressing", "Healthy", "Degraded", "Suspended"}
