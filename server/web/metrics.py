"""The app's Prometheus metrics (prometheus-client), in a registry of the app's own.

Each app (and so each test's app) has its own `CollectorRegistry`, held by
`Services.metrics`: nothing is registered in prometheus-client's global default
registry. Counters and histograms move as requests are served; the gauges (sandbox
queue, warm workers, index vectors, open review items) are read when /metrics is
scraped, by `ServicesCollector`, which only reads.

Labels are bounded: a request is counted under its route's path template
(`/api/entries/{entry_id}`), never its raw URL, and an unknown method under "other".
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from server.services import Services

log = logging.getLogger("askta")

# Without this every counter and histogram series has a `_created` twin (its creation
# time) that Prometheus stores as one more series. A process-wide switch of the library.
disable_created_metrics()

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The label of a request that matched no route (a 404, a slash redirect).
UNMATCHED = "<unmatched>"
# Seconds. A chat answer takes milliseconds on an idle CPU (README, "Measured");
# the long tail is a burst queueing for the encoder.
CHAT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The app's registry and the metrics the code moves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "askta_http_requests", "HTTP requests answered, by method, route template and "
            "status.", ["method", "route", "status"], registry=r)
        self.request_seconds = Histogram(
            "askta_http_request_duration_seconds", "Time from a request's arrival to the end "
            "of its response (a stream: its whole length), by method and route template.",
            ["method", "route"], buckets=REQUEST_BUCKETS, registry=r)
        self.chat_seconds = Histogram(
            "askta_chat_duration_seconds", "Time to answer one chat question (search, and "
            "logging it), waiting for the encoder included.", buckets=CHAT_BUCKETS, registry=r)
        self.chat_questions = Counter(
            "askta_chat_questions", "Chat questions, by outcome: answered from the knowledge "
            "base, or routed to the TAs' review queue.", ["outcome"], registry=r)
        self.demo_runs = Counter(
            "askta_demo_runs", "Finished demo runs, by result status and device.",
            ["status", "device"], registry=r)
        for outcome in ("answered", "routed"):
            self.chat_questions.labels(outcome)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)

    def watch(self, services: Services) -> None:
        """Add the gauges read from `services` at each scrape."""
        self.registry.register(ServicesCollector(services))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)

    def observe_chat(self, answered: bool, seconds: float) -> None:
        self.chat_questions.labels("answered" if answered else "routed").inc()
        self.chat_seconds.observe(seconds)

    def observe_demo_run(self, status: str, device: str) -> None:
        self.demo_runs.labels(status, device).inc()

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The metrics in the format the scraper asked for (Prometheus text by default,
        OpenMetrics if its Accept header prefers it), and that format's content type."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type


class ServicesCollector(Collector):
    """Gauges read from the services at scrape time. Reads only: no write to the database,
    no sandbox started; a part that fails to answer is left out of this scrape (and logged)
    rather than failing the others."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        for part in (self._sandbox, self._runs, self._index, self._review):
            try:
                yield from part()
            except Exception:  # a scrape must not fail for one part
                log.warning("metrics: could not read %s", part.__name__.strip("_"),
                            exc_info=True)

    def _sandbox(self) -> Iterator[Metric]:
        runner = self.services.sandbox
        yield GaugeMetricFamily("askta_sandbox_available",
                                "1 if demo runs can run on this server, else 0.",
                                value=int(runner is not None))
        waiting = running = 0
        warm: dict[str, int] = {}
        if runner is not None:
            waiting, running, warm = runner.waiting, runner.running, runner.warm_workers()
        yield GaugeMetricFamily("askta_sandbox_queue_depth",
                                "Demo runs waiting for a free sandbox slot.", value=waiting)
        yield GaugeMetricFamily("askta_sandbox_running",
                                "Demo runs holding a sandbox slot.", value=running)
        family = GaugeMetricFamily("askta_sandbox_warm_workers",
                                   "Sandboxes started and ready for a run, by device.",
                                   labels=["device"])
        for device, count in sorted(warm.items()):
            family.add_metric([device], count)
        yield family

    def _runs(self) -> Iterator[Metric]:
        status = self.services.runs.status()
        info = GaugeMetricFamily("askta_runs_executor", "Where demo runs execute: 1 for this "
                                 "server's executor (local pool or celery workers).",
                                 labels=["executor"])
        info.add_metric([status.executor], 1)
        yield info
        workers = GaugeMetricFamily("askta_runs_workers", "Workers connected and ready for "
                                    "runs, by device (local: this server, 1).",
                                    labels=["device"])
        for device in ("cpu", "cuda"):
            workers.add_metric([device], status.workers.get(device, 0))
        yield workers
        depth = GaugeMetricFamily("askta_runs_queue_depth", "Runs waiting for a worker, by "
                                  "queue (celery: cpu, gpu; local: the pool's queue).",
                                  labels=["queue"])
        for queue, n in sorted(status.queue_depth.items()):
            depth.add_metric([queue], n)
        yield depth
        yield GaugeMetricFamily("askta_runs_running", "Runs executing now (celery: on every "
                                "worker).", value=status.running)

    def _index(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("askta_index_vectors", "Vectors in the search index.",
                                value=len(self.services.searcher.index))
        yield GaugeMetricFamily("askta_kb_published_entries",
                                "Published entries in the knowledge base.",
                                value=len(self.services.kb.published()))

    def _review(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("askta_review_open_items",
                                "Review items waiting for a TA (one SELECT count per scrape).",
                                value=self.services.store.count_review_items("open"))
