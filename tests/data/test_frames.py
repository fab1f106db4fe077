import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from spizoo.core import masks
from spizoo.data.cxi import CXIWriter
from spizoo.data.frames import FrameFile
from spizoo.sim.geometry import Geometry, View


def _cxi(path, n=5, shape=(6, 8)):
    images = np.arange(n * shape[0] * shape[1], dtype=np.float32).reshape(n, *shape) + 1
    mask = np.zeros(shape, np.uint32)
    mask[0, 0] = masks.DEAD
    mask[1, 1] = masks.SHADOWED
    mask[2, 2] = 0x20  # peak mask: not a bad pixel
    with CXIWriter(path, shape, block=2) as w:
        for im in images:
            w.append(im, mask=mask, distance_m=0.5, pixel_size_m=75e-6, center_px=(3, 4), photon_energy_eV=1200.0)
    return images


def test_spizoo_cxi_frames_masks_and_geometry(tmp_path):
    images = _cxi(tmp_path / "a.cxi")
    with FrameFile(tmp_path / "a.cxi") as f:
        assert len(f) == 5 and f.frame_shape == (6, 8) and f.dataset_path == "entry_1/data_1/data"
        batch = f.read(1, 4)
        assert batch.dtype == np.float32 and batch.shape == (3, 6, 8)
        assert (batch[:, 0, 0] == 0).all() and (batch[:, 1, 1] == 0).all()  # unusable pixels read 0
        np.testing.assert_array_equal(batch[:, 2:, 2:], images[1:4, 2:, 2:])  # the rest as stored
        np.testing.assert_array_equal(f.read(0, 1, apply_mask=False)[0], images[0])
        assert [first for first, _ in f.batches(2)] == [0, 2, 4]
        g = f.geometry(3)
        assert g.distance_m == pytest.approx(0.5) and g.pixel_size_m == pytest.approx(75e-6)
        assert g.photon_energy_eV == pytest.approx(1200.0)
        with pytest.raises(IndexError, match="out of range; the file holds 5"):
            f.read(3, 6)


def test_links_virtual_datasets_and_a_missing_source(tmp_path):
    parts = []
    for i in range(2):
        with h5py.File(tmp_path / f"run_{i}.h5", "w") as f:
            f["frames"] = np.full((3, 4, 4), i, np.float32)
        parts.append(tmp_path / f"run_{i}.h5")
    layout = h5py.VirtualLayout((6, 4, 4), np.float32)
    for i, part in enumerate(parts):
        layout[3 * i : 3 * i + 3] = h5py.VirtualSource(part.name, "frames", shape=(3, 4, 4))
    with h5py.File(tmp_path / "vds.cxi", "w") as f:
        f.create_virtual_dataset("entry_1/instrument_1/detector_1/data", layout)
        f["entry_1/data_1/data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
        f["entry_1/data_2"] = h5py.ExternalLink(parts[1].name, "/")
    with FrameFile(tmp_path / "vds.cxi") as f:
        assert len(f) == 6 and f.read(2, 4)[:, 0, 0].tolist() == [0, 1]
    with FrameFile(tmp_path / "vds.cxi", "entry_1/data_2/frames") as f:  # through an external link
        assert f.frame(0)[0, 0] == 1
    parts[1].unlink()
    with pytest.raises(FileNotFoundError, match=r"virtual dataset reading frames from .*run_1.h5"):
        FrameFile(tmp_path / "vds.cxi")


def test_cheetah_num_events_axes_and_plain_hdf5(tmp_path):
    with h5py.File(tmp_path / "cheetah.cxi", "w") as f:
        d = f.create_dataset("entry_1/data_1/data", data=np.ones((10, 4, 4), np.float32))
        d.attrs["numEvents"] = 6
        d.attrs["axes"] = "experiment_identifier:y:x"
        f.create_dataset("entry_1/instrument_1/detector_1/data", data=np.ones((2, 16, 4, 4)))
        f["entry_1/instrument_1/detector_1/data"].attrs["axes"] = "experiment_identifier:module_identifier:y:x"
        f.create_dataset("scan/images", data=np.ones((3, 5, 5)))
        f.create_dataset("scan/one", data=np.ones((5, 5)))
    with FrameFile(tmp_path / "cheetah.cxi") as f:
        assert len(f) == 6  # frames allocated but not written are not frames
    with pytest.raises(ValueError, match=r"module-stacked frames \(16 modules of 4x4 pixels\); give their detector"):
        FrameFile(tmp_path / "cheetah.cxi", "entry_1/instrument_1/detector_1/data")
    with FrameFile(tmp_path / "cheetah.cxi", "/scan/images") as f:
        assert len(f) == 3 and f.frame(2).shape == (5, 5)
    with FrameFile(tmp_path / "cheetah.cxi", "scan/one") as f:
        assert len(f) == 1 and f.read(0, 1).shape == (1, 5, 5)
    with pytest.raises(ValueError, match=r"no image stack at /scan/nothing; .*/scan/images \(3, 5, 5\)"):
        FrameFile(tmp_path / "cheetah.cxi", "scan/nothing")
    (tmp_path / "text.cxi").write_text("not hdf5")
    with pytest.raises(ValueError, match="not an HDF5/CXI file"):
        FrameFile(tmp_path / "text.cxi")
    with pytest.raises(FileNotFoundError, match="no such file"):
        FrameFile(tmp_path / "missing.cxi")


def test_an_unreadable_frame_is_named(tmp_path):
    path = tmp_path / "damaged.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "entry_1/data_1/data",
            data=np.random.default_rng(0).random((6, 32, 32)),
            chunks=(1, 32, 32),
            compression="gzip",
        )
    with h5py.File(path, "r") as f:
        info = f["entry_1/data_1/data"].id.get_chunk_info(3)
    with open(path, "r+b") as f:
        f.seek(info.byte_offset)
        f.write(b"\x00" * info.size)
    with FrameFile(path) as frames:
        frames.read(0, 3)  # the others still read
        with pytest.raises(ValueError, match=r"cannot read frames 3…3"):
            frames.read(3, 4)


