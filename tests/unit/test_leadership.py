from modelreg.domain.leadership import LeaseState, may_hold, must_stop


def test_who_may_hold_the_lease():
    assert may_hold(None, "me")  # nobody made it yet
    assert may_hold(LeaseState(None, 0, 15), "me")  # released
    assert may_hold(LeaseState("me", 0, 15), "me")  # ours: renew
    assert not may_hold(LeaseState("other", 10, 15), "me")  # still renewed, as far as this replica saw
    assert may_hold(LeaseState("other", 16, 15), "me")  # seen unchanged for longer than it lasts


def test_the_holder_stops_before_a_standby_may_take_over():
    assert not must_stop(12.9, lease_seconds=15, retry_seconds=2)
    assert must_stop(13.1, lease_seconds=15, retry_seconds=2)  # a standby may take it only after 15
