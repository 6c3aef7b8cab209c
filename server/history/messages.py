"""Commit messages: one line that says what a staff member did, e.g.
`link: "is relu just max(0,x)" -> why-nonlinearities` or `edit: why-relu (published)`."""

from __future__ import annotations

import re
from collections.abc import Mapping

from indexer.schema import Entry, Status

MAX_QUOTE = 72


def quote(text: str, limit: int = MAX_QUOTE) -> str:
    """A question on one line, in double quotes, cut to `limit` characters."""
    one_line = re.sub(r"\s+", " ", text).strip().replace('"', "'")
    if len(one_line) > limit:
        one_line = one_line[: limit - 1].rstrip() + "…"
    return f'"{one_line}"'


def link_message(added: list[str], entry_id: str) -> str:
    """Questions from the review queue added to an entry as phrasings."""
    summary = f"link: {quote(added[0])} -> {entry_id}"
    if len(added) == 1:
        return summary
    body = "\n".join(f"- {quote(q, 200)}" for q in added)
    return f"{summary} (+{len(added) - 1} more)\n\nPhrasings added:\n{body}"


def draft_message(entry: Entry) -> str:
    """A TA's draft from the review queue (new, or the answer of an unanswered entry)."""
    return f"draft: {entry.id} ({entry.status.value})"


def save_message(before: Entry | None, after: Entry) -> str:
    """An instructor's save in the editor: create, publish or edit."""
    if before is None:
        return f"create: {after.id} ({after.status.value})"
    if after.status == Status.published and before.status != Status.published:
        return f"publish: {after.id}"
    return f"edit: {after.id} ({after.status.value})"


def delete_message(entry_id: str) -> str:
    return f"delete: {entry_id}"


def revert_message(entry_id: str, sha: str) -> str:
    return f"revert: {entry_id} to {sha[:7]}"


def files_message(files: Mapping[str, object | None]) -> str:
    """For a change nobody described: `edit: a, b` / `delete: c` from the files written."""
    ids = {"edit": [], "delete": []}  # type: dict[str, list[str]]
    for name, content in sorted(files.items()):
        ids["delete" if content is None else "edit"].append(entry_id_of(name))
    return "; ".join(f"{verb}: {', '.join(names)}" for verb, names in ids.items() if names)


def listing(ids: list[str], shown: int = 3) -> str:
    """'a, b, c and 4 more'."""
    if len(ids) <= shown:
        return ", ".join(ids)
    return f"{', '.join(ids[:shown])} and {len(ids) - shown} more"


def entry_id_of(name: str) -> str:
    """'why-relu.yaml' -> 'why-relu'."""
    return name.rsplit(".", 1)[0]
