"""A node's round counts: per run and per local day, on its own disk, never reset by a bad file."""

import datetime
from pathlib import Path

import pytest

from fl_client.policy_gate import PolicyRefused
from fl_client.round_quota import ROUNDS_FILE, RoundQuota
from fl_protocol.settings.policy import SchedulePolicy

DAY = datetime.date(2026, 12, 6)


def test_rounds_past_the_limit_of_a_run_are_refused_and_other_runs_go_on(tmp_path: Path) -> None:
    quota, schedule = RoundQuota(tmp_path), SchedulePolicy(max_rounds_per_run=2, max_rounds_per_day=None, hours=None)
    quota.admit(7, schedule, DAY)
    quota.admit(7, schedule, DAY)
    with pytest.raises(PolicyRefused) as refused:
        quota.admit(7, schedule, DAY)
    assert str(refused.value) == "refused: policy rounds-per-run"
    quota.admit(8, schedule, DAY)
    assert quota.counts()["runs"] == {"7": 2, "8": 1}  # a refused round is not counted


def test_the_day_limit_spans_runs_and_a_new_day_starts_afresh(tmp_path: Path) -> None:
    quota, schedule = RoundQuota(tmp_path), SchedulePolicy(max_rounds_per_run=None, max_rounds_per_day=2, hours=None)
    quota.admit(1, schedule, DAY)
    quota.admit(2, schedule, DAY)
    with pytest.raises(PolicyRefused, match="rounds-per-day"):
        quota.admit(3, schedule, DAY)
    RoundQuota(tmp_path).admit(3, schedule, DAY + datetime.timedelta(days=1))  # another process, the next day
    assert quota.counts()["days"] == {"2026-12-06": 2, "2026-12-07": 1}
    assert (tmp_path / ROUNDS_FILE).stat().st_mode & 0o777 == 0o600


def test_an_unreadable_count_file_refuses_rounds_instead_of_starting_from_zero(tmp_path: Path) -> None:
    (tmp_path / ROUNDS_FILE).write_text("{not json")
    schedule = SchedulePolicy(max_rounds_per_run=None, max_rounds_per_day=5, hours=None)
    with pytest.raises(PolicyRefused) as refused:
        RoundQuota(tmp_path).admit(1, schedule, DAY)
    assert refused.value.public_reason == "refused: policy rounds-unreadable"
    assert str(tmp_path) in refused.value.detail  # the node's own log says which file
    assert (tmp_path / ROUNDS_FILE).read_text() == "{not json"
