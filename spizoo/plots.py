"""Figures a person looks at: contact sheets of diffraction patterns, forward-fit reports, training and
evaluation plots, the hit rate of classify and monitor.

Every figure says what it shows: a title with the key figure, axis labels with units, a colour bar wherever
colour carries a value. Each ``NAME(..., path)`` saves a PNG and returns its path; the PNG is written whole
(to ``PATH.partial``, then renamed), so a viewer refreshing ``monitor.png`` never shows half a file.
``NAME_figure(...)`` builds the same :class:`matplotlib.figure.Figure` without saving it (tests, notebooks).
Figures are drawn with the Agg canvas directly, never through pyplot's global state, so a long-running
monitor keeps no figures alive.
"""

from __future__ import annotations

import datetime
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import dates as mdates
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 110
MIN_FRAMES = 20
"""The hit-rate figure never shows a fraction over fewer frames than this (unless ``window`` is smaller)."""
MAX_WINDOW = 500
"""The largest default window of the hit-rate figure."""


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | Path) -> Path:
    """Writes ``fig`` as a PNG to ``path`` whole: to ``path.partial``, renamed when complete."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    try:
        fig.savefig(partial, dpi=DPI, format="png")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _finite(values) -> np.ndarray:
    out = []
    for v in values:
        try:
            out.append(float(v))
        except (TypeError, ValueError):  # an empty or "NA" cell of a CSV
            out.append(np.nan)
    return np.array(out)


def _log_ticks(ax, which: str, *, percent: bool = False) -> None:
    """A log axis with plain-number labels that never overlap: decades when the data span more than three,
    else 1-2-5 (or, within one decade, 1-2-3-5-7) steps; the limits widened to the neighbouring labelled
    ticks, so that at least two labels show. Unlabelled minor ticks in between."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    hi = hi if hi > 0 else 1.0
    lo = lo if lo > 0 else hi / 1000
    hi = max(hi, lo * 1.0001)
    decades = np.log10(hi / lo)
    subs = (1.0,) if decades > 3 else (1.0, 2.0, 5.0) if decades > 1 else (1.0, 2.0, 3.0, 5.0, 7.0)
    k = np.arange(np.floor(np.log10(lo)) - 1, np.ceil(np.log10(hi)) + 2)
    candidates = np.sort(np.outer(10.0**k, subs).ravel())
    new_lo = candidates[candidates <= lo * (1 + 1e-9)].max()
    new_hi = candidates[candidates >= hi * (1 - 1e-9)].min()
    (ax.set_xlim if which == "x" else ax.set_ylim)(new_lo, new_hi)
    axis.set_major_locator(ticker.FixedLocator(candidates[(candidates >= new_lo) & (candidates <= new_hi)]))
    axis.set_minor_locator(ticker.LogLocator(subs="all", numticks=100))
    scale = 100.0 if percent else 1.0
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{scale * v:.6g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


# --- contact sheets -------------------------------------------------------------------------------------


def contact_sheet_figure(
    images: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    columns: int = 8,
    log: bool = True,
    indices: Sequence[int] | None = None,
    title: str | None = None,
) -> Figure:
    """A grid of patterns on one colour scale with its colour bar, each tile titled (``#frame`` first when
    ``indices`` are given): photon counts as ``log10(1 + photons)``, or with ``log=False`` images that
    already are log intensities."""
    if len(images) != len(titles):
        raise ValueError(f"got {len(images)} images but {len(titles)} titles")
    if not len(images):
        raise ValueError("contact_sheet needs at least one image")
    if indices is not None and len(indices) != len(images):
        raise ValueError(f"got {len(images)} images but {len(indices)} frame indices")
    shown = [np.log10(1 + np.clip(image, 0, None)) if log else np.asarray(image, float) for image in images]
    vmin = 0.0 if log else min(float(np.nanmin(s)) for s in shown)
    vmax = max(float(np.nanmax(s)) for s in shown)
    vmax = vmax if vmax > vmin else vmin + 1.0
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    fig = _figure(1.45 * columns + 1.0, 1.75 * rows + 0.45)
    axes = fig.subplots(rows, columns, squeeze=False)
    image = None
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= len(images):
            continue
        image = ax.imshow(shown[k], cmap="magma", vmin=vmin, vmax=vmax, interpolation="nearest")
        lines = textwrap.wrap(str(titles[k]), 24) or [" "]
        if indices is not None:  # the frame number before the title, or above it where the line would be long
            number = f"#{int(indices[k])}"
            lines = [f"{number} {lines[0]}", *lines[1:]] if len(number) + len(lines[0]) < 26 else [number, *lines]
        text = "\n".join(lines)
        ax.set_title(text, fontsize=7, pad=2)
    label = "log10(1 + photons)" if log else "log-intensity (0 to 1)"
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=min(0.9, 0.35 + 0.2 * rows), aspect=25, label=label)
    n = _plural(len(images), "pattern")
    fig.suptitle(title or (f"{n}, " + ("photons on a log scale" if log else "log intensity")), fontsize=9)
    return fig


