"""Helpers for the European XFEL runs that EXtra-data's mock writer makes (fixture ``euxfel_run``)."""

EUXFEL_DETECTOR = "SPB_DET_AGIPD1M-1"


def euxfel_module_file(run, m):
    """The file and image group of AGIPD module ``m`` in a mock run."""
    return run / f"CORR-R0238-AGIPD{m:02d}-S00000.h5", f"INSTRUMENT/{EUXFEL_DETECTOR}/DET/{m}CH0:xtdf/image"