def test_memory_stays_bounded_while_streaming_a_file_many_times_a_batch(tmp_path):
    path = tmp_path / "big.cxi"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("entry_1/data_1/data", (512, 256, 256), np.float32, chunks=(1, 256, 256))
        for i in range(0, 512, 64):
            d[i : i + 64] = np.random.default_rng(i).random((64, 256, 256), np.float32)
    assert os.path.getsize(path) > 128 * 2**20
    script = textwrap.dedent(
        f"""
        import re
        from spizoo.data.frames import FrameFile
        def kb(field):
            return int(re.search(field + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1))
        with FrameFile({str(path)!r}) as f:
            f.read(0, 16)
            base = kb("VmRSS")
            total = sum(float(b.sum()) for _, b in f.batches(16))
        print(kb("VmHWM") - base)
        """
    )
    grown_kb = int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    assert grown_kb < 32 * 1024, f"streaming a 128 MiB file grew the process by {grown_kb} kB"


def test_module_stacked_frames_read_through_their_view_with_the_mask_applied_first(tmp_path):
    geo = Geometry.named("ePix10k", distance_m=0.5)
    frames = np.random.default_rng(2).poisson(2.0, (5, *geo.shape)).astype(np.float32)
    mask = np.zeros(geo.shape, np.uint32)
    mask[0, :100] = masks.DEAD
    with h5py.File(tmp_path / "epix.cxi", "w") as f:
        d = f.create_dataset("entry_1/instrument_1/detector_1/data", data=frames)
        d.attrs["axes"] = "experiment_identifier:module_identifier:y:x"
        f["entry_1/instrument_1/detector_1/mask"] = mask
        f["entry_1/data_1/data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
    view = View(geo, pixels=(40, 48), bin=8)
    asked = []
    with FrameFile(tmp_path / "epix.cxi", view=lambda path: asked.append(path) or view) as f:
        assert f.modular and f.frame_shape == (40, 48) and len(f) == 5 and asked == [tmp_path / "epix.cxi"]
        np.testing.assert_array_equal(f.read(1, 4), view(frames[1:4], mask))
        assert f.frame(0).sum() == view(np.where(mask == 0, frames[0], 0)).sum() < view(frames[0]).sum()
    with pytest.raises(ValueError, match=r"frames of 1 modules of 352x384 pixels do not match the AGIPD-1M geometry"):
        FrameFile(tmp_path / "epix.cxi", view=View(Geometry.named("AGIPD-1M"), bin=8))


def test_module_stacked_reads_through_the_reused_buffer_are_each_their_own(tmp_path):
    """Viewed frames are read into one buffer per file (HDF5 converting the stored counts) a few frames a
    call: integer counts, per-frame masks, reads of any length; no result shares the buffer."""
    geo = Geometry.named("ePix100", distance_m=0.5)
    counts = np.random.default_rng(3).poisson(3.0, (21, *geo.shape)).astype(np.uint16)
    mask = np.zeros(counts.shape, np.uint8)
    mask[::2, 0, :50] = masks.DEAD
    with h5py.File(tmp_path / "epix.cxi", "w") as f:
        f.create_dataset("entry_1/data_1/data", data=counts, chunks=(1, *geo.shape))
        f["entry_1/data_1/mask"] = mask
    view = View(geo, pixels=(24, 24), bin=16)
    expected = view(counts.astype(np.float32), mask)
    with FrameFile(tmp_path / "epix.cxi", view=view) as f:
        got = [f.read(a, b) for a, b in ((0, 11), (11, 21), (3, 3), (20, 21), (0, 11))]
        assert [g.shape[0] for g in got] == [11, 10, 0, 1, 11]
        np.testing.assert_array_equal(np.concatenate(got[:2]), expected)
        np.testing.assert_array_equal(got[3], expected[20:])
        np.testing.assert_array_equal(got[4], got[0])
        assert not any(np.shares_memory(a, b) for i, a in enumerate(got) for b in got[i + 1 :])
        stored = f.read(0, 11, stored=True)  # not viewed: a fresh array, as stored, masked
        np.testing.assert_array_equal(stored, np.where(mask[:11] == 0, counts[:11], 0).astype(np.float32))
        assert not np.shares_memory(stored, f.read(0, 11, stored=True))


def test_a_directory_is_named_as_one(tmp_path):
    with pytest.raises(IsADirectoryError, match=r"is a directory, not a CXI/HDF5 file or a European XFEL run"):
        FrameFile(tmp_path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f, d: d.attrs.__setitem__("numEvents", "x"), r"numEvents 'x', not a frame count"),
        (lambda f, d: d.attrs.__setitem__("numEvents", np.array([], np.int64)), r"numEvents \[\], not a frame count"),
        (lambda f, d: d.attrs.__setitem__("numEvents", -1), r"numEvents -1, not a frame count"),
        (lambda f, d: d.attrs.__setitem__("axes", 3), r"has axes 3; expected text such as"),
        (lambda f, d: _replace(f, "mask", np.full((6, 8), b"x")), r"the mask /.*mask holds \|S1, not integer CXI bits"),
        (lambda f, d: _replace(f, "distance", np.bytes_(b"x")), r"/entry_1/instrument_1/detector_1/distance is not a"),
    ],
)
def test_hostile_attributes_are_errors_naming_the_file(tmp_path, edit, message):
    """Edits that fuzzing found to escape unnamed (docs/RELIABILITY.md)."""
    path = tmp_path / "a.cxi"
    with CXIWriter(path, (6, 8)) as w:
        w.append(np.ones((6, 8), np.float32), mask=np.zeros((6, 8)), distance_m=0.5, pixel_size_m=1e-4,
                 center_px=(3, 4), photon_energy_eV=1500)  # fmt: skip
    with h5py.File(path, "r+") as f:
        edit(f, f["entry_1/instrument_1/detector_1/data"])
    with pytest.raises(ValueError, match=rf"{path}: .*{message}"):
        with FrameFile(path) as frames:
            frames.frame(0)
            frames.geometry(0)


def _replace(f, name, value):
    del f[f"entry_1/instrument_1/detector_1/{name}"]
    f[f"entry_1/instrument_1/detector_1/{name}"] = value


def test_a_link_loop_is_named(tmp_path):
    path = tmp_path / "loop.cxi"
    with h5py.File(path, "w") as f:
        f["entry_1/data_1/data"] = h5py.SoftLink("/entry_1/data_1/data")
    with pytest.raises(ValueError, match=r"loop.cxi: no image stack at .*(cannot be listed|datasets are: none)"):
        FrameFile(path)


def test_frames_that_are_not_numbers_are_named(tmp_path):
    path = tmp_path / "text.cxi"
    with h5py.File(path, "w") as f:
        f.create_dataset("entry_1/data_1/data", data=np.full((1, 6, 8), b""), dtype=h5py.string_dtype())
    with FrameFile(path) as frames, pytest.raises(ValueError, match=r"text.cxi: cannot read frames 0…0 of /entry_1"):
        frames.frame(0)
