"""Figures a person looks at: contact sheets of diffraction patterns, forward-fit reports, training and
evaluation plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def contact_sheet(
    images: Sequence[np.ndarray], titles: Sequence[str], path: str | Path, *, columns: int = 8, log: bool = True
) -> Path:
    """Saves a grid of patterns, each tile titled, as a PNG: photon counts on a log scale
    (``log10(1 + photons)``), or with ``log=False`` images that already are log intensities."""
    if len(images) != len(titles):
        raise ValueError(f"got {len(images)} images but {len(titles)} titles")
    if not len(images):
        raise ValueError("contact_sheet needs at least one image")
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.75 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles, strict=False):
        shown = np.log10(1 + np.clip(image, 0, None)) if log else image
        ax.imshow(shown, cmap="magma", interpolation="nearest")
        ax.set_title(title, fontsize=6)
    fig.suptitle("log10(1 + photons)" if log else "log-intensity image", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fit_report(image, fitted, result, curve, path: Path) -> None:
    """PNG of a forward fit: the pattern, the best fit, and the error (or loss) against forward simulations."""
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
    axes[0].imshow(image, cmap="magma")
    axes[0].set_title("pattern")
    axes[1].imshow(fitted, cmap="magma")
    axes[1].set_title(f"best fit: R = {result.radius_nm:.1f} nm")
    for ax in axes[:2]:
        ax.axis("off")
    if curve:
        n, e = zip(*curve, strict=True)
        axes[2].semilogy(n, e, marker=".")
        axes[2].set_ylabel("mean relative error of best fit")
    else:
        n, loss = zip(*[(h[0], h[1]) for h in result.history], strict=True)
        axes[2].semilogy(n, loss, marker=".")
        axes[2].set_ylabel("best loss")
    axes[2].set_xlabel("forward simulations")
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def confusion_matrix(counts: np.ndarray, names: Sequence[str], path: Path) -> None:
    """PNG of a confusion matrix (rows: true class, columns: predicted), counts in the cells."""
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.imshow(counts, cmap="Blues")
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=8, color="black" if n < counts.max() / 2 else "white")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted particles")
    ax.set_ylabel("true particles")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def training_curves(rows: Sequence[dict], path: Path) -> None:
    """PNG of loss and the other metrics per epoch, training and validation (seed 000 fig. 8)."""
    epochs = [int(r["epoch"]) for r in rows]
    metrics = [k for k in rows[0] if k != "epoch" and not k.startswith("val_")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
    for ax, name in zip(axes[0], metrics, strict=True):
        ax.plot(epochs, [float(r[name]) for r in rows], label="training")
        if f"val_{name}" in rows[0]:
            ax.plot(epochs, [float(r[f"val_{name}"]) for r in rows], label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def error_histograms(mean: np.ndarray, worst: np.ndarray, path: Path) -> None:
    """PNG of the per-pattern mean and maximum relative errors (seed 001 fig. 4a)."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    bins = np.linspace(0, max(float(worst.max()), 1e-6), 40)
    ax.hist(mean, bins=bins, alpha=0.7, label="mean relative error")
    ax.hist(worst, bins=bins, alpha=0.7, label="maximum relative error")
    ax.set_xlabel("relative error")
    ax.set_ylabel("patterns")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tsne(embedding: np.ndarray, labels: np.ndarray, names: Sequence[str], path: Path) -> None:
    """PNG of a 2-D t-SNE embedding of features, one colour per true class (seed 000 fig. 14)."""
    fig, ax = plt.subplots(figsize=(5, 4.4))
    for k, name in enumerate(names):
        mine = labels == k
        if mine.any():
            ax.scatter(*embedding[mine].T, s=6, alpha=0.7, label=f"{name} ({mine.sum()})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("t-SNE of the features, by true particle count")
    ax.legend(fontsize=7, markerscale=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def hit_rate(classes: np.ndarray, single_hit: np.ndarray, path: Path, *, window: int | None = None) -> Path:
    """PNG of the hit rate (frames with >= 1 particle) and single-hit fraction against frame number, as
    running means over ``window`` frames (default: 1/50 of the frames, at least 1)."""
    n = len(classes)
    window = window or max(1, n // 50)
    kernel = np.ones(window) / window
    frames = np.arange(n)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for values, label in (((classes >= 1).astype(float), "hit rate (>= 1 particle)"), (single_hit, "single hits")):
        running = np.convolve(np.asarray(values, float), kernel, mode="valid")
        ax.plot(frames[window - 1 :], running, label=label)
    ax.set_xlabel("frame (all files in order)")
    ax.set_ylabel(f"fraction over {window} frames")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fit_summary(summary: dict, path: Path) -> None:
    """PNG of seed 001 fig. 4b: best-fit error against forward simulations over patterns, and the network."""
    curve, fit = summary["curve"], summary["forward_fit"]
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    n = curve["forward_simulations"]
    ax.fill_between(n, curve["q05"], curve["q95"], step="post", alpha=0.3, label="forward fit, central 90 %")
    ax.loglog(
        n,
        curve["median"],
        drawstyle="steps-post",
        label=f"forward fit, median ({fit['median_seconds_per_pattern']:.0f} s/pattern)",
    )
    if "network" in summary:
        net = summary["network"]
        ax.axhline(
            net["median_mean_relative_error"],
            color="C3",
            ls="--",
            label=f"network, median ({1e3 * net['median_seconds_per_pattern']:.1f} ms/pattern)",
        )
    ax.set_xlabel("forward simulations")
    ax.set_ylabel("mean relative error")
    ax.set_title(f"{summary['patterns']} pattern{'s' if summary['patterns'] != 1 else ''}", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
