"""Real detector geometries: agreement with the flat detector, physics on tilted panels, files, the view."""

import extra_geom
import numpy as np
import pytest
from test_amplitude import sphere_form_factor  # tests/sim is on the path (rootdir-relative imports)

from spizoo.core import masks
from spizoo.core.config import ConfigError
from spizoo.sim import spi
from spizoo.sim.amplitude import scattering_amplitude
from spizoo.sim.detector import Detector
from spizoo.sim.geometry import DETECTORS, Geometry, GeometryConfig, View
from spizoo.sim.photons import expected_photons
from spizoo.sim.shapes import particle


def test_a_flat_detector_is_the_one_module_special_case_exactly():
    det = Detector(shape=(33, 41), pixel_size_um=1000, distance_m=0.05, center_px=(10.3, 20.6), beam_stop_radius_px=4.2)
    geo = Geometry.from_detector(det)
    assert geo.shape == (1, 33, 41)
    for ewald in ("curved", "flat"):
        np.testing.assert_array_equal(geo.q_inv_nm(0.8, ewald=ewald)[0], det.q_inv_nm(0.8, ewald=ewald))
    np.testing.assert_array_equal(geo.solid_angle_sr()[0], det.solid_angle_sr())
    for kind in ("x", "y", "unpolarized"):
        np.testing.assert_array_equal(geo.polarization(kind)[0], det.polarization(kind))
    gapped = Detector(shape=(64, 64), beam_stop_radius_px=3.3, panel_gap_px=2)
    np.testing.assert_array_equal(
        Geometry.from_detector(gapped).mask(bad_pixel_fraction=0.01, rng=5)[0],
        gapped.mask(bad_pixel_fraction=0.01, rng=5),
    )


def _tilted_panels(pixel_m=1e-3):
    """Two 24×20-pixel modules of two tiles each, offset from each other; module 1 tilted by 25° and moved
    3 cm towards the sample."""
    geom = extra_geom.GenericGeometry.from_simple_description(
        pixel_size=pixel_m,
        slow_pixels=12,
        fast_pixels=20,
        corner_coordinates=[np.array([-0.021, -0.013, 0.0]), np.array([0.004, -0.002, 0.0])],
        n_tiles_per_module=2,
        tile_gap=2 * pixel_m,
        tile_vec=[1, 0, 0],
    )
    # EXtra-geom 1.17's rotate/offset return a GenericGeometry without its layout attributes: keep ours.
    geom.modules = geom.rotate((0, 25, 0), modules=np.s_[1:2]).offset((0, 0, -0.03), modules=np.s_[1:2]).modules
    return geom


def _solid_angle_by_integration(geom, distance_m, n=6):
    """∫ |n̂·r| / |r|³ dA over each pixel, by an n×n midpoint rule on the tile's own vectors."""
    out = []
    sub = (np.arange(n) + 0.5) / n - 0.5
    for tiles in geom.modules:
        rows = []
        for tile in tiles:
            ss, fs = np.asarray(tile.ss_vec, float), np.asarray(tile.fs_vec, float)
            normal = np.cross(fs, ss)
            area = np.linalg.norm(normal)
            normal /= area
            i, j = np.meshgrid(np.arange(tile.ss_pixels), np.arange(tile.fs_pixels), indexing="ij")
            centres = np.asarray(tile.corner_pos, float) + (i[..., None] + 0.5) * ss + (j[..., None] + 0.5) * fs
            total = 0.0
            for a in sub:
                for b in sub:
                    r = centres + a * ss + b * fs + [0, 0, distance_m]
                    total = total + np.abs(r @ normal) / np.linalg.norm(r, axis=-1) ** 3 * area / n**2
            rows.append(total)
        out.append(np.concatenate(rows))
    return np.stack(out)


