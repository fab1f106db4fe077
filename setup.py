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

BOTO3 = "boto3>=1.34,<2"
DASK = "dask[distributed]>=2024.4.2,<2027"  # the range Beam 2.77's DaskRunner supports

setup(
    name="spizoo",
    version="0.1.0",
    description="Model zoo and data layer for XFEL single-particle-imaging diffraction data",
    python_requires=">=3.11,<3.12",
    packages=list(PACKAGES),
    package_dir=PACKAGES,
    package_data={
        "spizoo.models": [
            "pretrained/*/*.yaml",
            "pretrained/*/*.json",
            "pretrained/*/*.csv",
            "pretrained/*/*.keras",
            "pretrained/*/evaluation/*.json",
        ]
    },
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
        "s3": [BOTO3],  # Beam's S3 file system: spizoo generate/ingest --out s3://BUCKET/DIR
        # psutil: karabo-bridge-serve-files in tests; moto: an S3 server on loopback for the s3:// tests
        "dev": ["pytest>=8", "ruff>=0.6", "psutil", DASK, BOTO3, "moto[server]>=5,<6"],
    },
    entry_points={"console_scripts": ["spizoo=spizoo.cli:main"]},
)
