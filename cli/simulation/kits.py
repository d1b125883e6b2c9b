"""Kits for a simulated federation, provisioned as a real one is (`fl_protocol.identity.kits`).

A secure simulation, or one under local DP-SGD (a node keeps its privacy ledger in its
kit), without a coordinator kit gets one kit per party in
`<output_dir>/kits`: the coordinator's kit is named in the settings, and the simulated
nodes find theirs through `SIMULATED_KITS_VARIABLE`, which this process sets before
Flower's engine starts its workers (they inherit it). A rerun in the same folder keeps
the same identities and node state (DP-SGD ledgers), as a real federation would; only the
policies are rewritten.
"""

import dataclasses
import os
import shutil
from pathlib import Path

from configs.compose import require
from fedtriage.errors import ConfigError
from fl_client.kit import SIMULATED_KITS_VARIABLE
from fl_protocol.identity import kits
from fl_protocol.identity.roster import Roster
from fl_protocol.protection import ckks_contexts
from fl_protocol.protection.modes import PrivacyMode, ProtectionMode
from fl_protocol.settings import RunSettings
from fl_protocol.settings.node import FederationSettings
from fl_protocol.settings.policy import NodePolicy

KITS_FOLDER = "kits"
SIMULATED_FEDERATION = "simulated-federation"


def provision_simulated_kits(settings: RunSettings) -> RunSettings:
    """`settings` with the coordinator's kit of a freshly provisioned (or kept) simulated federation.

    Secure modes need kits for their keys; local DP-SGD for each node's ledger (`state/`).
    """
    secure = settings.secure.mode.is_secure
    if not (secure or settings.privacy.mode is PrivacyMode.local_dpsgd):
        # A later job of a sweep in this process: its nodes must not find an earlier job's kits.
        os.environ.pop(SIMULATED_KITS_VARIABLE, None)
        return settings
    if settings.kit:
        return settings
    if secure:
        check_simulated_policy(settings.simulation.node_policy, settings.federation, settings.secure.secagg.neighbours)
    if not settings.output_dir:
        raise ConfigError(
            "output_dir", "a secure or local-DP simulation provisions its kits (keys, DP ledgers) there: give one"
        )
    folder = Path(settings.output_dir) / KITS_FOLDER
    num_nodes = settings.federation.num_nodes
    policy = dataclasses.asdict(settings.simulation.node_policy)
    if not _complete(folder, num_nodes):
        shutil.rmtree(folder, ignore_errors=True)  # an earlier, other-sized simulation's kits
        folder.parent.mkdir(parents=True, exist_ok=True)
        kits.provision_simulation(folder, SIMULATED_FEDERATION, num_nodes, policy)
    else:
        for index in range(num_nodes):
            kits.write_policy(kits.simulated_node_kit(folder, index), policy)
    if settings.secure.mode is ProtectionMode.ckks:
        _provision_ckks_key(settings, folder)
    os.environ[SIMULATED_KITS_VARIABLE] = str(folder)
    return dataclasses.replace(settings, kit=str(folder / kits.COORDINATOR_KIT))


def check_simulated_policy(policy: NodePolicy, federation: FederationSettings, neighbours: int | None) -> None:
    """A simulated node whose policy no round could meet fails here, before anything starts.

    A round samples max(fraction_train x num_nodes, min_train_nodes) nodes, as Flower's strategies do.
    """
    sampled = min(federation.num_nodes, max(int(federation.fraction_train * federation.num_nodes),
                                            federation.min_train_nodes))
    peers = sampled - 1 if neighbours is None else min(neighbours, sampled - 1)
    require(
        peers >= policy.secure.min_peers,
        "simulation.node_policy.secure.min_peers",
        f"{policy.secure.min_peers} peers, but a round samples {sampled} of federation.num_nodes="
        f"{federation.num_nodes} (secure.secagg.neighbours={neighbours}), {peers} peers each: every node would "
        "refuse every round",
    )
    require(
        sampled >= policy.secure.min_cohort,
        "simulation.node_policy.secure.min_cohort",
        f"{policy.secure.min_cohort} nodes, more than the {sampled} a round samples of federation.num_nodes="
        f"{federation.num_nodes}",
    )


def _provision_ckks_key(settings: RunSettings, folder: Path) -> None:
    """A fresh CKKS key for this run, made by a node in its kit and shared with the others' kits, as
    units do; the coordinator's kit gets the public context only."""
    nodes = [kits.simulated_node_kit(folder, index) for index in range(settings.federation.num_nodes)]
    ckks_contexts.generate_context(settings.secure.ckks, nodes[0])
    ckks_contexts.share_context(nodes[0], nodes, folder / kits.COORDINATOR_KIT)
    print(f"{nodes[0].name} made this run's CKKS key; the other node kits share it", flush=True)


def _complete(folder: Path, num_nodes: int) -> bool:
    roster_file = folder / kits.COORDINATOR_KIT / kits.ROSTER_FILE
    if not roster_file.is_file():
        return False
    expected = {kits.simulated_node_kit(folder, index).name for index in range(num_nodes)}
    return set(Roster.load(roster_file).nodes) == expected and all(
        (folder / name / kits.IDENTITY_FILE).is_file() for name in expected
    )
