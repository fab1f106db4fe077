"""SavedModel export for TF Serving, and a local server speaking TF Serving's REST and gRPC APIs.

``spizoo export`` → :mod:`spizoo.serving.export`; ``spizoo serve`` → :mod:`spizoo.serving.server` (REST in
:mod:`~spizoo.serving.rest`, gRPC in :mod:`~spizoo.serving.grpc_api`, versions in
:mod:`~spizoo.serving.models`, batching in :mod:`~spizoo.serving.batching`); clients use :class:`Client`.
"""

from spizoo.serving.client import Client, ServingClientError

__all__ = ["Client", "ServingClientError"]
