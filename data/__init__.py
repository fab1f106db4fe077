"""Data layer: the TFRecord schema (:mod:`~spizoo.data.schema`) and framing, tf.data input pipelines
(:mod:`~spizoo.data.pipeline`), the CXI writer (:mod:`~spizoo.data.cxi`) and the lazy CXI/HDF5 reader of
experiment frames (:mod:`~spizoo.data.frames`)."""