def test_sphere_on_tilted_offset_panels_matches_the_analytic_form_factor_pixel_by_pixel():
    geom = _tilted_panels()
    geo = Geometry.from_extra_geom(geom, distance_m=0.1)
    assert geo.shape == (2, 24, 20)
    # Solid angles: the pixel's own area and its panel's normal (not the flat detector's cos³).
    omega = geo.solid_angle_sr()
    np.testing.assert_allclose(omega, _solid_angle_by_integration(geom, 0.1), rtol=2e-4)
    cos3 = (geo.pixel_positions_m()[..., 2] / np.linalg.norm(geo.pixel_positions_m(), axis=-1)) ** 3
    flat_guess = 1e-6 * cos3 / geo.pixel_positions_m()[..., 2] ** 2
    cos3_error = np.abs(omega[1] / flat_guess[1] - 1)  # on the tilted module, cos³ would be wrong by up to 9 %
    assert cos3_error.max() > 0.08 and cos3_error.mean() > 0.03
    np.testing.assert_allclose(omega[0], flat_guess[0], rtol=1e-12)  # the untilted one agrees
    # The sphere's intensity at each pixel, against q, ΔΩ and P computed here from the positions.
    wavelength = 1239.84 / 1800
    radius, voxel = 5.0, 0.125
    occ = particle("sphere", circumradius_nm=radius, voxel_nm=voxel, grid=128)
    q = geo.q_inv_nm(wavelength)
    amp = scattering_amplitude(occ, voxel_nm=voxel, q_inv_nm=q.reshape(-1, 3)).reshape(geo.shape)
    photons = expected_photons(
        amp, electron_density_e_per_nm3=430, fluence_photons_per_um2=1e12, solid_angle_sr=omega,
        polarization=geo.polarization("x"),
    )  # fmt: skip
    r = geo.pixel_positions_m()
    rhat = r / np.linalg.norm(r, axis=-1, keepdims=True)
    k = 2 * np.pi / wavelength
    q_ref = np.linalg.norm(k * (rhat - [0, 0, 1]), axis=-1)
    reference = expected_photons(
        sphere_form_factor(q_ref, radius), electron_density_e_per_nm3=430, fluence_photons_per_um2=1e12,
        solid_angle_sr=_solid_angle_by_integration(geom, 0.1), polarization=1 - rhat[..., 0] ** 2,
    )  # fmt: skip
    tested = reference > 1e-3 * reference.max()
    assert tested[0].sum() > 50 and tested[1].sum() > 50
    np.testing.assert_array_less(np.abs(photons[tested] / reference[tested] - 1), 0.02)


def test_a_geometry_written_by_extra_geom_reads_back_with_the_same_pixels(tmp_path):
    geo = Geometry.named("AGIPD-1M", distance_m=0.705)
    path = geo.write_crystfel(tmp_path / "agipd.geom", photon_energy_eV=6000)
    for detector in ("AGIPD-1M", None):  # named, or recognised from the file
        back = Geometry.from_crystfel(path, detector=detector)
        assert back.name == "AGIPD-1M" and back.distance_m == pytest.approx(0.705)
        np.testing.assert_allclose(back.pixel_positions_m(), geo.pixel_positions_m(), atol=1e-12)
        np.testing.assert_array_equal(back.static_mask, geo.static_mask)
    jungfrau = Geometry.named("JUNGFRAU", offsets=((0, 0), (0.0, 0.05)))
    back = Geometry.from_crystfel(jungfrau.write_crystfel(tmp_path / "jf.geom"), detector="JUNGFRAU")
    np.testing.assert_allclose(back.positions_m, jungfrau.positions_m, atol=1e-12)


def test_agipd_seams_are_its_double_width_pixels_and_every_named_detector_builds():
    geo = Geometry.named("AGIPD-1M")
    assert geo.shape == (16, 512, 128) and geo.pixel_size_m == pytest.approx(200e-6)
    seams = extra_geom.agipd_asic_seams()
    for module in geo.static_mask:
        np.testing.assert_array_equal(module == masks.INVALID, seams)
    for name in DETECTORS:
        g = Geometry.named(name)
        assert g.shape[1:] == getattr(extra_geom, DETECTORS[name][0]).expected_data_shape[1:], name
        assert np.all(g.areas_m2 > 0) and np.allclose(np.linalg.norm(g.normals, axis=-1), 1)


def test_bad_geometry_input_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown detector 'AGPID-1M' \(did you mean AGIPD-1M\?\)"):
        GeometryConfig(detector="AGPID-1M")
    with pytest.raises(FileNotFoundError, match="no such geometry file: .*missing.geom"):
        Geometry.from_crystfel(tmp_path / "missing.geom")
    junk = tmp_path / "junk.geom"
    junk.write_text("this is not = a geometry\n")
    with pytest.raises(ValueError, match="junk.geom: could not tell which detector"):
        Geometry.from_crystfel(junk)
    with pytest.raises(ValueError, match="AGIPD-1M: cannot build the geometry from"):
        Geometry.named("AGIPD-1M", quad_pos=3)
    with pytest.raises(ValueError, match="parameters belong to a named detector"):
        GeometryConfig(file="x.geom", parameters={"quad_pos": []})


def test_the_view_of_a_flat_detector_at_bin_1_is_its_image():
    det = Detector(shape=(64, 48))
    view = View(Geometry.from_detector(det), pixels=(64, 48), bin=1)
    image = np.random.default_rng(0).poisson(3.0, (2, 1, 64, 48)).astype(np.float32)
    np.testing.assert_array_equal(view(image), image[:, 0])
    np.testing.assert_array_equal(view(image[0]), image[0, 0])


