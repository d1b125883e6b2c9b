"""The waits fedtriage fits in Flower's SuperNode and HTTP Grid are still where Flower 1.42 has them:
an upgrade that moves them fails here, not silently slows every deployed round again."""

import inspect
import time

import pytest
from flwr.superlink.grid import http_grid
from flwr.supernode import start_client_internal

from cli.deployment.settings import node_process_settings
from fedtriage.errors import ConfigError
from fl_client.executor import supernode
from fl_server.grid_object_pulls import fit_reply_object_retry

pytestmark = pytest.mark.deployment


def test_flowers_supernode_loop_still_has_the_waits_the_launcher_fits() -> None:
    source = inspect.getsource(start_client_internal)
    assert f"time.sleep({supernode.FLOWER_IDLE_WAIT_S})" in source
    assert f"time.sleep({supernode.FLOWER_REPLY_WAIT_S})" in source
    assert "obj_contents = pull_objects(" in source
    assert "all_object_contents = pull_objects(" in inspect.getsource(http_grid)


def test_the_fitted_waits_replace_flowers_and_leave_other_sleeps_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(start_client_internal, "time", start_client_internal.time)
    monkeypatch.setattr(start_client_internal, "pull_objects", start_client_internal.pull_objects)
    monkeypatch.setattr(http_grid, "pull_objects", http_grid.pull_objects)
    supernode.fit_waits(idle_poll_s=0.01, object_retry_s=0.02)
    started = time.perf_counter()
    start_client_internal.time.sleep(supernode.FLOWER_IDLE_WAIT_S)
    start_client_internal.time.sleep(supernode.FLOWER_REPLY_WAIT_S)
    assert time.perf_counter() - started < 1
    assert start_client_internal.pull_objects.keywords["initial_backoff"] == 0.02
    fit_reply_object_retry(0.03)
    assert http_grid.pull_objects.keywords["initial_backoff"] == 0.03


@pytest.mark.parametrize("setting", ["supernode.idle_poll_s=0", "supernode.object_retry_s=5"])
def test_a_wait_out_of_range_is_named(setting: str) -> None:
    with pytest.raises(ConfigError, match=setting.split("=")[0]):
        node_process_settings([setting])
