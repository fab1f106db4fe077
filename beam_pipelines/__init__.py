"""Apache Beam pipelines: simulated patterns (:mod:`~spizoo.beam_pipelines.generate`) and experiment frames
(:mod:`~spizoo.beam_pipelines.ingest`) into sharded TFRecords with statistics and ``dataset_info.json``."""