def contact_sheet(
    images: Sequence[np.ndarray],
    titles: Sequence[str],
    path: str | Path,
    *,
    columns: int = 8,
    log: bool = True,
    indices: Sequence[int] | None = None,
    title: str | None = None,
) -> Path:
    """Saves :func:`contact_sheet_figure` as a PNG at ``path``."""
    return save(contact_sheet_figure(images, titles, columns=columns, log=log, indices=indices, title=title), path)


# --- forward fits ---------------------------------------------------------------------------------------


def fit_report_figure(image, fitted, result, curve, *, true_radius_nm: float | None = None, index=None) -> Figure:
    """A forward fit: the pattern (with the true radius when known), the best fit, on one colour scale with
    its colour bar, and the error of the best fit (or, without a truth, its loss) against forward
    simulations."""
    fig = _figure(11.5, 4.0)
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.25]})
    image, fitted = np.asarray(image, float), np.asarray(fitted, float)
    vmin = float(min(np.nanmin(image), np.nanmin(fitted)))
    vmax = float(max(np.nanmax(image), np.nanmax(fitted)))
    vmax = vmax if vmax > vmin else vmin + 1.0
    frame = f"frame {index}" if index is not None else "pattern"
    truth = f"\ntrue R = {true_radius_nm:.1f} nm" if true_radius_nm is not None else "\n(true radius not stored)"
    axes[0].imshow(image, cmap="magma", vmin=vmin, vmax=vmax)
    axes[0].set_title(f"{frame}{truth}", fontsize=9)
    shown = axes[1].imshow(fitted, cmap="magma", vmin=vmin, vmax=vmax)
    off = f"\n{result.radius_nm - true_radius_nm:+.1f} nm from the truth" if true_radius_nm is not None else ""
    axes[1].set_title(f"best fit: R = {result.radius_nm:.1f} nm{off}", fontsize=9)
    for ax in axes[:2]:
        ax.set_xlabel("x (pixels)")
        ax.set_ylabel("y (pixels)")
    fig.colorbar(shown, ax=list(axes[:2]), shrink=0.8, label="log-intensity (0 to 1)")
    ax = axes[2]
    if curve:
        n, e = zip(*curve, strict=True)
        ax.plot(n, e, marker=".", drawstyle="steps-post")
        ax.set_yscale("log")
        ax.set_ylabel("mean relative error of best fit (%)")
        ax.set_title(f"error against the truth: {100 * e[-1]:.2f} % at the end", fontsize=9)
        percent = True
    else:
        n, loss = zip(*[(h[0], h[1]) for h in result.history], strict=True)
        ax.plot(n, loss, marker=".", drawstyle="steps-post")
        ax.set_yscale("log")
        ax.set_ylabel("best loss (mean squared log difference)")
        ax.set_title("loss (no true parameters stored)", fontsize=9)
        percent = False
    ax.set_xscale("log")
    ax.set_xlabel("forward simulations")
    ax.grid(alpha=0.3, which="both")
    _log_ticks(ax, "x")
    _log_ticks(ax, "y", percent=percent)
    fig.suptitle(
        f"forward fit of {frame}: {result.simulations:,} forward simulations in {result.seconds:.1f} s", fontsize=10
    )
    return fig


def fit_report(image, fitted, result, curve, path: str | Path, **options) -> Path:
    """Saves :func:`fit_report_figure` (``true_radius_nm=``, ``index=``) as a PNG at ``path``."""
    return save(fit_report_figure(image, fitted, result, curve, **options), path)


