"""Benchmark: `fedtriage classify` throughput against the model's own limit, its costs, its memory.

    fedtriage bench classify [--quick] [--sizes N N] [--image-side PX] [--video-share F] [--repeats R]

Writes N generated files to disk, as a seized device mixes them: PNG and JPEG images and a
share of short H.264 videos (scenes of generated shapes); runs the full triage pipeline on
them (walk, read, MD5/SHA-1, decode, PDQ, key frames, batch, score, journal, near-duplicate
groups, reports) with the default model; and runs the bare forward pass of the same model on
preloaded tensors of the same batch size and thread count: the limit. Pipeline and forward
pass alternate for `--repeats` rounds and the ratio is the median of the rounds' ratios
(model inputs scored per second: images plus video frames). Each pipeline run is a fresh
process so its peak resident memory is its own; flat peak memory across sizes shows that
memory does not grow with the number of files. What each step costs a file (hashing, PDQ,
image decoding, video sampling) is timed apart, in one process, on a sample of the files.
Prints a table, then one JSON object of the figures as the very last line.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from fl_client.holdings import write_synthetic_holdings
from fl_protocol.run_config import load_settings
from models import ModelSpec, save_model_file

CLASSES = ["disc", "square", "triangle", "cross"]
_VIDEO_SECONDS = 3  # each video: three one-second scenes
_VIDEO_FPS = 12


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="fedtriage bench classify", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes on 2 cores)")
    parser.add_argument("--sizes", type=int, nargs=2, default=None, help="two file counts (default 5000 20000)")
    parser.add_argument("--image-side", type=int, default=128, help="side of the generated images in pixels")
    parser.add_argument("--video-share", type=float, default=0.02, help="share of the files that are videos")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds of pipeline and forward pass")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a classify setting for the pipeline runs, e.g. --set decode_workers=2 (repeatable)")
    parser.add_argument("--worker", nargs=3, metavar=("IMAGES", "MODEL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(*args.worker, overrides=args.set)
        return
    sizes = args.sizes or ([1500, 4500] if args.quick else [5000, 20000])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fedtriage-bench-classify-") as scratch_dir:
        scratch = Path(scratch_dir)
        settings = load_settings(["holdings=synthetic", f"holdings.path={scratch / 'unused'}"])
        spec = ModelSpec.from_settings(settings)
        torch.manual_seed(0)
        model_file = save_model_file(scratch / "model.pt", spec.build(), spec)
        devices = {size: write_device(scratch / f"device-{size}", size, args.image_side, args.video_share)
                   for size in sizes}
        rounds: list[dict[str, object]] = []
        for repeat in range(args.repeats):
            runs = [measure_pipeline(devices[size], model_file, scratch / f"out-{size}-{repeat}", args.set)
                    for size in sizes]
            forward = forward_images_per_s(spec, batch_size=runs[-1]["batch_size"],
                                           threads=runs[-1]["torch_threads"])
            rounds.append({"runs": runs, "forward": forward, "ratio": runs[-1]["inputs_per_s"] / forward})
        costs = step_costs(devices[sizes[0]], spec, args.image_side)
    figures = summarize(rounds, costs, sizes, args, spec, time.perf_counter() - started)
    print_table(figures)
    print(json.dumps(figures))


def write_device(root: Path, files: int, image_side: int, video_share: float) -> Path:
    """`files` generated files under `root`: images of the four shapes, and videos of their scenes."""
    from PIL import Image

    from media.video_writer import write_video

    videos = round(files * video_share)
    write_synthetic_holdings(root / "images", CLASSES, (files - videos) // len(CLASSES), image_side, "mixed",
                             seed=files)
    (root / "images" / ".fedtriage-synthetic.json").unlink(missing_ok=True)
    scenes = sorted((root / "images").rglob("*.png"))
    side = image_side - image_side % 2
    (root / "videos").mkdir()

    def frames(first: int) -> Iterator[np.ndarray]:
        for scene in range(_VIDEO_SECONDS):
            picture = Image.open(scenes[(first + scene) % len(scenes)]).convert("RGB").resize((side, side))
            pixels = np.asarray(picture)
            for step in range(_VIDEO_FPS):
                yield np.roll(pixels, step, axis=1)

    for index in range(videos):
        write_video(root / "videos" / f"VID_{index:05d}.mp4", frames(3 * index), _VIDEO_FPS)
    return root


def step_costs(device: Path, spec: ModelSpec, image_side: int, sample: int = 400) -> dict[str, float]:
    """Milliseconds per file of each step a reader takes, timed apart on a sample of the files."""
    from media.decode import decode_upright, fit_pixels
    from media.hashes import hash_bytes
    from media.pdq import PDQ_SIDE, pdq_of_picture
    from media.video import KeyFrames
    from triage.hash_lines import HashLister

    images = sorted(path for path in (device / "images").rglob("*") if path.is_file())[:sample]
    data = [path.read_bytes() for path in images]
    pictures = [decode_upright(item, max(spec.image_size, PDQ_SIDE)) for item in data]
    limits = HashLister.from_defaults().video
    videos = sorted((device / "videos").glob("*.mp4"))[:20]

    def sample_video(path: Path) -> int:
        with path.open("rb") as stream, KeyFrames(stream, limits) as video:
            return sum(1 for _ in video)

    costs = {
        "md5_sha1_ms_per_image": _ms_each(data, hash_bytes),
        "decode_ms_per_image": _ms_each(data, lambda item: fit_pixels(
            decode_upright(item, max(spec.image_size, PDQ_SIDE)), spec.channels, spec.image_size)),
        "pdq_ms_per_image": _ms_each(pictures, lambda picture: pdq_of_picture(picture)),
    }
    if videos:
        frames = sum(sample_video(path) for path in videos)
        costs["video_decode_ms_per_video"] = _ms_each(videos, sample_video)
        costs["frames_per_video"] = frames / len(videos)
    return costs


def _ms_each(items: list, step: Callable[[object], object]) -> float:  # type: ignore[type-arg]
    started = time.perf_counter()
    for item in items:
        step(item)
    return 1000 * (time.perf_counter() - started) / max(len(items), 1)


def summarize(rounds: list[dict[str, object]], costs: dict[str, float], sizes: list[int],
              args: argparse.Namespace, spec: ModelSpec, seconds: float) -> dict[str, object]:
    largest = [round_["runs"][-1] for round_ in rounds]  # type: ignore[index]
    by_size = {size: [round_["runs"][index] for round_ in rounds] for index, size in enumerate(sizes)}  # type: ignore[index]
    first = largest[0]
    return {
        "n_files": first["files"],
        "videos": first["videos"],
        "frames_scored": first["frames_scored"],
        "pipeline_inputs_per_s": round(statistics.median(run["inputs_per_s"] for run in largest), 1),
        "forward_images_per_s": round(statistics.median(round_["forward"] for round_ in rounds), 1),
        "ratio": round(statistics.median(round_["ratio"] for round_ in rounds), 3),
        "ratios": [round(round_["ratio"], 3) for round_ in rounds],
        "peak_rss_mb_by_size": {str(size): round(statistics.median(run["peak_rss_mb"] for run in runs), 1)
                                for size, runs in by_size.items()},
        "reader_peak_rss_mb_by_size": {
            str(size): round(statistics.median(run["reader_peak_rss_mb"] for run in runs), 1)
            for size, runs in by_size.items()
        },
        "inputs_per_s_by_size": {str(size): round(statistics.median(run["inputs_per_s"] for run in runs), 1)
                                 for size, runs in by_size.items()},
        **{name: round(value, 3) for name, value in costs.items()},
        "image_side": args.image_side,
        "video_share": args.video_share,
        "repeats": args.repeats,
        "model_input": f"{spec.channels}x{spec.image_size}x{spec.image_size}",
        "batch_size": first["batch_size"],
        "decode_workers": first["decode_workers"],
        "torch_threads": first["torch_threads"],
        "seconds": round(seconds, 1),
    }


def measure_pipeline(images: Path, model_file: Path, out: Path, overrides: list[str]) -> dict[str, float]:
    """Run `fedtriage classify` on `images` in a fresh process; its throughput and peak memory."""
    settings = [argument for override in overrides for argument in ("--set", override)]
    completed = subprocess.run(
        [sys.executable, "-m", "cli.app", "bench", "classify", "--worker", str(images), str(model_file), str(out),
         *settings],
        capture_output=True, text=True, check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_worker(images: str, model_file: str, out: str, overrides: list[str]) -> None:
    """In the child: one classify run, timed, with peak resident memory of it and its readers."""
    from triage.classify import classify_media
    from triage.settings import load_classify_settings

    settings = load_classify_settings(
        [f"source={images}", f"model={model_file}", f"out={out}", "relevant_classes=[disc]", "progress=false",
         *overrides]
    )
    started = time.perf_counter()
    summary = classify_media(settings)
    seconds = time.perf_counter() - started
    inputs = summary.classified - summary.videos + summary.frames_scored
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # The reader processes have been joined: the largest of them (forked, so pages it
    # shares with the scorer count in both).
    reader_peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps(
            {
                "files": summary.files_seen,
                "classified": summary.classified,
                "videos": summary.videos,
                "frames_scored": summary.frames_scored,
                "seconds": seconds,
                "inputs_per_s": inputs / seconds,
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


def print_table(figures: dict[str, object]) -> None:
    print()
    print(f"model cnn, input {figures['model_input']}, batch {figures['batch_size']}, "
          f"{figures['decode_workers']} reader process(es), {figures['torch_threads']} torch thread(s); "
          f"generated {figures['image_side']}px PNG/JPEG files, {figures['video_share']:.0%} of them "
          f"{_VIDEO_SECONDS} s H.264 videos; medians of {figures['repeats']} interleaved rounds")
    print(f"{'files':>8}{'model inputs/s':>16}{'peak RSS MB':>14}{'reader peak RSS MB':>21}")
    for size, rate in figures["inputs_per_s_by_size"].items():  # type: ignore[attr-defined]
        print(f"{size:>8}{rate:>16.1f}{figures['peak_rss_mb_by_size'][size]:>14.1f}"  # type: ignore[index]
              f"{figures['reader_peak_rss_mb_by_size'][size]:>21.1f}")  # type: ignore[index]
    print(f"bare forward pass: {figures['forward_images_per_s']:.1f} images/s; ratio {figures['ratio']:.3f} "
          f"(rounds {figures['ratios']}); total {figures['seconds']:.0f} s")
    print("cost of each step in a reader, per file (ms): "
          f"MD5+SHA-1 {figures['md5_sha1_ms_per_image']:.3f}, decode {figures['decode_ms_per_image']:.3f}, "
          f"PDQ {figures['pdq_ms_per_image']:.3f}; a video: decoding and sampling its key frames "
          f"{figures.get('video_decode_ms_per_video', float('nan')):.1f} "
          f"({figures.get('frames_per_video', 0):.1f} frames)")


if __name__ == "__main__":
    # Run through the command, which switches telemetry off before Flower, Ray or MLflow load.
    raise SystemExit("run this benchmark as: fedtriage bench classify [--quick]")
