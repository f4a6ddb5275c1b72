import pytest
from pydantic import ValidationError

from modelreg.config import ElectionSettings, LoggingSettings
from modelreg.domain.leadership import LeaseState, may_hold, must_stop, overran, renewal_timeout


def test_who_may_hold_the_lease():
    assert may_hold(None, "me")  # nobody made it yet
    assert may_hold(LeaseState(None, 0, 15), "me")  # released
    assert may_hold(LeaseState("me", 0, 15), "me")  # ours: renew
    assert not may_hold(LeaseState("other", 10, 15), "me")  # still renewed, as far as this replica saw
    assert may_hold(LeaseState("other", 16, 15), "me")  # seen unchanged for longer than it lasts


def test_the_holder_stops_when_it_could_not_renew_within_the_renew_deadline():
    assert not must_stop(9.9, renew_deadline_seconds=10)  # slow answers: still retrying
    assert must_stop(10.1, renew_deadline_seconds=10)  # a standby may take it only after 15
    assert renewal_timeout(7.0, renew_deadline_seconds=10) == 3.0  # each call: the time left
    assert renewal_timeout(11.0, renew_deadline_seconds=10) == 0.0
    assert not overran(12.9, lease_seconds=15, retry_seconds=2)
    assert overran(13.1, lease_seconds=15, retry_seconds=2)  # stopping hangs: exit before the Lease ends


def test_election_timings_are_checked_as_client_go_does():
    defaults = ElectionSettings()
    assert (defaults.lease_seconds, defaults.renew_deadline_seconds, defaults.retry_seconds) == (15, 10, 2)
    with pytest.raises(ValidationError, match="leaseSeconds must be greater than renewDeadlineSeconds"):
        ElectionSettings(lease_seconds=10, renew_deadline_seconds=10)
    with pytest.raises(ValidationError, match=r"renewDeadlineSeconds must be greater than retrySeconds x 1\.2"):
        ElectionSettings(renew_deadline_seconds=2.4, retry_seconds=2)
    ElectionSettings(lease_seconds=3, renew_deadline_seconds=2, retry_seconds=0.5)


def test_log_levels_in_any_case():
    assert LoggingSettings(level="debug").level == "DEBUG"
    assert LoggingSettings(level="Warn").level == "WARNING"
    with pytest.raises(ValidationError, match=r"logging\.level must be one of"):
        LoggingSettings(level="verbose")
