"""Inference: SavedModel export for TF Serving, a local server speaking TF Serving's REST and gRPC APIs, and
the one path that runs frames through a model (:mod:`~spizoo.serving.predictor`), used to classify files
(:mod:`~spizoo.serving.classify`) and live data (:mod:`~spizoo.serving.monitor`).

Export → :mod:`spizoo.serving.export`; the server → :mod:`spizoo.serving.server` (REST in
:mod:`~spizoo.serving.rest`, gRPC in :mod:`~spizoo.serving.grpc_api`, versions in
:mod:`~spizoo.serving.models`, batching in :mod:`~spizoo.serving.batching`); clients use :class:`Client`.
"""

from spizoo.serving.client import Client, ServingClientError

__all__ = ["Client", "ServingClientError"]
