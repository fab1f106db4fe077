import dataclasses
import hashlib
import subprocess
import sys

import numpy as np
import pytest

from spizoo.sim import spi
from spizoo.sim.amplitude import Amplitude
from spizoo.sim.quaternion import random_quaternion
from spizoo.sim.shapes import particle


def digest(patterns):
    h = hashlib.sha256()
    for p in patterns:
        h.update(p.image.tobytes())
        h.update(p.quaternions.tobytes())
    return h.hexdigest()


def test_a_pattern_is_the_same_alone_in_a_batch_in_any_order(quick_cfg):
    batch = spi.simulate_model(quick_cfg, 5, 2)
    alone = spi.simulate_pattern(quick_cfg, 5, 2 * quick_cfg.patterns_per_model + 6)
    np.testing.assert_array_equal(alone.image, batch[6].image)
    reordered = spi.simulate_model(quick_cfg, 5, 2, shots=[6, 1])
    np.testing.assert_array_equal(reordered[0].image, batch[6].image)
    np.testing.assert_array_equal(reordered[1].image, batch[1].image)
    assert not np.array_equal(batch[1].image, spi.simulate_model(quick_cfg, 6, 2)[1].image)  # the seed matters


def test_patterns_are_byte_identical_in_another_process(quick_cfg):
    code = (
        "import hashlib;from spizoo.experiment import load;from spizoo.sim import spi;"
        "c=load('configs/quickstart.yaml',['sim.patterns_per_model=8','sim.detector.pixels=[32,32]']).sim;"
        "h=hashlib.sha256();[(h.update(p.image.tobytes()),h.update(p.quaternions.tobytes())) "
        "for p in spi.simulate(c,3,12)];print(h.hexdigest())"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == digest(spi.simulate(quick_cfg, 3, 12))


def test_simulate_iterates_patterns_across_models_in_order(quick_cfg):
    got = list(spi.simulate(quick_cfg, 0, 5, start=6))
    assert [(p.model.model_index, p.shot) for p in got] == [(0, 6), (0, 7), (1, 0), (1, 1), (1, 2)]
    np.testing.assert_array_equal(got[3].image, spi.simulate_pattern(quick_cfg, 0, 9).image)


def test_labels_follow_the_class_mix_and_particle_counts(quick_cfg):
    shots = [spi.sample_shot(quick_cfg, spi.sample_model(quick_cfg, 0, m), 0, s) for m in range(60) for s in range(8)]
    labels = np.array([s.label for s in shots])
    w = np.array(quick_cfg.cluster.class_weights)
    np.testing.assert_allclose(np.bincount(labels, minlength=5) / len(labels), w / w.sum(), atol=0.05)
    for s in shots:
        n = len(s.quaternions)
        assert n == s.label if s.label < 4 else 4 <= n <= quick_cfg.cluster.max_particles
        np.testing.assert_allclose(np.linalg.norm(s.quaternions, axis=1), 1)


def test_cluster_members_touch_and_do_not_overlap():
    rng = np.random.default_rng(0)
    for n in range(2, 7):
        pos = spi.cluster_positions(n, rng=rng, contact_nm=30.0, min_distance_nm=24.0)
        d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + np.eye(n) * 1e9
        assert d.min() >= 24.0 - 1e-9
        assert (np.isclose(d, 30.0).sum(axis=1) >= 1).all()  # each particle touches another
        np.testing.assert_allclose(pos.mean(axis=0), 0, atol=1e-9)


def sphere_amp():
    return Amplitude(particle("sphere", circumradius_nm=10.0, voxel_nm=0.5, grid=48), voxel_nm=0.5)


def test_two_particles_give_cos2_fringes_of_period_2pi_over_d():
    amp = sphere_amp()
    q = np.zeros((400, 3))
    q[:, 0] = np.linspace(-0.6, 0.6, 400)
    d = np.array([25.0, 0, 0])
    quats = random_quaternion(0, 2)
    single, pair = spi.cluster_amplitudes(amp, q, [(quats[:1], np.zeros((1, 3))), (quats, np.stack([-d / 2, d / 2]))])
    expected = 4 * np.cos(q[:, 0] * d[0] / 2) ** 2 * np.abs(single) ** 2
    np.testing.assert_allclose(np.abs(pair) ** 2, expected, atol=2e-3 * expected.max())


def test_a_lone_particle_is_rotated_and_shifted_as_physics_says():
    occ = particle("octahedron", circumradius_nm=8.0, voxel_nm=0.5, grid=40)
    amp = Amplitude(occ, voxel_nm=0.5)
    rng = np.random.default_rng(4)
    q = rng.uniform(-1, 1, (300, 3))
    quat = random_quaternion(rng, 1)
    t = np.array([[3.0, -7.0, 2.0]])
    from spizoo.sim.quaternion import to_matrix

    r = to_matrix(quat[0])
    (got,) = spi.cluster_amplitudes(amp, q, [(quat, t)])
    expected = np.exp(-1j * q @ t[0]) * amp(q @ r)  # F'(q) = e^{-i q·t} F(Rᵀ q)
    np.testing.assert_allclose(got, expected, atol=2e-4 * np.abs(expected).max())


def test_sphere_amplitudes_do_not_depend_on_orientation():
    amp = sphere_amp()
    q = np.random.default_rng(2).uniform(-0.8, 0.8, (200, 3))
    a, b = spi.cluster_amplitudes(amp, q, [(random_quaternion(s, 1), np.zeros((1, 3))) for s in (1, 2)])
    np.testing.assert_allclose(np.abs(a), np.abs(b), atol=2e-4 * np.abs(a).max())


def test_no_hit_patterns_hold_only_background(quick_cfg):
    cfg = dataclasses.replace(quick_cfg, cluster=dataclasses.replace(quick_cfg.cluster, class_weights=(1, 0, 0, 0, 0)))
    patterns = spi.simulate_model(cfg, 0, 0)
    bg = patterns[0].model.background_photons
    images = np.stack([p.image[p.mask == 0] for p in patterns])
    assert {p.label for p in patterns} == {0} and all(p.n_particles == 0 for p in patterns)
    assert images.mean() == pytest.approx(bg, abs=4 * np.sqrt(bg / images.size) + 1e-9)


def test_hits_are_bright_and_masked_pixels_read_zero(quick_cfg):
    cfg = dataclasses.replace(quick_cfg, cluster=dataclasses.replace(quick_cfg.cluster, class_weights=(0, 1, 0, 0, 0)))
    for p in spi.simulate_model(cfg, 1, 0):
        assert p.label == 1 and p.image.sum() > 1000
        assert (p.image[p.mask != 0] == 0).all()
        assert (p.image == np.round(p.image)).all()


def test_parameters_are_fixed_shape_records(quick_cfg):
    p = spi.simulate_pattern(quick_cfg, 0, 3)
    rec = p.parameters(quick_cfg.cluster.max_particles)
    assert rec["quaternions"].shape == (quick_cfg.cluster.max_particles, 4)
    assert np.isnan(rec["quaternions"][p.n_particles :]).all()
    assert int(rec["label"]) == p.label and str(rec["shape"]) == p.model.shape


def test_invalid_configs_name_the_parameter():
    with pytest.raises(ValueError, match="shape must be one of .*'cube'"):
        spi.ParticleConfig(shapes={"cube": 1.0})
    with pytest.raises(ValueError, match="circumradius_nm must be > 0"):
        spi.ParticleConfig(circumradius_nm=(-5.0, 10.0))
    with pytest.raises(ValueError, match="class_weights must be 5"):
        spi.ClusterConfig(class_weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="cannot resolve a particle of circumradius_nm=70"):
        spi.SpiConfig(detector=spi.DetectorConfig(distance_m=(0.05, 0.1)))
    with pytest.raises(ValueError, match="beyond the voxel grid's limit"):
        spi.SpiConfig(particle=spi.ParticleConfig(radius_voxels=8, grid=64))
    with pytest.raises(ValueError, match="ewald must be"):
        spi.DetectorConfig(ewald="bent")
