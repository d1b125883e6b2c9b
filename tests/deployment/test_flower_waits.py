"""The waits fedtriage fits in Flower's SuperNode and HTTP Grid are still where Flower 1.42 has them:
an upgrade that moves them fails here, not silently slows every deployed round again."""

import inspect
import time
from pathlib import Path

import pytest
from flwr.superlink.grid import http_grid
from flwr.supernode import start_client_internal

from cli.deployment.settings import node_process_settings
from fedtriage.errors import ConfigError
from fl_client.executor import runner, supernode
from fl_server.grid_object_pulls import fit_reply_object_retry

pytestmark = pytest.mark.deployment


def test_flowers_supernode_loop_still_has_the_waits_the_launcher_fits() -> None:
    source = inspect.getsource(start_client_internal)
    assert f"time.sleep({supernode.FLOWER_IDLE_WAIT_S})" in source
    assert f"time.sleep({supernode.FLOWER_REPLY_WAIT_S})" in source
    assert "            _push_messages(\n" in source  # the loop looks it up at each message
    assert "obj_contents = pull_objects(" in source
    assert "all_object_contents = pull_objects(" in inspect.getsource(http_grid)


def test_the_fitted_waits_replace_flowers_and_leave_other_sleeps_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(start_client_internal, "time", start_client_internal.time)
    monkeypatch.setattr(start_client_internal, "pull_objects", start_client_internal.pull_objects)
    monkeypatch.setattr(http_grid, "pull_objects", http_grid.pull_objects)
    monkeypatch.setattr(start_client_internal, "_push_messages", start_client_internal._push_messages)
    supernode.fit_waits(supernode.WorkPolls(idle_poll_s=0.01, busy_poll_s=0.01, busy_period_s=1), object_retry_s=0.02)
    started = time.perf_counter()
    start_client_internal.time.sleep(supernode.FLOWER_IDLE_WAIT_S)
    start_client_internal.time.sleep(supernode.FLOWER_REPLY_WAIT_S)
    assert time.perf_counter() - started < 1
    assert start_client_internal.pull_objects.keywords["initial_backoff"] == 0.02
    fit_reply_object_retry(0.03)
    assert http_grid.pull_objects.keywords["initial_backoff"] == 0.03


def test_the_node_asks_for_work_often_after_a_message_and_seldom_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(start_client_internal, "time", start_client_internal.time)
    monkeypatch.setattr(start_client_internal, "_push_messages", lambda **kwargs: None)
    polls = supernode.WorkPolls(idle_poll_s=2.0, busy_poll_s=0.1, busy_period_s=20)
    supernode.fit_waits(polls, object_retry_s=0.02)
    assert polls.wait_s() == 2.0  # nothing handled yet
    start_client_internal._push_messages(state=None)  # the loop sent a reply
    assert polls.wait_s() == 0.1
    polls.last_message -= 21
    assert polls.wait_s() == 2.0


@pytest.mark.parametrize("setting", ["supernode.idle_poll_s=0", "supernode.object_retry_s=5",
                                     "supernode.busy_poll_s=0.9", "supernode.busy_period_s=-1"])
def test_a_wait_out_of_range_is_named(setting: str) -> None:
    with pytest.raises(ConfigError, match=setting.split("=")[0]):
        node_process_settings([setting])


def test_the_supernode_wakes_the_executor_through_its_pipe_and_an_idle_pipe_waits(tmp_path: Path) -> None:
    supernode.poke(tmp_path / "wake")  # nobody listening yet: nothing happens
    pipe = runner._WakePipe(tmp_path / "wake")
    supernode.poke(tmp_path / "wake")
    started = time.perf_counter()
    pipe.wait(5)
    assert time.perf_counter() - started < 1  # the poke woke it
    started = time.perf_counter()
    pipe.wait(0.3)
    assert time.perf_counter() - started >= 0.25  # drained, and no writer gone means no spurious wake
