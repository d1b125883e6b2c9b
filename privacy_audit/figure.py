"""The figure of reconstructions: node 0's true proxy images above what each mode let the attacker rebuild.

Only proxy images (digits or generated shapes: `settings.PROXY_SOURCES`) ever reach it. Drawn
on a bare `Figure` with the Agg canvas: no pyplot, no global figure state, no GUI backend.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from privacy_audit.inversion_audit import ReconstructionSample

FIGURE_FILE = "reconstructions.png"
_PANEL_INCHES = 1.1


def write_reconstruction_figure(samples: Sequence[ReconstructionSample], folder: Path) -> Path:
    """One block per images-per-node count: a row of true images, then one row per audited mode."""
    blocks: dict[int, list[ReconstructionSample]] = {}
    for sample in samples:
        blocks.setdefault(sample.images_per_node, []).append(sample)
    rows = sum(len(block) + 1 for block in blocks.values())
    columns = max(blocks)
    figure = Figure(figsize=(columns * _PANEL_INCHES + 2.4, rows * _PANEL_INCHES))
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    row = 0
    for images_per_node, block in blocks.items():
        _show_row(axes[row], block[0].truth, [""] * images_per_node, f"true images\n({images_per_node} per node)")
        row += 1
        for sample in block:
            titles = [f"{value:.1f} dB" for value in sample.psnr]
            _show_row(axes[row], sample.reconstructed, titles, f"{sample.mode.label}\ncohort {sample.mode.cohort}")
            row += 1
    figure.suptitle("Gradient inversion by the server: node 0's images (PSNR per image)")
    figure.tight_layout()
    path = folder / FIGURE_FILE
    figure.savefig(path, dpi=100)
    return path


def _show_row(axes: Sequence[Axes], images: np.ndarray, titles: Sequence[str], label: str) -> None:
    for index, axis in enumerate(axes):
        axis.set_xticks([])
        axis.set_yticks([])
        if index >= len(images):
            axis.axis("off")
            continue
        image = images[index]
        if image.shape[0] == 1:
            axis.imshow(image[0], cmap="gray", vmin=0.0, vmax=1.0)
        else:
            axis.imshow(np.clip(image.transpose(1, 2, 0), 0.0, 1.0))
        axis.set_title(titles[index], fontsize=7)
    axes[0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
