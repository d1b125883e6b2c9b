"""The lone participant, round-id replay and mask-key substitution through Flower's simulation engine.

The same attacks as `test_attacks.py`, played by a ServerApp against real protected
nodes (`attach_protection`) that Flower's engine runs in its own workers, finding their
kits as a simulation's nodes do: the messages cross Flower's real message path.
"""

from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, RecordDict
from flwr.serverapp import Grid, ServerApp

from cli.simulation.engine import run_app_objects_in_simulation
from cli.simulation.kits import provision_simulated_kits
from experiments.secure_bench_apps import ARRAY_NAME, BenchRun, fixed_update_apps
from fl_protocol import records
from fl_protocol.protection import messages
from fl_protocol.protection.secagg import keys, session
from fl_protocol.run_config import load_settings
from fl_server.kit import coordinator_kit
from fl_server.protection.secagg_session import run_session
from tests.protection.test_attacks import Coordinator, _refusal, _shares

pytestmark = [pytest.mark.attack, pytest.mark.slow]

NUM_NODES = 5
VALUES = 20


def test_attacks_through_flowers_engine_lone_participant_replay_and_mask_key_substitution_all_fail(
    tmp_path: Path,
) -> None:
    settings = provision_simulated_kits(
        load_settings([
            f"federation.num_nodes={NUM_NODES}", "federation.round_timeout_s=60", "tracking.enabled=false",
            f"output_dir={tmp_path}",
        ])
    )
    _, client = fixed_update_apps(settings, VALUES, 1e-3, BenchRun())  # only its nodes: the server is the attacker
    seen: dict[str, object] = {}
    server = ServerApp()

    @server.main()
    def attacker(grid: Grid, context: Context) -> None:
        try:
            play_the_attacks(grid, settings, seen)
        except Exception as err:  # the engine would only log it: keep it for the test
            seen["error"] = f"{type(err).__name__}: {err}"

    run_app_objects_in_simulation(server, client, settings)
    assert "error" not in seen, seen["error"]
    assert str(seen["lone participant"]).endswith("refused: policy min-peers")
    assert seen["honest round"] is None
    assert all("answered once" in str(reason) for reason in seen["replayed share keys"])  # type: ignore[attr-defined]
    assert all("no secrets for that round" in str(reason) for reason in seen["replayed unmask"])  # type: ignore[attr-defined]
    assert "not signed by its roster key" in str(seen["substituted mask keys"])


def play_the_attacks(grid: Grid, settings, seen: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    nodes: list[int] = []
    while len(nodes) < NUM_NODES:
        nodes = sorted(grid.get_node_ids())
    victim, others = nodes[0], nodes[1:]
    coordinator = Coordinator.on(grid, coordinator_kit(settings), nodes, timeout_s=60)

    # Lone participant: the victim is named alone.
    seen["lone participant"] = _refusal(coordinator.share_keys(b"L" * 16, [victim])[victim])

    # Replay: an honest round by the server's own session code, then its round id again without the victim.
    content = RecordDict({
        records.ARRAYS_KEY: ArrayRecord({ARRAY_NAME: Array(np.zeros(VALUES, dtype=np.float32))}),
        records.CONFIG_KEY: ConfigRecord({"server-round": 1}),
    })
    sec = settings.secure.secagg
    honest = run_session(
        coordinator.exchange, coordinator.run_keys, sec, session.layout(VALUES, sec, NUM_NODES), content,
        messages.SECAGG_TRAIN, nodes, 2,
    )
    seen["honest round"] = honest.failure
    round_id = honest.round_id
    replies = coordinator.share_keys(round_id, nodes, ask=others)
    seen["replayed share keys"] = [_refusal(reply) for reply in replies.values()]
    seen["replayed unmask"] = [_refusal(coordinator.unmask(round_id, node, others)) for node in others]

    # Mask-key substitution: the server hands the victim mask keys it made.
    fresh = b"S" * 16
    shares = _shares(coordinator.share_keys(fresh, nodes))
    made = [keys.public_bytes(keys.new_private_key()) for _ in others]
    request = coordinator.masked(fresh, victim, shares, **{"s-pks": made})
    seen["substituted mask keys"] = _refusal(request)
