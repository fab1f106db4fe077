import dataclasses

import pytest

from spizoo.core.config import ConfigError, apply_overrides, config_hash, dump_config, load_config
from spizoo.experiment import Config, load


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_shipped_configs_load():
    from pathlib import Path

    for name in sorted(Path("configs").glob("*.yaml")):
        assert isinstance(load(name), Config), name
    assert load("configs/sim_spi.yaml").sim.particle.grid == 128


def test_unknown_key_names_the_key_and_the_nearest_valid_one(tmp_path):
    path = write(tmp_path, "sim:\n  detector:\n    distanse_m: 0.5\n")
    with pytest.raises(
        ConfigError, match=r"c\.yaml: sim\.detector: unknown key 'distanse_m' \(did you mean 'distance_m'\?\)"
    ):
        load(path)


def test_wrong_types_and_values_are_errors_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"sim\.patterns_per_model: expected an integer, got 'many'"):
        load(write(tmp_path, "sim:\n  patterns_per_model: many\n"))
    with pytest.raises(ConfigError, match=r"sim\.detector\.distance_m: range \[0\.9, 0\.1\] has low > high"):
        load(write(tmp_path, "sim:\n  detector:\n    distance_m: [0.9, 0.1]\n"))
    with pytest.raises(ConfigError, match=r"sim\.particle: shape must be one of"):
        load(write(tmp_path, "sim:\n  particle:\n    shapes: {cube: 1}\n"))
    with pytest.raises(ConfigError, match="config file not found"):
        load(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(write(tmp_path, "sim: [\n"))


def test_overrides_apply_last_and_parse_yaml_values(tmp_path):
    path = write(tmp_path, "seed: 1\nsim:\n  detector:\n    distance_m: 0.5\n")
    cfg = load(path, ["seed=7", "sim.detector.distance_m=[0.4, 0.45]", "sim.beam.fluence_photons_per_um2=1e12"])
    assert cfg.seed == 7
    assert cfg.sim.detector.distance_m == (0.4, 0.45)
    assert cfg.sim.beam.fluence_photons_per_um2 == (1e12, 1e12)  # a scalar is a fixed range
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides({}, ["seed"])
    with pytest.raises(ConfigError, match="unknown key 'sed'"):
        load(path, ["sed=3"])


def test_dumped_config_loads_back_equal_and_hash_is_stable(tmp_path):
    cfg = load("configs/sim_spi.yaml", ["seed=3"])
    dump_config(cfg, tmp_path / "resolved.yaml")
    again = load_config(tmp_path / "resolved.yaml", Config)
    assert again == cfg
    assert config_hash(again) == config_hash(cfg)
    assert config_hash(dataclasses.replace(cfg, seed=4)) != config_hash(cfg)
