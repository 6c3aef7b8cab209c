"""indexer/schema.py `slugify`: one way to propose an entry id, always a valid one."""

from __future__ import annotations

import re

import pytest

from indexer.schema import ID_PATTERN, MAX_ID_CHARS, slugify


@pytest.mark.parametrize(("text", "expected"), [
    ("Why is SGD noisy?", "why-is-sgd-noisy"),
    ("Isn't it odd?", "isnt-it-odd"),
    ("Isn’t it odd?", "isnt-it-odd"),
    ("Qu'est-ce qu'un réseau de neurones ?", "quest-ce-quun-reseau-de-neurones"),
    ("Naïve Bayes vs. logistic regression", "naive-bayes-vs-logistic-regression"),
    ("How do I pick a learning rate for Adam?", "how-do-i-pick-a-learning-rate-for"),
    ("ReLU(x) = max(0, x) — why?", "relu-x-max-0-x-why"),
    ("???", "new-entry"),
    ("Τι είναι το gradient;", "gradient"),
    ("何ですか", "new-entry"),
])
def test_slugify(text: str, expected: str) -> None:
    assert slugify(text) == expected


@pytest.mark.parametrize("text", [
    "word " * 100,
    "x" * 500,
    "a" * 79 + " b",
    "Ünïcödé ÄÖÜ ß ﬁ ½ ² ⅷ",
    "--- ' ’ ` ---",
    "",
])
def test_slug_is_always_a_valid_id(text: str) -> None:
    slug = slugify(text)
    assert re.match(ID_PATTERN, slug), slug
    assert len(slug) <= MAX_ID_CHARS


def test_fallback_is_chosen_by_the_caller() -> None:
    assert slugify("?!", fallback="imported-question") == "imported-question"
