"""Data layer: CXI/HDF5 I/O (and, as they land, the TFRecord schema and tf.data pipelines)."""
