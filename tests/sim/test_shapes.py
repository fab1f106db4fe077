import numpy as np
import pytest

from spizoo.sim import shapes
from spizoo.sim.shapes import particle


@pytest.mark.parametrize(
    ("shape", "faces"), [("octahedron", 8), ("dodecahedron", 12), ("icosahedron", 20), ("soccer", 32)]
)
def test_polyhedra_have_their_faces_and_unit_circumradius(shape, faces):
    normals, offsets = shapes.polyhedron_planes(shape)
    assert len(normals) == faces
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-9)
    verts = shapes._vertices(shape)
    assert np.linalg.norm(verts / np.linalg.norm(verts, axis=1).max(), axis=1).max() == pytest.approx(1)


def test_icosahedron_vertices_are_the_physics_frame():
    # docs/PHYSICS.md: vertices are the cyclic permutations of (0, ±1, ±φ).
    v = shapes._vertices("icosahedron")
    assert len(v) == 12
    assert any(np.allclose(p, [0, 1, shapes.PHI]) for p in v)


@pytest.mark.parametrize("shape", shapes.SHAPES)
def test_voxel_volume_matches_analytic_volume(shape):
    occ = particle(shape, circumradius_nm=30.0, voxel_nm=1.0, grid=72)
    expected = shapes.volume_nm3(shape, circumradius_nm=30.0)
    assert occ.sum() * 1.0**3 == pytest.approx(expected, rel=5e-3)
    assert occ.min() >= 0 and occ.max() <= 1


def test_affine_scales_volume_by_determinant_and_twist_keeps_it():
    a = np.diag([1.1, 0.95, 1.0]) + 0.03 * (np.ones((3, 3)) - np.eye(3))
    base = particle("icosahedron", circumradius_nm=20.0, voxel_nm=0.8, grid=80).sum()
    strained = particle("icosahedron", circumradius_nm=20.0, voxel_nm=0.8, grid=80, affine=a).sum()
    twisted = particle("icosahedron", circumradius_nm=20.0, voxel_nm=0.8, grid=80, twist_deg=25).sum()
    assert strained / base == pytest.approx(np.linalg.det(a), rel=5e-3)
    assert twisted / base == pytest.approx(1, rel=5e-3)
    assert not np.allclose(
        particle("icosahedron", circumradius_nm=20.0, voxel_nm=0.8, grid=80, twist_deg=25),
        particle("icosahedron", circumradius_nm=20.0, voxel_nm=0.8, grid=80),
    )


def test_blur_conserves_volume_and_softens_edges():
    sharp = particle("octahedron", circumradius_nm=15.0, voxel_nm=1.0, grid=48)
    soft = particle("octahedron", circumradius_nm=15.0, voxel_nm=1.0, grid=48, edge_blur_nm=1.5)
    assert soft.sum() == pytest.approx(sharp.sum(), rel=1e-4)
    assert ((soft > 0.05) & (soft < 0.95)).sum() > 2 * ((sharp > 0.05) & (sharp < 0.95)).sum()


def test_particle_is_centred_on_the_grid():
    occ = particle("sphere", circumradius_nm=10.0, voxel_nm=1.0, grid=40)
    idx = np.indices(occ.shape).reshape(3, -1)
    centroid = (idx * occ.ravel()).sum(axis=1) / occ.sum()
    np.testing.assert_allclose(centroid, 20, atol=1e-3)


def test_bad_input_names_the_parameter():
    with pytest.raises(ValueError, match="shape must be one of sphere, tetrahedron, octahedron.*'cube'"):
        particle("cube", circumradius_nm=10.0, voxel_nm=1.0)
    with pytest.raises(ValueError, match="circumradius_nm must be > 0, got -3"):
        particle("sphere", circumradius_nm=-3.0, voxel_nm=1.0)
    with pytest.raises(ValueError, match="voxel_nm must be > 0"):
        particle("sphere", circumradius_nm=3.0, voxel_nm=0.0)
    with pytest.raises(ValueError, match="grid=32"):
        particle("sphere", circumradius_nm=30.0, voxel_nm=1.0, grid=32)
    with pytest.raises(ValueError, match="affine must be an invertible"):
        particle("sphere", circumradius_nm=3.0, voxel_nm=1.0, affine=np.zeros((3, 3)))
