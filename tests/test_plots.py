"""Every figure explains itself: a title, units on the axes, a colour bar where colour carries a value, text
that neither overlaps nor leaves the figure; and it shows the data it was given (issue 18)."""

import csv
import datetime
import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib import dates as mdates

from spizoo import plots
from spizoo.core.labels import CLASS_NAMES
from spizoo.sim import spi


def _renderer(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _colorbars(fig):
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def _tick_labels(ax, which):
    """The labelled ticks inside the axis' view limits."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    ticks = axis.get_major_ticks() + axis.get_minor_ticks()
    return [t.label1 for t in ticks if lo <= t.get_loc() <= hi and t.label1.get_visible() and t.label1.get_text()]


def _overlapping(texts, renderer):
    boxes = [t.get_window_extent(renderer) for t in texts]
    return [(texts[i].get_text(), texts[j].get_text()) for i, j in itertools.combinations(range(len(texts)), 2)
            if boxes[i].overlaps(boxes[j])]  # fmt: skip


def _inside_figure(fig, texts, renderer):
    """The texts that stick out of the figure (clipped in the PNG)."""
    frame = fig.bbox
    out = []
    for t in texts:
        if not t.get_text() or not t.get_visible():
            continue
        box = t.get_window_extent(renderer)
        if box.x0 < frame.x0 - 1 or box.y0 < frame.y0 - 1 or box.x1 > frame.x1 + 1 or box.y1 > frame.y1 + 1:
            out.append(t.get_text())
    return out


def _all_text(fig):
    texts = [fig._suptitle] if fig._suptitle else []
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
    return texts


def _saved(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(path.parent.glob("*.partial"))


# --- contact sheets -------------------------------------------------------------------------------------


def test_contact_sheet_of_simulated_patterns_has_a_colour_bar_frame_numbers_and_titles_clear_of_the_row_above(
    quick_cfg, tmp_path
):
    patterns = [spi.simulate_pattern(quick_cfg, seed=0, index=i) for i in range(13)]
    images = [p.image for p in patterns]
    titles = [f"true {CLASS_NAMES[p.label]} → {CLASS_NAMES[(p.label + 1) % 5]} · {p.model.shape}" for p in patterns]
    indices = [10 * i for i in range(13)]
    fig = plots.contact_sheet_figure(images, titles, indices=indices)
    renderer = _renderer(fig)

    (bar,) = _colorbars(fig)
    assert bar.get_ylabel() == "log10(1 + photons)"
    tiles = [ax for ax in fig.axes if ax.images]
    assert len(tiles) == 13
    shown_max = max(float(np.log10(1 + np.clip(im, 0, None)).max()) for im in images)
    for ax in tiles:  # one colour scale, the one on the bar
        assert ax.images[0].get_clim() == pytest.approx((0.0, shown_max))
    assert [ax.get_title().split()[0] for ax in tiles] == [f"#{i}" for i in indices]
    assert "13 patterns" in fig._suptitle.get_text()

    rows = {}
    for ax in tiles:
        rows.setdefault(round(ax.get_position().y0, 3), []).append(ax)
    top, bottom = (rows[y] for y in sorted(rows, reverse=True))
    for ax in bottom:  # a title of the second row never reaches into an image of the first
        title = ax.title.get_window_extent(renderer)
        assert not any(title.overlaps(above.get_window_extent(renderer)) for above in top)
    assert not _overlapping([ax.title for ax in top], renderer)
    assert not _inside_figure(fig, _all_text(fig), renderer)

    path = plots.contact_sheet(images, titles, tmp_path / "sheet.png", indices=indices)
    assert path == tmp_path / "sheet.png"
    _saved(path)


def test_contact_sheet_of_log_images_labels_its_scale_and_checks_its_inputs(tmp_path):
    images = [np.linspace(0, 1, 64).reshape(8, 8), np.full((8, 8), 0.5)]
    fig = plots.contact_sheet_figure(images, ["R = 40 nm", "R = 90 nm"], log=False)
    (bar,) = _colorbars(fig)
    assert "log-intensity" in bar.get_ylabel()
    assert [ax.images[0].get_clim() for ax in fig.axes if ax.images] == [(0.0, 1.0), (0.0, 1.0)]
    with pytest.raises(ValueError, match="2 images but 1 titles"):
        plots.contact_sheet_figure(images, ["one"])
    with pytest.raises(ValueError, match="2 images but 3 frame indices"):
        plots.contact_sheet_figure(images, ["a", "b"], indices=[0, 1, 2])


# --- forward fits ---------------------------------------------------------------------------------------


def _fit_result():
    return SimpleNamespace(radius_nm=84.2, simulations=1200, seconds=33.2, history=[(50, 0.2), (400, 0.05)])


def test_fit_report_shows_the_true_radius_and_keeps_every_title_inside(tmp_path):
    rng = np.random.default_rng(0)
    image, fitted = rng.random((32, 32)), rng.random((32, 32))
    curve = [(50, 0.3), (120, 0.1), (400, 0.05), (1200, 0.04)]
    fig = plots.fit_report_figure(image, fitted, _fit_result(), curve, true_radius_nm=85.0, index=3)
    renderer = _renderer(fig)
    pattern, best, errors = (ax for ax in fig.axes if ax.get_label() != "<colorbar>")
    assert "frame 3" in pattern.get_title() and "true R = 85.0 nm" in pattern.get_title()
    assert "R = 84.2 nm" in best.get_title() and "-0.8 nm" in best.get_title()
    assert pattern.get_xlabel() == best.get_xlabel() == "x (pixels)"
    (bar,) = _colorbars(fig)
    assert "log-intensity" in bar.get_ylabel()
    assert pattern.images[0].get_clim() == best.images[0].get_clim()
    n, e = errors.lines[0].get_data()
    assert list(n) == [50, 120, 400, 1200] and list(e) == pytest.approx([0.3, 0.1, 0.05, 0.04])
    assert errors.get_xlabel() == "forward simulations" and "(%)" in errors.get_ylabel()
    assert "4.00 %" in errors.get_title()
    assert [t.get_text() for t in _tick_labels(errors, "y")] == ["3", "5", "7", "10", "20", "30", "50"]
    assert not _inside_figure(fig, _all_text(fig), renderer)
    assert not _overlapping(_tick_labels(errors, "x"), renderer)
    _saved(plots.fit_report(image, fitted, _fit_result(), curve, tmp_path / "fit_3.png", true_radius_nm=85.0))


def test_fit_report_without_truth_says_so_and_draws_the_loss():
    fig = plots.fit_report_figure(np.zeros((8, 8)), np.ones((8, 8)), _fit_result(), None)
    pattern, _, loss = (ax for ax in fig.axes if ax.get_label() != "<colorbar>")
    assert "true radius not stored" in pattern.get_title()
    assert "loss" in loss.get_ylabel()
    assert list(loss.lines[0].get_xdata()) == [50, 400]


@pytest.mark.parametrize(
    "low, high, first_error, last_error",
    [(20, 600, 0.4, 0.05), (5, 60, 0.6, 0.3), (10, 2500, 0.5, 0.02), (100, 800, 0.2, 0.15)],
)
def test_fit_summary_tick_labels_never_overlap(low, high, first_error, last_error, tmp_path):
    """20 to 600 simulations overlapped 2×10¹, 3×10¹, 4×10¹ … with matplotlib's default log labels."""
    n = np.unique(np.geomspace(low, high, 60).astype(int))
    median = np.geomspace(first_error, last_error, len(n))
    summary = {
        "patterns": 3,
        "curve": {
            "forward_simulations": n.tolist(),
            "median": median.tolist(),
            "q05": (0.7 * median).tolist(),
            "q95": (1.3 * median).tolist(),
        },
        "forward_fit": {"median_seconds_per_pattern": 20.0, "median_mean_relative_error": float(median[-1])},
        "network": {"median_mean_relative_error": 0.12, "median_seconds_per_pattern": 0.003},
    }
    fig = plots.fit_summary_figure(summary)
    renderer = _renderer(fig)
    (ax,) = fig.axes
    for which in "xy":
        labels = _tick_labels(ax, which)
        assert len(labels) >= 2, which
        assert not _overlapping(labels, renderer), which
        assert all("times" not in t.get_text() and "^" not in t.get_text() for t in labels)  # plain numbers
    assert "3 patterns" in ax.get_title() and "network 12.0 %" in ax.get_title()
    assert ax.get_xlabel() == "forward simulations per pattern" and ax.get_ylabel() == "mean relative error (%)"
    assert any("network" in t.get_text() for t in ax.get_legend().get_texts())
    assert list(ax.lines[0].get_xdata()) == n.tolist()
    assert not _inside_figure(fig, _all_text(fig), renderer)
    _saved(plots.fit_summary(summary, tmp_path / "error_vs_simulations.png"))


# --- training and evaluation ----------------------------------------------------------------------------


def test_confusion_matrix_has_a_colour_bar_and_the_accuracy(tmp_path):
    counts = np.array([[5, 1, 0, 0, 0], [2, 7, 1, 0, 0], [0, 1, 3, 1, 0], [0, 0, 1, 2, 1], [0, 0, 0, 1, 4]])
    fig = plots.confusion_matrix_figure(counts, CLASS_NAMES)
    (bar,) = _colorbars(fig)
    assert bar.get_ylabel() == "patterns"
    (ax,) = [a for a in fig.axes if a is not bar]
    assert f"accuracy {21 / 30:.1%} of 30 patterns" in ax.get_title()
    assert sorted(int(t.get_text()) for t in ax.texts) == sorted(counts.ravel().tolist())
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted particles", "true particles")
    _saved(plots.confusion_matrix(counts, CLASS_NAMES, tmp_path / "confusion_matrix.png"))


def _history(epochs):
    return [
        {
            "epoch": str(i),
            "accuracy": str(0.4 + i / 20),
            "loss": str(1.2 / (i + 1)),
            "val_accuracy": str(0.35 + i / 25),
            "val_loss": str([1.3, 0.9, 0.7, 0.8, 0.75][i % 5]),
        }
        for i in range(epochs)
    ]


def _integer_ticks(ax):
    lo, hi = ax.get_xlim()
    return [t for t in ax.get_xticks() if lo <= t <= hi]


def test_training_curves_show_a_single_epoch_as_epoch_1():
    fig = plots.training_curves_figure(_history(1))
    for ax in fig.axes:
        training = ax.lines[0]
        assert list(training.get_xdata()) == [1]
        assert training.get_marker() not in (None, "None", "", " ")  # one point, drawn
        assert _integer_ticks(ax) == [1]
        assert ax.get_xlabel() == "epoch" and ax.get_title() in ("accuracy", "loss")
    assert "1 epoch" in fig._suptitle.get_text()


def test_training_curves_count_epochs_from_1_on_integer_ticks_and_mark_the_best(tmp_path):
    fig = plots.training_curves_figure(_history(7))
    renderer = _renderer(fig)
    for ax in fig.axes:
        assert list(ax.lines[0].get_xdata()) == [1, 2, 3, 4, 5, 6, 7]
        ticks = _integer_ticks(ax)
        assert ticks and all(t == int(t) and t >= 1 for t in ticks)
        assert [line.get_xdata()[0] for line in ax.lines if line.get_label() == "best.keras"] == [3]
    loss = next(ax for ax in fig.axes if ax.get_title() == "loss")
    assert list(loss.lines[1].get_ydata()) == pytest.approx([1.3, 0.9, 0.7, 0.8, 0.75, 1.3, 0.9])
    assert "lowest validation loss 0.7 at epoch 3" in fig._suptitle.get_text()
    assert not _inside_figure(fig, _all_text(fig), renderer)
    _saved(plots.training_curves(_history(7), tmp_path / "training_curves.png"))
    with pytest.raises(ValueError, match="no epochs"):
        plots.training_curves_figure([])


def test_training_curves_of_a_real_one_epoch_run(runs, tmp_path):
    rows = list(csv.DictReader((runs["hits"][0] / "history.csv").open()))
    assert len(rows) == 1  # the fixture trains one epoch: the case that drew an empty figure
    fig = plots.training_curves_figure(rows)
    loss = next(ax for ax in fig.axes if ax.get_title() == "loss")
    assert list(loss.lines[0].get_xdata()) == [1]
    assert loss.lines[0].get_ydata()[0] == pytest.approx(float(rows[0]["loss"]))
    assert loss.lines[0].get_marker() not in (None, "None", "", " ")
    _saved(plots.training_curves(rows, tmp_path / "training_curves.png"))


def test_error_histograms_are_in_percent_with_a_title(tmp_path):
    rng = np.random.default_rng(1)
    mean, worst = rng.uniform(0, 0.1, 50), rng.uniform(0.1, 0.3, 50)
    fig = plots.error_histograms_figure(mean, worst)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "relative error (%)" and ax.get_ylabel() == "patterns"
    assert "50 patterns" in ax.get_title()
    assert sum(p.get_height() for p in ax.patches) == 100  # both histograms, every pattern
    assert max(p.get_x() + p.get_width() for p in ax.patches) == pytest.approx(100 * worst.max())
    _saved(plots.error_histograms(mean, worst, tmp_path / "relative_errors.png"))


def test_tsne_says_its_axes_have_no_units(tmp_path):
    rng = np.random.default_rng(2)
    labels = np.array([0, 1, 1, 2, 4, 4, 4])
    fig = plots.tsne_figure(rng.normal(size=(7, 2)), labels, CLASS_NAMES)
    (ax,) = fig.axes
    assert "no units" in ax.get_xlabel() and "7 patterns" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["none (1)", "single (2)", "double (1)", "4+ (3)"]
    _saved(plots.tsne(rng.normal(size=(7, 2)), labels, CLASS_NAMES, tmp_path / "tsne.png"))


# --- hit rate -------------------------------------------------------------------------------------------


def _running(values, window, at):
    return np.mean(values[max(0, at - window + 1) : at + 1])


def test_hit_rate_never_shows_a_fraction_over_fewer_than_the_minimum_of_frames(tmp_path):
    rng = np.random.default_rng(3)
    classes = rng.integers(0, 5, 1000)
    single = rng.random(1000) < 0.3
    fig = plots.hit_rate_figure(classes, single)
    (ax,) = fig.axes
    window = plots.default_window(1000)
    assert window == 50
    hits_line, single_line = ax.lines
    x, y = hits_line.get_data()
    assert x[0] == plots.MIN_FRAMES - 1  # the first point is a fraction over 20 frames, not over 1
    for at in (19, 30, 49, 50, 999):
        k = int(np.flatnonzero(x == at)[0])
        assert y[k] == pytest.approx(_running(classes >= 1, window, at))
        assert single_line.get_ydata()[k] == pytest.approx(_running(single, window, at))
    assert ax.get_ylim() == pytest.approx((0, 1.05))
    assert f"hit rate {(classes >= 1).mean():.1%}" in ax.get_title()
    assert f"single hits {single.mean():.1%}" in ax.get_title() and "1,000 frames" in ax.get_title()
    assert "last 50 frames" in ax.get_ylabel()
    assert ax.get_xlabel() == "frame (all files in order)"
    _saved(plots.hit_rate(classes, single, tmp_path / "hits.png"))


def test_hit_rate_of_all_hits_stays_below_the_top_edge():
    fig = plots.hit_rate_figure(np.ones(200, int), np.ones(200, bool), window=10)
    (ax,) = fig.axes
    assert max(ax.lines[0].get_ydata()) == 1.0 < ax.get_ylim()[1]
    assert ax.lines[0].get_xdata()[0] == 9  # a window smaller than the minimum is the user's choice


def test_hit_rate_of_a_few_frames_says_when_the_curve_starts():
    fig = plots.hit_rate_figure(np.array([1, 0, 2, 1, 1, 0]), np.array([1, 0, 0, 1, 1, 0], bool))
    (ax,) = fig.axes
    assert all(len(line.get_xdata()) == 0 for line in ax.lines)
    assert "starts at 20 frames" in ax.texts[0].get_text()
    assert "hit rate 66.7%" in ax.get_title() and "of all 6 frames" in ax.get_title()


def test_hit_rate_against_wall_clock_time_from_the_monitor():
    classes = np.array([1, 0] * 60)
    single = classes == 1
    start = datetime.datetime(2026, 3, 1, 12, 0, 0).timestamp()
    times = start + 2.0 * (np.arange(120) // 30)  # four scans of 30 frames, 2 s apart
    times[:30] = np.nan  # classified before a restart
    fig = plots.hit_rate_figure(classes, single, window=500, times=times)
    (ax,) = fig.axes
    x, y = ax.lines[0].get_data()
    expected = [datetime.datetime(2026, 3, 1, 12, 0, s) for s in (2, 4, 6)]  # the last frame of each scan
    assert list(x) == pytest.approx(list(mdates.date2num(expected)))
    assert list(y) == pytest.approx([0.5, 0.5, 0.5])
    assert ax.get_xlabel().startswith("local time (HH:MM:SS)")
    assert "30 frames from before the restart" in ax.get_xlabel()
    assert ax.xaxis.get_major_formatter()(mdates.date2num(expected[0])) == "12:00:02"
    with pytest.raises(ValueError, match="120 classes but 120 single-hit flags and 3 times"):
        plots.hit_rate_figure(classes, single, times=times[:3])
