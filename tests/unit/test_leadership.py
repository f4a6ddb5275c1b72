from datetime import UTC, datetime, timedelta

from modelreg.domain.leadership import LeaseState, may_hold

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def test_who_may_hold_the_lease():
    assert may_hold(None, "me", NOW)  # nobody made it yet
    assert may_hold(LeaseState(None, NOW, 15), "me", NOW)  # released
    assert may_hold(LeaseState("me", NOW, 15), "me", NOW)  # ours: renew
    assert not may_hold(LeaseState("other", NOW - timedelta(seconds=10), 15), "me", NOW)  # still renewed
    assert may_hold(LeaseState("other", NOW - timedelta(seconds=16), 15), "me", NOW)  # its holder stopped
