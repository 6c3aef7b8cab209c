"""Fuzzing the HTTP API against its own OpenAPI schema (schemathesis, in-process over ASGI).

Every operation in /openapi.json gets schema-valid (positive) and schema-breaking
(negative) requests; staff operations (those that document a 401) with an instructor's
bearer token, one request in ten without; ids in paths and bodies drawn now and then
from the real knowledge base and review queue, so the fuzzing gets past the 404s.
Every response must be:

- no server error, except a 503 the operation documents (demo runs: this test's
  services have no sandbox);
- a status code the operation documents, errors included;
- a body valid against the documented schema for that status and content type;
- a 4xx for a request the schema says is invalid.

Seeded, so every run sends the same requests, and bounded: about 700 requests (at
least MIN_REQUESTS, and every operation), in about 20 s.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from indexer.embedders import HashingEmbedder
from server.accounts import Accounts
from server.config import Settings
from server.services import Services
from server.web.app import create_app

pytestmark = pytest.mark.slow

MIN_REQUESTS = 500
# Examples per operation and generation mode: Hypothesis stops early on an operation
# whose inputs it has exhausted (one without parameters has a single positive case).
# ASKTA_FUZZ_SCALE=10 fuzzes ten times as long, for a deeper search by hand.
SCALE = float(os.environ.get("ASKTA_FUZZ_SCALE", "1"))
EXAMPLES = {GenerationMode.POSITIVE: round(40 * SCALE), GenerationMode.NEGATIVE: round(25 * SCALE)}
SEED = 20240607
CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection]
# A request the schema calls invalid must be refused: the usual 4xx, or 413 when the
# invalid part is a string over its maxLength that takes the body over its size limit.
CONFIG = schemathesis.Config.from_dict({"checks": {"negative_data_rejection": {
    "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]}}})
# Staff operations: nine requests in ten with the instructor's token, one without (401).
AUTHENTICATED = (True,) * 9 + (False,)
# Questions no entry answers, each its own review item (dismissing a group closes all of it).
UNANSWERABLE = [f"{a} {b} {c}?" for a, b, c in zip(
    "qwzx frobnicate zzyzx plimsoll gribble vantle quux snark borogove tumtum".split(),
    "plorb wibble mome outgrabe jabber slithy frumious vorpal manxome uffish".split(),
    "blorp tulgey bandersnatch jubjub galumph beamish callooh frabjous chortle toves".split(),
    strict=True)]


@pytest.fixture
def fuzz_app(settings: Settings, fake_embedder: HashingEmbedder
             ) -> Iterator[tuple[FastAPI, dict[str, Any]]]:
    """The app with every rate limit off, an instructor's token and real ids to try."""
    settings = settings.model_copy(update={"chat_rate_limit": "off", "demo_rate_limit": "off",
                                           "feedback_rate_limit": "off"})
    services = Services.start(settings, embedder=fake_embedder)
    assert services.sandbox is None, "this test expects demo runs to be refused (503)"
    app = create_app(settings, services=services)
    accounts = Accounts(services.store)
    accounts.add("fuzz-instructor", "instructor", "a-long-enough-password")
    token = accounts.issue_token("fuzz-instructor")
    # open review items, so the review operations can reach more than 404
    with TestClient(app) as c:
        for message in UNANSWERABLE:
            assert c.post("/api/chat", json={"message": message}).json()["answered"] is False
        review_ids = [item["id"] for group in c.get(
            "/api/review", headers={"Authorization": f"Bearer {token}"}).json()["groups"]
            for item in group["items"]]
    entries = services.kb.entries.values()
    ids = {
        "token": token,
        "entry_id": sorted(e.id for e in entries),
        "review_id": review_ids,
        "demo": services.editor.demo_files(),
        # for drafts from the review queue that pass the entry checks
        "id": ["fuzz-drafted-entry", "another-fuzz-entry"],
        "question": ["What does the fuzzer ask?"],
    }
    try:
        yield app, ids
    finally:
        services.close()


def test_fuzz_api(fuzz_app: tuple[FastAPI, dict[str, Any]]) -> None:
    app, ids = fuzz_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = [op.label for op in operations]
    sent: Counter[str] = Counter()
    statuses: Counter[tuple[str, int]] = Counter()
    failures: dict[str, str] = {}
    started = time.monotonic()

    for operation in operations:
        for mode, examples in EXAMPLES.items():
            try:
                fuzz(operation, mode, examples, ids, sent, statuses)
            except Unsatisfiable as e:
                # nothing in this operation's schema can be made invalid (no parameters,
                # or only free-form strings): there is no negative request to send
                if mode.is_positive:
                    failures[f"{operation.label} (positive)"] = f"no valid request: {e}"
            except (Exception, BaseExceptionGroup) as e:  # every failure, reported together
                failures[f"{operation.label} ({mode.value})"] = f"{type(e).__name__}: {e}"[:3000]

    elapsed = time.monotonic() - started
    total = sum(sent.values())
    summary = (f"{total} requests over {len(sent)}/{len(labels)} operations in {elapsed:.1f} s; "
               f"statuses: {dict(sorted(statuses.items()))}")
    print(summary)
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items()) + "\n" + summary
    assert set(sent) == set(labels), f"never exercised: {set(labels) - set(sent)}"
    assert total >= MIN_REQUESTS, summary


def fuzz(operation: Any, mode: GenerationMode, examples: int, ids: dict[str, Any],
         sent: Counter[str], statuses: Counter[tuple[str, int]]) -> None:
    """Send up to `examples` generated requests to one operation and check each response."""
    documented = operation.responses.status_codes
    staff = "401" in documented

    @seed(SEED)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def run(case: Any, data: st.DataObject) -> None:
        if mode.is_positive:  # now and then a real id, to get past the 404s
            for values in (case.path_parameters, case.body):
                for name in values if isinstance(values, dict) else ():
                    if ids.get(name) and data.draw(st.booleans(), label=f"real {name}"):
                        values[name] = data.draw(st.sampled_from(ids[name]), label=name)
        headers = {}
        if not staff or data.draw(st.sampled_from(AUTHENTICATED), label="authenticated"):
            headers["Authorization"] = f"Bearer {ids['token']}"
        response = case.call(headers=headers)
        status = response.status_code
        sent[operation.label] += 1
        statuses[(operation.label, status)] += 1
        assert status < 500 or (status == 503 and "503" in documented), (
            f"{operation.label}: {status} {response.text[:500]}\n{case.as_curl_command()}")
        case.validate_response(response, checks=CHECKS, headers=headers)

    run()
