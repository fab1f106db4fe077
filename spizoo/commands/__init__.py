"""The ``spizoo`` verbs, one module each: ``DESCRIPTION`` (the ``--help`` text, with a runnable example),
``add_arguments(parser)``, ``run(args) -> dict`` (the summary that ``--json`` prints whole) and
``summary_line(summary) -> str`` (the headline printed otherwise), optionally ``summary_rows(summary,
args)`` (aligned (label, text) lines under it: what is where, key figures, the next command) and
``INTERRUPTED`` (the one line a Ctrl-C prints). Verbs that hand unknown options on to Beam set
``PASSES_TO_BEAM = True`` and are called as ``run(args, beam_args)``.

:data:`VERBS` lists them with their one-line help, so that ``spizoo --help`` imports none of them and a
verb imports only what it needs.
"""

VERBS = {
    "simulate": "simulate diffraction patterns into a CXI file with a PNG contact sheet",
    "fit-pattern": "reconstruct orientation and size of one MSFT pattern by Monte-Carlo simplex (the baseline)",
    "fit-summary": "seed 001 fig. 4b: forward-fit error against simulations over many patterns, against the network",
    "generate": "generate a sharded TFRecord dataset with Apache Beam",
    "train": "train a registered model on a generated dataset",
    "evaluate": "evaluate a trained run on a dataset split: JSON report and plots",
    "export": "export a trained run as a TF Serving SavedModel version",
    "serve": "serve exported models over TF Serving's REST and gRPC APIs",
    "predict": "send the frames of a CXI/HDF5 file to a model server",
    "ingest": "turn frames of experiment CXI/HDF5 files into a TFRecord dataset (Apache Beam)",
    "classify": "classify every frame of CXI/HDF5 files into a results file",
    "monitor": "classify frames as the DAQ writes them and show the hit rate",
    "zoo": "list the trained models that ship with spizoo, or show one's model card",
    "emc": "hand the single hits of a classify results file to EMC reconstruction (Dragonfly input)",
}
"""Verb → one-line help; the module of verb ``fit-pattern`` is ``spizoo.commands.fit_pattern``."""
