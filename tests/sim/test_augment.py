import numpy as np
import pytest

from spizoo.sim import augment as A


@pytest.fixture()
def image():
    y, x = np.mgrid[:64, :64]
    r = np.hypot(y - 31.5, x - 31.5)
    return (0.45 + 0.5 * np.cos(r / 3) * np.exp(-r / 40) + 1e-3 * x + 2e-4 * y).astype(np.float32)  # no mirror symmetry


@pytest.mark.parametrize("name", list(A.FILTERS))
def test_every_filter_is_pure_shape_and_range_preserving_and_seeded(image, name):
    before = image.copy()
    out = A.FILTERS[name](image, 3)
    np.testing.assert_array_equal(image, before)  # the input is not touched
    assert out.shape == image.shape and out.dtype == image.dtype
    assert out.min() >= image.min() - 1e-6 and out.max() <= image.max() + 1e-6
    np.testing.assert_array_equal(out, A.FILTERS[name](image, 3))
    if name != "identity":
        assert any(not np.array_equal(A.FILTERS[name](image, s), image) for s in range(5))


def test_hole_crop_and_shift_do_what_they_say(image):
    lo = image.min()
    holed = A.hole(image, 0, min_px=5, max_px=5)
    assert (holed[29:35, 29:35] == lo).all() and (holed[0] == image[0]).all()
    cropped = A.crop(image, 0, min_fraction=0.5)
    assert cropped[0, 0] == lo and cropped[32, 32] == image[32, 32]
    rng = np.random.default_rng(7)
    dy, dx = rng.integers(-8, 9, size=2)
    shifted = A.shift(image, 7, max_px=8)
    np.testing.assert_array_equal(shifted[20 + dy, 20 + dx], image[20, 20])


def test_noise_blur_salt_pepper_and_sensitivity_change_the_statistics(image):
    assert A.blur(image, 1, max_radius_px=5).var() < image.var()
    sp = A.salt_pepper(image, 2, max_fraction=0.2)
    changed = sp != image
    assert changed.mean() > 0.01 and np.isin(sp[changed], [image.min(), image.max()]).all()
    assert A.sensitivity(image, 3).sum() < image.sum()
    noisy = A.uniform_noise(image, 4, max_level=0.5)
    assert np.abs(noisy - image).mean() > 0.01


def test_flip_gives_the_four_mirror_images(image):
    seen = {A.flip(image, s).tobytes() for s in range(20)}
    assert len(seen) == 4  # identity, horizontal, vertical, both


def test_policy_makes_the_paper_eleven_fold_expansion(image):
    out = A.AugmentPolicy().apply(image, 0)
    assert [name for name, _ in out] == list(A.PAPER_FILTERS) and len(out) == 11
    np.testing.assert_array_equal(out[0][1], image)
    assert all(o.shape == image.shape for _, o in out)


def test_policy_cycles_filters_passes_params_and_rejects_unknown(image):
    policy = A.AugmentPolicy(filters=("hole",), copies=3, params={"hole": {"min_px": 10, "max_px": 10}})
    out = policy.apply(image, 0)
    assert len(out) == 3 and all((img[27:37, 27:37] == image.min()).all() for _, img in out)
    with pytest.raises(ValueError, match="unknown augmentation filter 'smudge'"):
        A.AugmentPolicy(filters=("smudge",))
    with pytest.raises(ValueError, match="copies must be >= 1"):
        A.AugmentPolicy(copies=0)
    with pytest.raises(ValueError, match="pick must be"):
        A.AugmentPolicy(pick="shuffle")
    with pytest.raises(ValueError, match="scale must be"):
        A.AugmentPolicy(scale="ln")


def test_random_pick_draws_every_filter_and_is_seeded(image):
    policy = A.AugmentPolicy(copies=1, pick="random")
    names = [policy.apply(image, seed)[0][0] for seed in range(200)]
    assert set(names) == set(A.PAPER_FILTERS)  # 200 draws of 11: each appears (p(miss) < 1e-7)
    assert [policy.apply(image, seed)[0][0] for seed in range(200)] == names


def test_log10_scale_measures_artefacts_in_decades_of_photon_counts():
    counts = np.zeros((64, 64), np.float32)
    counts[32, 32], counts[0, 0] = 1e4, 1.0  # one bright speckle, one single photon
    # Noise of at most 1% of the range: linear, up to ±100 photons on every dark pixel; in log10, at most
    # ±0.04 decades, so the single photon (0.30 decades) stays within 1 ± 0.1 photons.
    params = {"uniform_noise": {"max_level": 0.01}}
    for seed in range(5):
        linear = A.AugmentPolicy(filters=("uniform_noise",), copies=1, params=params).apply(counts, seed)[0][1]
        log = A.AugmentPolicy(filters=("uniform_noise",), copies=1, params=params, scale="log10")
        logged = log.apply(counts, seed)[0][1]
        assert logged.dtype == counts.dtype and logged.min() >= 0 and logged.max() <= 1e4 * (1 + 1e-5)
        assert abs(logged[0, 0] - 1.0) < 0.1
        assert np.abs(logged - counts).mean() < 0.2 < 1 < np.abs(linear - counts).mean()  # photons per pixel
    identity = A.AugmentPolicy(filters=("identity",), copies=1, scale="log10").apply(counts, 0)[0][1]
    np.testing.assert_array_equal(identity, counts)
    with pytest.raises(ValueError, match="non-negative"):
        A.AugmentPolicy(scale="log10").apply(counts - 2, 0)
