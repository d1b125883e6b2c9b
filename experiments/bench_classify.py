"""Benchmark: `fedtriage classify` throughput against the model's own limit, and its memory.

    fedtriage bench classify [--quick] [--sizes N N] [--image-side PX]

Writes N generated images (PNG and JPEG, as a seized device mixes them) to disk and
runs the full triage pipeline on them (walk, read, hash, decode, batch, score,
journal, reports) with the default model; then runs the bare forward pass of the same
model on preloaded tensors of the same batch size and thread count: the limit. Each
size runs in a fresh process so its peak resident memory is its own; flat peak memory
across sizes shows that memory does not grow with the number of files.
Prints a table, then one JSON object of the figures as the very last line.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fl_client.holdings import write_synthetic_holdings
from fl_protocol.run_config import load_settings
from models import ModelSpec, save_model_file

CLASSES = ["disc", "square", "triangle", "cross"]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="fedtriage bench classify", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (under 2 minutes on 2 cores)")
    parser.add_argument("--sizes", type=int, nargs=2, default=None, help="two file counts (default 5000 20000)")
    parser.add_argument("--image-side", type=int, default=128, help="side of the generated images in pixels")
    parser.add_argument("--worker", nargs=3, metavar=("IMAGES", "MODEL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(*args.worker)
        return
    sizes = args.sizes or ([1500, 4500] if args.quick else [5000, 20000])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fedtriage-bench-classify-") as scratch_dir:
        scratch = Path(scratch_dir)
        settings = load_settings(["holdings=synthetic", f"holdings.path={scratch / 'unused'}"])
        spec = ModelSpec.from_settings(settings)
        torch.manual_seed(0)
        model_file = save_model_file(scratch / "model.pt", spec.build(), spec)
        runs = []
        for size in sizes:
            images = scratch / f"images-{size}"
            write_synthetic_holdings(
                images, CLASSES, size // len(CLASSES), args.image_side, "mixed", seed=size
            )
            runs.append(measure_pipeline(images, model_file, scratch / f"out-{size}"))
        forward = forward_images_per_s(spec, batch_size=runs[-1]["batch_size"], threads=runs[-1]["torch_threads"])
    largest = runs[-1]
    figures = {
        "n_images": largest["files"],
        "pipeline_images_per_s": round(largest["images_per_s"], 1),
        "forward_images_per_s": round(forward, 1),
        "ratio": round(largest["images_per_s"] / forward, 3),
        "peak_rss_mb": round(largest["peak_rss_mb"], 1),
        "peak_rss_mb_by_size": {str(run["files"]): round(run["peak_rss_mb"], 1) for run in runs},
        "reader_peak_rss_mb_by_size": {str(run["files"]): round(run["reader_peak_rss_mb"], 1) for run in runs},
        "images_per_s_by_size": {str(run["files"]): round(run["images_per_s"], 1) for run in runs},
        "image_side": args.image_side,
        "model_input": f"{spec.channels}x{spec.image_size}x{spec.image_size}",
        "batch_size": largest["batch_size"],
        "decode_workers": largest["decode_workers"],
        "torch_threads": largest["torch_threads"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    print_table(figures, runs)
    print(json.dumps(figures))


def measure_pipeline(images: Path, model_file: Path, out: Path) -> dict[str, float]:
    """Run `fedtriage classify` on `images` in a fresh process; its throughput and peak memory."""
    completed = subprocess.run(
        [sys.executable, "-m", "cli.app", "bench", "classify", "--worker", str(images), str(model_file), str(out)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_worker(images: str, model_file: str, out: str) -> None:
    """In the child: one classify run, timed, with peak resident memory of it and its readers."""
    from triage.classify import classify_media
    from triage.settings import load_classify_settings

    settings = load_classify_settings(
        [f"source={images}", f"model={model_file}", f"out={out}", "relevant_classes=[disc]", "progress=false"]
    )
    started = time.perf_counter()
    summary = classify_media(settings)
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # The reader processes have been joined: the largest of them (forked, so pages it
    # shares with the scorer count in both).
    reader_peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps(
            {
                "files": summary.files_seen,
                "classified": summary.classified,
                "seconds": seconds,
                "images_per_s": summary.classified / seconds,
                "peak_rss_mb": peak_kb / 1024,
                "reader_peak_rss_mb": reader_peak_kb / 1024,
                "batch_size": settings.batch_size,
                "decode_workers": settings.decode_workers,
                "torch_threads": settings.torch_threads,
            }
        )
    )


def forward_images_per_s(
    spec: ModelSpec, batch_size: int, threads: int, batches: int = 60, repeats: int = 3
) -> float:
    """The limit: the model alone on preloaded uint8 batches, converted as the pipeline does.

    The best of `repeats` timings: the fastest the model has shown it can go.
    """
    torch.set_num_threads(threads)
    model = spec.build().eval()
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, size=(batch_size, spec.channels, spec.image_size, spec.image_size), dtype=np.uint8)
    best = 0.0
    with torch.inference_mode():
        for _ in range(5):
            torch.softmax(model(torch.from_numpy(batch).float().div_(255.0)), dim=1)
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(batches):
                torch.softmax(model(torch.from_numpy(batch).float().div_(255.0)), dim=1)
            best = max(best, batches * batch_size / (time.perf_counter() - started))
    return best


def print_table(figures: dict[str, object], runs: list[dict[str, float]]) -> None:
    print()
    print(f"model cnn, input {figures['model_input']}, batch {figures['batch_size']}, "
          f"{figures['decode_workers']} reader process(es), {figures['torch_threads']} torch thread(s); "
          f"generated {figures['image_side']}px PNG/JPEG files")
    print(f"{'files':>8}{'pipeline images/s':>20}{'peak RSS MB':>14}{'reader peak RSS MB':>21}")
    for run in runs:
        print(f"{int(run['files']):>8}{run['images_per_s']:>20.1f}{run['peak_rss_mb']:>14.1f}"
              f"{run['reader_peak_rss_mb']:>21.1f}")
    print(f"bare forward pass: {figures['forward_images_per_s']:.1f} images/s; "
          f"ratio {figures['ratio']:.3f}; total {figures['seconds']:.0f} s")


if __name__ == "__main__":
    # Run through the command, which switches telemetry off before Flower, Ray or MLflow load.
    raise SystemExit("run this benchmark as: fedtriage bench classify [--quick]")
