"""Apache Beam pipelines for dataset generation (not yet implemented: see the open issues)."""
