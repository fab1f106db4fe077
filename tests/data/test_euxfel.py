"""European XFEL runs made by EXtra-data's own mock-run writer (files no spizoo code wrote)."""

import h5py
import numpy as np
import pytest
from extra_data.tests import make_examples
from mock_runs import euxfel_module_file as _module_file  # tests/ is on the path

from spizoo.core import masks
from spizoo.data.euxfel import RunFrames, is_run_directory
from spizoo.data.frames import open_frames
from spizoo.sim.geometry import Geometry, View

DET = "SPB_DET_AGIPD1M-1"


@pytest.fixture(scope="module")
def view():
    return View(Geometry.named("AGIPD-1M"), (160, 160), 8)  # the whole detector


def _stacked(run, frames):
    """Module-stacked frames read straight from the module files with h5py, and their mask."""
    data, mask = [], []
    for m in range(16):
        name, group = _module_file(run, m)
        with h5py.File(name) as f:
            data.append(f[f"{group}/data"][frames])
            mask.append(f[f"{group}/mask"][frames])
    return np.stack(data, axis=1), np.stack(mask, axis=1)


def test_a_run_reads_as_its_views_with_train_pulse_and_cell_ids(euxfel_run, view):
    run = euxfel_run
    assert is_run_directory(run) and not is_run_directory(run.parent)
    frames = open_frames(run, view=view, trains=slice(0, 3))
    assert isinstance(frames, RunFrames) and len(frames) == 3 * 64 and frames.frame_shape == (160, 160)
    data, mask = _stacked(run, slice(60, 70))
    np.testing.assert_array_equal(frames.read(60, 70), view(data, mask))
    assert frames.read(0, 1).sum() < view(_stacked(run, slice(0, 1))[0]).sum()  # the flagged pixels count 0
    ids = frames.frame_ids(60, 70)
    assert ids["train_id"].tolist() == [10000] * 4 + [10001] * 6
    assert ids["pulse_id"].tolist() == [60, 61, 62, 63, 0, 1, 2, 3, 4, 5]
    assert ids["cell_id"].tolist() == ids["pulse_id"].tolist()
    m = frames.mask(0, 1)
    assert np.all(m[0, 3, :100] == masks.BAD) and not m[0, 3, 100:].any() and not m[0, 4].any()
    batches = list(frames.batches(100))  # whole trains, never one read twice
    assert [(first, len(b)) for first, b in batches] == [(0, 64), (64, 64), (128, 64)]
    assert [(first, len(b)) for first, b in frames.batches(128)] == [(0, 128), (128, 64)]


def test_run_errors_name_what_the_run_has(euxfel_run, view, tmp_path):
    run = euxfel_run
    with pytest.raises(ValueError, match=r"no source matches 'SQS_DET\*'; its detector sources are: SPB_DET_AGIPD"):
        RunFrames(run, source="SQS_DET*", view=view)
    with pytest.raises(ValueError, match=r"no multi-module detector 'SPB_DET_AGIPD1M-2' .* it has: SPB_DET_AGIPD1M-1"):
        RunFrames(run, source="SPB_DET_AGIPD1M-2", view=view)
    assert len(RunFrames(run, source=f"{DET}/DET/*CH0:xtdf", view=view, trains=slice(5, 7))) == 128
    with pytest.raises(ValueError, match=r"has 16 modules of 512x128 pixels; the AGIPD-500k geometry has 8 of"):
        RunFrames(run, view=View(Geometry.named("AGIPD-500k"), bin=8))
    with pytest.raises(ValueError, match=r"give the detector geometry of SPB_DET_AGIPD1M-1 \(--geometry"):
        RunFrames(run, view=lambda path: None)
    partial = tmp_path / "partial"
    partial.mkdir()
    make_examples.make_spb_run(str(partial), raw=False)
    _module_file(partial, 5)[0].unlink()
    with pytest.raises(ValueError, match=r"has 15 of its 16 modules; missing modules \[5\]"):
        RunFrames(partial, view=view)
    raw = tmp_path / "raw"
    raw.mkdir()
    make_examples.make_spb_run(str(raw))
    with pytest.raises(ValueError, match="holds raw data only .* classify calibrated"):
        RunFrames(raw, view=view)
