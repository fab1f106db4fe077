import numpy as np
import pytest

from spizoo.data.frame_check import FrameChecker, FrameGeometry, FrameMismatchError, TrainedOn

PHOTONS = TrainedOn(
    image_shape=(64, 64),
    kind="spi",
    values=(0.0, 50_000.0, True),
    pixel_angle_rad=(1e-3, 2e-3),
    photon_energy_eV=(1200.0, 1800.0),
)
LOG_IMAGES = TrainedOn(image_shape=(64, 64), kind="msft", values=(0.0, 1.0, False), pixel_angle_rad=(0.036, 0.036))


def counts(shape=(2, 64, 64), top=300, seed=0):
    frames = np.random.default_rng(seed).poisson(0.5, shape).astype(np.float32)
    frames[:, 32, 32] = top
    return frames


def test_frames_like_the_training_frames_pass():
    assert PHOTONS.problems(counts(), FrameGeometry(0.5, 700e-6, 1500.0)) == []
    # a larger detector of the same pixels: the centre crop sees the same q range
    assert PHOTONS.problems(counts((1, 128, 128)), FrameGeometry(0.5, 700e-6, None)) == []
    assert LOG_IMAGES.problems(np.random.default_rng(0).random((2, 64, 64)), None) == []


def test_another_pixel_angle_is_named_with_both_values():
    (problem,) = PHOTONS.problems(counts(), FrameGeometry(0.5, 75e-6, 1500.0))
    assert "75 µm at 0.5 m" in problem and "0.15 mrad" in problem and "1–2 mrad" in problem
    assert "6.7x larger" in problem  # 1 mrad / 0.15 mrad
    (problem,) = PHOTONS.problems(counts(), FrameGeometry(0.1, 700e-6, None))
    assert "3.5x smaller" in problem
    assert PHOTONS.problems(counts(), FrameGeometry(0.5, 1.04e-3, None)) == []  # within the 5 % slack


def test_another_photon_energy_is_named():
    (problem,) = PHOTONS.problems(counts(), FrameGeometry(0.5, 700e-6, 9300.0))
    assert "photon energy 9,300 eV" in problem and "1,200–1,800 eV" in problem


def test_unknown_pixels_of_another_shape_are_said():
    (problem,) = PHOTONS.problems(counts((1, 128, 128)), FrameGeometry(None, None, None))
    assert "128x128 pixels of unknown size" in problem and "64x64" in problem


def test_value_scales():
    log_image = np.random.default_rng(0).random((2, 64, 64)).astype(np.float32)
    (problem,) = PHOTONS.problems(log_image)
    assert "with fractions" in problem and "photon counts" in problem
    (problem,) = LOG_IMAGES.problems(counts())
    assert "values up to 300" in problem and "[0, 1]" in problem
    (problem,) = PHOTONS.problems(counts(top=9e6) * 9.3)  # ADU or keV instead of photons
    assert "another unit" in problem and "1,674x" in problem
    assert PHOTONS.problems(np.zeros((2, 64, 64), np.float32)) == []  # empty frames are photon counts too
    nan = counts()
    nan[0, :4] = np.nan
    assert PHOTONS.problems(nan) == []


def test_trained_on_reads_back_its_json_and_old_infos():
    assert TrainedOn.from_info(PHOTONS.as_dict()) == PHOTONS
    old = TrainedOn.from_info({"image_shape": [32, 32], "kind": "spi", "stats": {"count": 3}})
    assert old.values is None and old.pixel_angle_rad is None
    assert old.problems(np.full((1, 32, 32), 0.5, np.float32), FrameGeometry(1.0, 1e-6, 1.0)) == []


def test_checker_warns_once_per_source_and_strict_refuses_again():
    lines = []
    checker = FrameChecker(PHOTONS, warn=lines.append)
    wrong = FrameGeometry(0.5, 75e-6, None)
    for _ in range(3):
        checker.check("a.cxi", counts(), wrong)
    checker.check("b.cxi", counts(), lambda: FrameGeometry(0.5, 700e-6, None))
    assert len(lines) == 1 and lines[0].startswith("a.cxi: pixels of 75 µm") and "--strict" in lines[0]
    assert checker.verdict().startswith("1 of 2 sources unlike")
    strict = FrameChecker(PHOTONS, strict=True, warn=lines.append)
    for _ in range(2):  # a monitor retries a refused file: refused again, never classified
        with pytest.raises(FrameMismatchError, match=r"a\.cxi: pixels of 75 µm.*\(--strict\)"):
            strict.check("a.cxi", counts(), wrong)
    assert len(lines) == 1
    assert FrameChecker(None).verdict().startswith("not checked")
