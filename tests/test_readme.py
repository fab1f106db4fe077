"""The README's Python examples marked "runs as written" do, and give what they say."""

import re
from pathlib import Path

import numpy as np
import pytest

from spizoo.experiment import load
from spizoo.sim import spi


def test_readme_python_example_runs(capsys):
    text = Path("README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if b.startswith("# runs as written")]
    assert blocks
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    p, occ, F = namespace["p"], namespace["occ"], namespace["F"]
    again = spi.simulate_pattern(load("configs/sim_spi.yaml").sim, seed=0, index=12345)
    np.testing.assert_array_equal(p.image, again.image)  # "the same bytes anywhere"
    printed = capsys.readouterr().out.split()
    assert printed == [
        str(p.label),
        str(p.n_particles),
        p.model.shape,
        "(128,",
        "128)",
        str(p.model.detector.distance_m),
    ]
    assert occ.shape == (128, 128, 128) and 0 <= occ.min() and occ.max() <= 1
    # F(0) is the particle's volume: an icosahedron of circumradius R has edge R / sin(2π/5), volume 5/12 (3+√5) a³.
    edge = 40 / np.sin(2 * np.pi / 5)
    assert F[0].real == pytest.approx(5 / 12 * (3 + np.sqrt(5)) * edge**3, rel=1e-3)
    assert abs(F[1]) < abs(F[0])
