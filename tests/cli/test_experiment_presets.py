"""The experiment presets (`configs/experiment/`): every job each one's sweep expands to is a valid run, and
each varies what it promises a researcher. Composition only; `test_experiment_presets_e2e` runs them."""

import itertools
from collections import Counter

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from configs import CONFIG_DIR
from fl_protocol.run_config import load_settings
from fl_protocol.settings import RunSettings
from fl_server.strategy_factory import MEAN_BASED

PRESETS_DIR = CONFIG_DIR / "experiment"
# Each preset and the number of jobs of its quick form.
QUICK_JOBS = {"noniid": 5, "strategies": 10, "protection-cost": 3, "privacy-utility": 6, "robustness": 12,
              "robustness-dropouts": 4, "centralized": 1}


def sweep_jobs(preset: str) -> list[list[str]]:
    """The overrides of every job `fedtriage simulate +experiment=PRESET -m` runs, as Hydra's sweeper expands them."""
    params = OmegaConf.select(OmegaConf.load(PRESETS_DIR / f"{preset}.yaml"), "hydra.sweeper.params") or {}
    parsed = OverridesParser.create().parse_overrides([f"{key}={value}" for key, value in params.items()])
    axes = [[f"{override.get_key_element()}={value}" for value in override.sweep_string_iterator()]
            for override in parsed]
    return [[f"+experiment={preset}", *job] for job in itertools.product(*axes)]


def jobs_of(preset: str) -> list[RunSettings]:
    return [load_settings(job) for job in sweep_jobs(preset)]


@pytest.mark.parametrize("preset", sorted(QUICK_JOBS))
def test_every_job_of_a_presets_quick_sweep_is_a_valid_run(preset: str) -> None:
    assert len(jobs_of(preset)) == QUICK_JOBS[preset]


@pytest.mark.parametrize("preset", sorted(QUICK_JOBS))
def test_a_preset_is_one_sweep_named_after_it_and_says_how_to_scale_up(preset: str) -> None:
    text = (PRESETS_DIR / f"{preset}.yaml").read_text(encoding="utf-8")
    assert text.startswith("# @package _global_\n")
    assert f"fedtriage simulate +experiment={preset}" in text
    assert "Scale up" in text or preset == "centralized"
    sweep_dir = OmegaConf.load(PRESETS_DIR / f"{preset}.yaml").hydra.sweep.dir
    assert sweep_dir.startswith(f"multirun/{preset}-")  # its sweep id, for `fedtriage compare --sweep`


def test_noniid_sweeps_dirichlet_skew_from_near_iid_to_strong_and_label_shards() -> None:
    partitions = {(job.partition.scheme, job.partition.alpha if job.partition.scheme == "dirichlet"
                   else job.partition.labels_per_node) for job in jobs_of("noniid")}
    assert partitions == {("dirichlet", 100.0), ("dirichlet", 1.0), ("dirichlet", 0.5), ("dirichlet", 0.1),
                          ("shards", 2)}


def test_strategies_runs_six_in_plaintext_and_under_secagg_exactly_those_it_allows() -> None:
    by_mode: dict[str, set[str]] = {}
    for job in jobs_of("strategies"):
        by_mode.setdefault(str(job.secure.mode), set()).add(job.strategy.name)
    assert by_mode == {"plaintext": {"fedavg", "fedprox", "fedadam", "fedyogi", "fedmedian", "krum"},
                       "secagg": set(MEAN_BASED)}


def test_protection_cost_compares_the_three_modes_on_one_federation() -> None:
    jobs = jobs_of("protection-cost")
    assert sorted(str(job.secure.mode) for job in jobs) == ["ckks", "plaintext", "secagg"]
    assert len({(job.federation.num_nodes, job.federation.num_rounds, job.model.name) for job in jobs}) == 1


def test_privacy_utility_crosses_central_and_local_dp_with_noise_levels_and_lets_every_run_finish() -> None:
    jobs = jobs_of("privacy-utility")
    assert {(str(job.privacy.mode), job.privacy.noise_multiplier) for job in jobs} == {
        (mode, noise) for mode in ("central", "local_dpsgd") for noise in (0.5, 1.0, 2.0)}
    assert all(job.privacy.epsilon_budget >= 1000 for job in jobs)


def test_robustness_sets_each_attack_against_each_defence() -> None:
    jobs = jobs_of("robustness")
    defences = Counter((str(job.secure.mode), job.strategy.name, str(job.privacy.mode)) for job in jobs)
    assert defences == {("plaintext", "fedavg", "none"): 3, ("plaintext", "fedmedian", "none"): 3,
                        ("plaintext", "krum", "none"): 3, ("secagg", "fedavg", "central"): 3}
    assert Counter(str(job.simulation.adversaries.attack) for job in jobs) == {"none": 4, "label_flip": 4, "scale": 4}
    assert {job.simulation.adversaries.share for job in jobs} == {0.3}
    assert all(job.simulation.dropouts.share == 0 for job in jobs)


def test_robustness_dropouts_drops_a_share_of_the_nodes_at_each_stage_of_a_secure_round() -> None:
    jobs = jobs_of("robustness-dropouts")
    assert [job.simulation.dropouts.stage for job in jobs] == ["setup", "share_keys", "train", "unmask"]
    assert all(str(job.secure.mode) == "secagg" and job.simulation.dropouts.share == 0.2 for job in jobs)


def test_the_centralized_baseline_is_one_node_holding_the_whole_pool_tagged_as_the_baseline() -> None:
    (job,) = jobs_of("centralized")
    assert job.federation.num_nodes == job.federation.min_train_nodes == 1
    assert str(job.secure.mode) == "plaintext" and job.strategy.name == "fedavg"
    assert job.tracking.tags == {"fedtriage.baseline": "centralized"}
    assert job.tracking.experiment_name == load_settings(sweep_jobs("noniid")[0]).tracking.experiment_name
