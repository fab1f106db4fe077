"""Installs the top-level folders under the one ``spizoo`` import namespace (docs/ARCHITECTURE.md)."""

from setuptools import setup

PACKAGES = {
    "spizoo": "spizoo",
    "spizoo.sim": "sim",
    "spizoo.data": "data",
    "spizoo.models": "models",
    "spizoo.beam_pipelines": "beam_pipelines",
    "spizoo.serving": "serving",
}

DASK = "dask[distributed]>=2024.4.2,<2027"  # the range Beam 2.77's DaskRunner supports

setup(
    name="spizoo",
    version="0.1.0",
    description="Model zoo and data layer for XFEL single-particle-imaging diffraction data",
    python_requires=">=3.11,<3.12",
    packages=list(PACKAGES),
    package_dir=PACKAGES,
    install_requires=[
        "tensorflow==2.21.*",
        "keras>=3.15,<3.16",  # the workarounds in spizoo/core/compat.py were checked on 3.15
        "apache-beam[tfrecord]==2.77.*",
        "google-crc32c",
        "protobuf<7",
        "numpy<2.5",
        "scipy",
        "finufft>=2.3,<3",
        "h5py<3.15",
        "scikit-learn",
        "pyyaml",
        "matplotlib",
        "tqdm",
        "tensorboard",
        "grpcio",
        "tensorflow-serving-api==2.21.*",
        "extra-geom>=1.17,<2",  # detector geometries (CrystFEL .geom, EuXFEL/LCLS detectors); checked on 1.17
        "extra-data>=1.25,<2",  # European XFEL run directories; checked on 1.25
        "karabo-bridge>=0.7,<1",  # European XFEL's live stream client (spizoo monitor --karabo-bridge)
    ],
    extras_require={
        "dask": [DASK],  # Beam's DaskRunner: spizoo generate/ingest --runner DaskRunner on a dask.distributed cluster
        "dev": ["pytest>=8", "ruff>=0.6", "psutil", DASK],  # psutil: karabo-bridge-serve-files in tests
    },
    entry_points={"console_scripts": ["spizoo=spizoo.cli:main"]},
)
