"""spizoo: model zoo and data layer for XFEL single-particle-imaging diffraction data."""

__version__ = "0.1.0"
