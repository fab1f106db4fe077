"""Request counters and latencies, rendered in Prometheus' text format (``GET /monitoring/prometheus/metrics``)."""

from __future__ import annotations

import threading
from collections import defaultdict

LATENCY_BUCKETS_US = (500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000, 500_000, 1_000_000)


class Metrics:
    """Thread-safe counters of requests per (model, api, status) and a latency histogram per (model, api)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.latency: dict[tuple[str, str], list[int]] = {}
        self.latency_sum: dict[tuple[str, str], float] = defaultdict(float)

    def record(self, model: str, api: str, status: str, seconds: float) -> None:
        micros = seconds * 1e6
        with self._lock:
            self.requests[(model, api, status)] += 1
            counts = self.latency.setdefault((model, api), [0] * (len(LATENCY_BUCKETS_US) + 1))
            counts[sum(micros > b for b in LATENCY_BUCKETS_US)] += 1
            self.latency_sum[(model, api)] += micros

    def render(self, loaded_versions: dict[str, list[int]]) -> str:
        lines = [
            "# TYPE :tensorflow:serving:request_count counter",
        ]
        with self._lock:
            for (model, api, status), n in sorted(self.requests.items()):
                lines.append(
                    f':tensorflow:serving:request_count{{model_name="{model}",api="{api}",status="{status}"}} {n}'
                )
            lines.append("# TYPE :tensorflow:serving:request_latency histogram")
            for (model, api), counts in sorted(self.latency.items()):
                labels = f'model_name="{model}",API="{api}"'
                cumulative = 0
                for bound, n in zip((*LATENCY_BUCKETS_US, "+Inf"), counts, strict=True):
                    cumulative += n
                    lines.append(f':tensorflow:serving:request_latency_bucket{{{labels},le="{bound}"}} {cumulative}')
                lines.append(
                    f":tensorflow:serving:request_latency_sum{{{labels}}} {self.latency_sum[(model, api)]:.0f}"
                )
                lines.append(f":tensorflow:serving:request_latency_count{{{labels}}} {cumulative}")
        lines.append("# TYPE :spizoo:serving:loaded_versions gauge")
        for model, versions in sorted(loaded_versions.items()):
            lines.append(f':spizoo:serving:loaded_versions{{model_name="{model}"}} {len(versions)}')
        return "\n".join(lines) + "\n"