def fit_summary_figure(summary: dict) -> Figure:
    """Seed 001 fig. 4b: the best fit's mean relative error against forward simulations over patterns (median
    and central 90 %), and the network's median error."""
    curve, fit = summary["curve"], summary["forward_fit"]
    patterns = summary["patterns"]
    fig = _figure(6.4, 4.2)
    ax = fig.subplots()
    n = curve["forward_simulations"]
    ax.fill_between(n, curve["q05"], curve["q95"], step="post", alpha=0.3, label="forward fit, central 90 %")
    ax.plot(
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
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("forward simulations per pattern")
    ax.set_ylabel("mean relative error (%)")
    _log_ticks(ax, "x")
    _log_ticks(ax, "y", percent=True)
    title = f"error against cost over {_plural(patterns, 'pattern')}"
    if "network" in summary:
        title += f"\nnetwork {100 * summary['network']['median_mean_relative_error']:.1f} %"
        title += f", forward fit {100 * fit['median_mean_relative_error']:.1f} % (medians)"
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return fig


def fit_summary(summary: dict, path: str | Path) -> Path:
    """Saves :func:`fit_summary_figure` as a PNG at ``path``."""
    return save(fit_summary_figure(summary), path)


# --- training and evaluation ----------------------------------------------------------------------------


def confusion_matrix_figure(counts: np.ndarray, names: Sequence[str]) -> Figure:
    """A confusion matrix (rows: true class, columns: predicted), counts in the cells and on the colour bar."""
    counts = np.asarray(counts)
    total = int(counts.sum())
    fig = _figure(5.0, 4.2)
    ax = fig.subplots()
    shown = ax.imshow(counts, cmap="Blues", vmin=0)
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=8, color="black" if n < counts.max() / 2 else "white")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted particles")
    ax.set_ylabel("true particles")
    fig.colorbar(shown, ax=ax, label="patterns")
    accuracy = np.trace(counts) / total if total else 0.0
    ax.set_title(f"confusion matrix: accuracy {accuracy:.1%} of {_plural(total, 'pattern')}", fontsize=9)
    return fig


def confusion_matrix(counts: np.ndarray, names: Sequence[str], path: str | Path) -> Path:
    """Saves :func:`confusion_matrix_figure` as a PNG at ``path``."""
    return save(confusion_matrix_figure(counts, names), path)


def accuracy_by_figure(groups: dict[str, list[dict]]) -> Figure:
    """A classifier's accuracy by true class and in bins of each physical quantity (``spizoo evaluate``'s
    ``accuracy_by``): one panel each, the patterns of each bar written on it."""
    fig = _figure(3.2 * len(groups), 3.2)
    axes = np.atleast_1d(fig.subplots(1, len(groups), sharey=True))
    for ax, (name, rows) in zip(axes, groups.items(), strict=True):
        if rows and "value" in rows[0]:
            labels = [str(r["value"]) for r in rows]
        else:
            labels = [f"{r['low']:.3g}–{r['high']:.3g}" for r in rows]
        accuracy = [r["accuracy"] for r in rows]
        bars = ax.bar(range(len(rows)), accuracy, color="tab:blue")
        for bar, r in zip(bars, rows, strict=True):
            ax.text(bar.get_x() + bar.get_width() / 2, 0.02, str(r["patterns"]), ha="center", fontsize=7, color="white")
        ax.set_xticks(range(len(rows)), labels, rotation=30 if "value" not in rows[0] else 0, fontsize=7)
        ax.set_xlabel(name.replace("_", " "))
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("accuracy (patterns per bar at its foot)")
    fig.suptitle("accuracy by class and physics: quartile bins of equal counts", fontsize=9)
    return fig


def accuracy_by(groups: dict[str, list[dict]], path: str | Path) -> Path:
    """Saves :func:`accuracy_by_figure` as a PNG at ``path``."""
    return save(accuracy_by_figure(groups), path)


