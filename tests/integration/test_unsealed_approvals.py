"""With approvals.trustUnsealed false (the default), approvals without the webhook's proof count for nothing."""

from tests.integration.conftest import condition
from tests.integration.promotion_helpers import approve, promote, register, succeeded


def test_unproven_approvals_do_not_count(operator, kube, s3, bucket):
    register(kube, s3, bucket, 1)
    promote(kube, "p", 1)
    approve(kube, "p", "bob", "carol")
    waiting = succeeded(kube, "p", "AwaitingApproval")
    assert waiting["status"]["approvalSummary"] == "0/2"
    assert "approval by bob carries no proof" in condition(waiting, "Approved")["message"]