def test_the_agipd_view_sums_counts_masks_gaps_and_refuses_other_frames():
    geo = Geometry.named("AGIPD-1M", distance_m=0.7)
    view = View(geo, pixels=(160, 160), bin=8)  # 256 mm: the whole detector
    frames = np.random.default_rng(1).poisson(1.0, (3, *geo.shape)).astype(np.float32)
    out = view(frames)
    assert out.shape == (3, 160, 160) and out.dtype == np.float32
    np.testing.assert_array_equal(out.sum(axis=(1, 2)), frames.sum(axis=(1, 2, 3)))  # every count lands once
    mask = view.mask()
    assert mask[80, 80] == masks.INVALID  # the central hole between the quadrants
    assert np.all(out[:, mask != 0] == 0)
    dead = np.zeros(geo.shape, np.uint32)
    dead[3] = masks.DEAD  # a whole module off
    masked = view(frames, dead)
    assert masked.sum() == frames.sum() - frames[:, 3].sum()
    assert (view.mask(dead) != 0).sum() > (mask != 0).sum() + 100
    with pytest.raises(ValueError, match=r"frames of 8x512x128 pixels do not match the AGIPD-1M geometry's 16"):
        view(frames[:, :8])


def test_spi_on_a_geometry_simulates_module_stacked_frames_and_checks_its_config():
    from spizoo.experiment import load

    sets = ["sim.detector.pixel_size_um=[300,500]", "sim.detector.panel_gap_px=[0,3]"]  # the defaults
    geometry = ["sim.detector.geometry={detector: ePix10k}", "sim.detector.bin=8", "sim.detector.pixels=[32,32]"]
    cfg = load("configs/quickstart.yaml", [*sets, *geometry, "sim.patterns_per_model=3"]).sim
    patterns = spi.simulate_model(cfg, 0, 1)
    p = patterns[0]
    assert p.image.shape == p.mask.shape == (1, 352, 384) and p.image.dtype == np.float32
    assert np.all(p.mask[cfg.layout().static_mask != 0] & masks.INVALID)  # seams are part of every mask
    assert np.all(p.image[p.mask != 0] == 0)
    assert isinstance(p.model.detector, Geometry) and 0.4 <= p.model.detector.distance_m <= 0.6
    np.testing.assert_array_equal(spi.simulate_pattern(cfg, 0, 4).image, patterns[1].image)
    assert cfg.view()(p.image).shape == (32, 32)
    with pytest.raises(ConfigError, match="pixel_size_um comes from the detector geometry; remove it"):
        load("configs/quickstart.yaml", geometry)
    with pytest.raises(ConfigError, match="bin=8 needs a geometry"):
        load("configs/quickstart.yaml", ["sim.detector.bin=8"])
    with pytest.raises(ConfigError, match="cannot resolve a particle"):  # 8x8 cells at 5 cm: too coarse
        load("configs/quickstart.yaml", [*sets, *geometry, "sim.detector.distance_m=0.05"])


def _cell_sums(geo, frames, pixels, bin):
    """The view by definition: each pixel's counts into the cell its centre falls in."""
    h, w = pixels
    r = geo.pixel_positions_m()
    pitch = geo.pixel_size_m * bin
    row = np.floor(np.round(r[..., 1] / pitch + h / 2, 6)).astype(int).ravel()
    col = np.floor(np.round(r[..., 0] / pitch + w / 2, 6)).astype(int).ravel()
    ok = (row >= 0) & (row < h) & (col >= 0) & (col < w)
    out = [np.bincount(row[ok] * w + col[ok], weights=f.ravel()[ok], minlength=h * w) for f in frames]
    return np.stack(out).reshape(len(frames), h, w)


@pytest.mark.parametrize("detector", ["AGIPD-1M", "JUNGFRAU", "pnCCD", "rotated"])
def test_the_view_is_the_pixel_by_pixel_cell_sum_for_aligned_and_rotated_tiles(detector):
    if detector == "rotated":  # a tile turned in the detector plane: not separable, the sparse path
        geom = _tilted_panels(pixel_m=2e-4)
        geom.modules = geom.rotate((0, 0, 10), modules=np.s_[0:1]).modules
        geo = Geometry.from_extra_geom(geom, distance_m=0.1)
    else:
        geo = Geometry.named(detector)
    frames = np.random.default_rng(3).poisson(0.5, (3, *geo.shape)).astype(np.float32)
    for pixels, bin in (((48, 40), 4), ((16, 16), 8)):
        view = View(geo, pixels, bin)
        if bin == 4:
            assert (view._sum is not None) == (detector == "rotated")  # the tile products, or the sparse sum
        np.testing.assert_array_equal(view(frames), _cell_sums(geo, frames, pixels, bin))


@pytest.mark.parametrize("line,value", [("p1a3/corner_x", None), ("p1a3/corner_y", "nan")])
def test_a_crystfel_file_with_a_panel_missing_or_not_finite_is_refused_naming_the_file_and_module(
    tmp_path, line, value
):
    """Found by the geometry fuzzer: EXtra-geom reads a panel without its corner as NaN positions, which the
    view then binned into nonsense; now an error names the file and the module."""
    path = Geometry.named("AGIPD-1M").write_crystfel(tmp_path / "agipd.geom")
    text = [
        (f"{line} = {value}" if value is not None else "") if row.startswith(f"{line} ") else row
        for row in path.read_text().splitlines()
    ]
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=rf"{path}: pixel positions or panel vectors .* module\(s\) \[1\]"):
        Geometry.from_crystfel(path, detector="AGIPD-1M")
