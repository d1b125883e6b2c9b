"""The privacy audit: the attacks an honest-but-curious coordinator can run on what it receives.

    fedtriage privacy-audit [--quick] [--out DIR] [OVERRIDE ...]
    fedtriage simulate +experiment=privacy-audit -m [OVERRIDE ...]    # the same, --quick, as a preset

Gradient inversion of a node's plaintext update, of the secure sum over each cohort, under
central DP and under local DP-SGD (PSNR and SSIM against the true images); membership
inference (loss threshold and LiRA) against the final global model with and without DP
(AUC and advantage). Proxy data only (holdings=digits, the default, or synthetic).
Settings: configs/privacy_audit.yaml, i.e. the run's configuration plus configs/audit/
(`--quick` selects `audit=quick`); OVERRIDEs are Hydra's, e.g. `audit.inversion.iterations=2000
privacy.noise_multiplier=0.5`.

Writes into --out: reconstructions.png, claims.md (the claims table beside the README's
threat model) and figures.json; logs one MLflow run per attacked setting (unless
tracking.enabled=false). Prints a table, then one JSON object of the figures as the very
last line.
"""

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from fedtriage.environment import disable_phone_home
from fedtriage.errors import FedtriageError
from fl_client.holdings import Holdings, ensure_synthetic_holdings, load_holdings
from fl_protocol.settings import RunSettings
from privacy_audit.figure import write_reconstruction_figure
from privacy_audit.inversion_audit import run_inversion_audit
from privacy_audit.membership_audit import run_membership_audit
from privacy_audit.report import AuditContext, AuditReport, audit_figures, claims_markdown, format_table
from privacy_audit.settings import AuditConfiguration, load_audit_configuration
from privacy_audit.tracking import log_audit

CLAIMS_FILE = "claims.md"
FIGURES_FILE = "figures.json"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="fedtriage privacy-audit", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="audit=quick: a smaller budget, minutes on 2 cores")
    parser.add_argument("--out", type=Path, default=Path("outputs/privacy-audit"), help="folder for the files")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of configs/privacy_audit.yaml")
    args = parser.parse_args(argv)
    disable_phone_home()
    configuration = load_audit_configuration([*(["audit=quick"] if args.quick else []), *args.overrides])
    run_privacy_audit(configuration, args.out)
    return 0


def run_privacy_audit(configuration: AuditConfiguration, out: Path) -> None:
    """Attack, write the files into `out`, log to MLflow (as `run.tracking` says), print the figures.

    Also what `fedtriage simulate +experiment=privacy-audit` runs for its job.
    """
    started = time.perf_counter()
    run, audit = configuration.run, configuration.audit
    # Tiny models and batches: more threads only synchronise (train.threads, 1 by default, as on a simulated node).
    torch.set_num_threads(run.train.threads)
    pool = _proxy_pool(run)
    with tempfile.TemporaryDirectory(prefix="fedtriage-audit-") as scratch:
        inversion = run_inversion_audit(run, audit.inversion, pool, Path(scratch), _progress)
        membership = run_membership_audit(run, audit.membership, pool, Path(scratch), _progress)
    report = AuditReport(_context(run), audit, inversion.findings, membership, time.perf_counter() - started)

    out.mkdir(parents=True, exist_ok=True)
    figure = write_reconstruction_figure(inversion.samples, out)
    claims = out / CLAIMS_FILE
    claims.write_text(claims_markdown(report), encoding="utf-8")
    figures = audit_figures(report)
    (out / FIGURES_FILE).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(format_table(report))
    print(f"\nwrote {figure}, {claims} and {out / FIGURES_FILE}")
    if run.tracking.enabled:
        # One sweep in MLflow: named by tracking.sweep_id when given (as for `fedtriage simulate -m`), else by the time.
        audit_id = run.tracking.sweep_id or f"privacy-audit-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
        try:
            tracked = log_audit(report, run, audit_id, [figure, claims])
        except Exception as err:  # noqa: BLE001 - the files are written; a tracking outage must not lose them
            print(f"warning: MLflow tracking failed ({type(err).__name__}: {err}); the files above hold the audit",
                  file=sys.stderr)
        else:
            print(f"MLflow: {tracked.runs} runs in experiment {run.tracking.experiment_name!r} at "
                  f"{tracked.tracking_uri}; compare them with `fedtriage compare --experiment "
                  f"{run.tracking.experiment_name} --sweep {tracked.audit_id} --out DIR`")
    print(json.dumps(figures))


def _proxy_pool(run: RunSettings) -> Holdings:
    """The proxy images every attacked node draws from (the settings allow digits or generated shapes only)."""
    if run.holdings.source == "synthetic":
        ensure_synthetic_holdings(run.holdings, run.seed)
    return load_holdings(run.holdings)


def _context(run: RunSettings) -> AuditContext:
    return AuditContext(
        dataset=run.holdings.source, model=run.model.name, lr=run.train.lr,
        noise_multiplier=run.privacy.noise_multiplier, clip_norm=run.privacy.clip_norm,
        max_grad_norm=run.privacy.max_grad_norm, min_cohort=run.simulation.node_policy.secure.min_cohort,
    )


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except FedtriageError as err:
        print(f"privacy audit: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