def training_curves_figure(rows: Sequence[dict]) -> Figure:
    """Loss and the other metrics per epoch, training and validation (seed 000 fig. 8), from the rows of
    ``history.csv``. Epochs are counted from 1 (Keras writes them from 0) and drawn as markers, so that one
    epoch shows; the epoch of the lowest validation loss (``best.keras``) is marked."""
    if not rows:
        raise ValueError("no epochs in the training history")
    epochs = _finite(r["epoch"] for r in rows) + 1
    metrics = [k for k in rows[0] if k != "epoch" and not k.startswith("val_")]
    if not metrics:
        raise ValueError(f"the training history holds no metrics, only {sorted(rows[0])}")
    best = None
    if "val_loss" in rows[0]:
        val_loss = _finite(r["val_loss"] for r in rows)
        if np.isfinite(val_loss).any():
            best = int(np.nanargmin(val_loss))
    fig = _figure(max(4.2 * len(metrics), 5.0), 3.6)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, name in zip(axes, metrics, strict=True):
        ax.plot(epochs, _finite(r[name] for r in rows), marker="o", ms=4, label="training")
        if f"val_{name}" in rows[0]:
            ax.plot(epochs, _finite(r[f"val_{name}"] for r in rows), marker="s", ms=4, label="validation")
        if best is not None:
            ax.axvline(epochs[best], color="0.5", ls=":", lw=1, label="best.keras")
        ax.set_xlim(0.5, epochs.max() + 0.5)
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlabel("epoch")
        pretty = name.replace("_", " ")
        ax.set_ylabel(pretty + (" (fraction)" if "accuracy" in name else ""))
        ax.set_title(pretty, fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    title = f"training history, {_plural(len(rows), 'epoch')}"
    if best is not None:
        title += f": lowest validation loss {val_loss[best]:.4g} at epoch {int(epochs[best])} (best.keras)"
    fig.suptitle(title, fontsize=10)
    return fig


def training_curves(rows: Sequence[dict], path: str | Path) -> Path:
    """Saves :func:`training_curves_figure` as a PNG at ``path``."""
    return save(training_curves_figure(rows), path)


def error_histograms_figure(mean: np.ndarray, worst: np.ndarray) -> Figure:
    """Histograms of the per-pattern mean and maximum relative errors (seed 001 fig. 4a), in percent."""
    mean, worst = 100 * np.asarray(mean, float), 100 * np.asarray(worst, float)
    fig = _figure(5.6, 3.8)
    ax = fig.subplots()
    bins = np.linspace(0, max(float(np.max(worst)) if len(worst) else 0.0, 1e-4), 40)
    ax.hist(mean, bins=bins, alpha=0.7, label=f"mean relative error (median {np.median(mean):.2f} %)")
    ax.hist(worst, bins=bins, alpha=0.7, label=f"maximum relative error (median {np.median(worst):.2f} %)")
    ax.set_xlabel("relative error (%)")
    ax.set_ylabel("patterns")
    ax.set_title(f"relative errors of the regressor on {_plural(len(mean), 'pattern')}", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def error_histograms(mean: np.ndarray, worst: np.ndarray, path: str | Path) -> Path:
    """Saves :func:`error_histograms_figure` as a PNG at ``path``."""
    return save(error_histograms_figure(mean, worst), path)


def tsne_figure(embedding: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> Figure:
    """A 2-D t-SNE embedding of features, one colour per true class (seed 000 fig. 14). Its axes have no
    units: only neighbourhoods mean something."""
    fig = _figure(5.6, 4.8)
    ax = fig.subplots()
    for k, name in enumerate(names):
        mine = labels == k
        if mine.any():
            ax.scatter(*embedding[mine].T, s=6, alpha=0.7, label=f"{name} ({mine.sum()})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("t-SNE 1 (no units)")
    ax.set_ylabel("t-SNE 2 (no units)")
    ax.set_title(f"t-SNE of the features of {_plural(len(labels), 'pattern')}, by true particle count", fontsize=9)
    ax.legend(fontsize=7, markerscale=2, title="true particles", title_fontsize=7)
    return fig


def tsne(embedding: np.ndarray, labels: np.ndarray, names: Sequence[str], path: str | Path) -> Path:
    """Saves :func:`tsne_figure` as a PNG at ``path``."""
    return save(tsne_figure(embedding, labels, names), path)


# --- hit rate -------------------------------------------------------------------------------------------


def default_window(frames: int) -> int:
    """The hit-rate figure's running window for ``frames`` frames: 1/20 of them, within 20 to 500."""
    return int(np.clip(frames // 20, MIN_FRAMES, MAX_WINDOW))


def running_fraction(values: np.ndarray, window: int, min_frames: int = MIN_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """(frame index, fraction of true ``values`` over the last ``window`` frames up to it): over fewer
    frames at the start, but never fewer than ``min_frames`` (or ``window``, if smaller)."""
    values = np.asarray(values, float)
    if window < 1:
        raise ValueError(f"window must be >= 1 frame, got {window}")
    at = np.arange(len(values))
    sums = np.concatenate([[0.0], np.cumsum(values)])
    start = np.maximum(0, at - window + 1)
    fraction = (sums[at + 1] - sums[start]) / (at + 1 - start)
    keep = at + 1 >= min(min_frames, window)
    return at[keep], fraction[keep]


def hit_rate_figure(
    classes: np.ndarray,
    single_hit: np.ndarray,
    *,
    window: int | None = None,
    times: np.ndarray | None = None,
    min_frames: int = MIN_FRAMES,
) -> Figure:
    """The hit rate (frames with >= 1 particle) and single-hit fraction as running fractions over the last
    ``window`` frames (default :func:`default_window`), never over fewer than ``min_frames``; the title has
    both over all frames and over the last window.

    Against the frame number, or, with ``times`` (POSIX seconds per frame, NaN where unknown, as the monitor
    gives them), against local wall-clock time; frames without a time count in the fractions but are not
    drawn.
    """
    classes = np.asarray(classes)
    single = np.asarray(single_hit, float)
    n = len(classes)
    if len(single) != n or (times is not None and len(times) != n):
        got = f" and {len(times)} times" if times is not None else ""
        raise ValueError(f"got {n} classes but {len(single)} single-hit flags{got}")
    window = window or default_window(n)
    hits = (classes >= 1).astype(float)
    fig = _figure(7.5, 3.8)
    ax = fig.subplots()
    timed = times is not None and bool(np.isfinite(np.asarray(times, float)).any())
    drawn = 0
    for values, label, style in ((hits, "hit rate (>= 1 particle)", "-"), (single, "single hits", "-")):
        at, fraction = running_fraction(values, window, min_frames)
        if timed:
            t = np.asarray(times, float)[at]
            keep = np.isfinite(t)
            keep &= np.r_[t[1:] != t[:-1], True]  # frames classified together: the value after the last of them
            x = mdates.date2num([datetime.datetime.fromtimestamp(s) for s in t[keep]])
            at, fraction = x, fraction[keep]
        ax.plot(at, fraction, style, marker="." if len(at) <= 60 else None, label=label)
        drawn = max(drawn, len(at))
    if timed:
        ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=7))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        untimed = int((~np.isfinite(np.asarray(times, float))).sum())
        earlier = f"; {_plural(untimed, 'frame')} from before the restart not drawn" if untimed else ""
        ax.set_xlabel(f"local time (HH:MM:SS){earlier}")
    else:
        ax.set_xlabel("frame (all files in order)")
        ax.set_xlim(0, max(n - 1, 1))
    shown_min = min(min_frames, window)
    if not drawn:
        ax.text(
            0.5,
            0.5,
            f"{_plural(n, 'frame')} so far: the running fraction starts at {shown_min} frames",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=9,
        )
    ax.set_ylabel(f"fraction of the last {window} frames")
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_locator(ticker.MultipleLocator(0.2))
    ax.grid(alpha=0.3)
    title = f"hit rate {hits.mean():.1%}, single hits {single.mean():.1%} of all {_plural(n, 'frame')}" if n else ""
    if n > window:
        recent = f"hit rate {hits[-window:].mean():.1%}, single hits {single[-window:].mean():.1%}"
        title += f"\nlast {window} frames: {recent}"
    ax.set_title(title or "no frames yet", fontsize=9)
    fig.legend(loc="outside right upper", fontsize=8)
    return fig


def hit_rate(
    classes: np.ndarray,
    single_hit: np.ndarray,
    path: str | Path,
    *,
    window: int | None = None,
    times: np.ndarray | None = None,
    min_frames: int = MIN_FRAMES,
) -> Path:
    """Saves :func:`hit_rate_figure` as a PNG at ``path``."""
    return save(hit_rate_figure(classes, single_hit, window=window, times=times, min_frames=min_frames), path)
