"""`askta import`: a week's Q&A page into draft entries."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click

from indexer.kb import KnowledgeBase, KnowledgeBaseError
from server.cli.common import settings_of
from server.cli.exit_codes import ExitCode
from server.review.importer import Format, Importer, detect_format, parse_document


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["auto", "text", "markdown", "html"]),
              default="auto", show_default=True, help="How to read FILE.")
@click.option("--dry-run", is_flag=True, help="Show what would be written; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def import_command(ctx: click.Context, file: Path, fmt: str, dry_run: bool,
                   as_json: bool) -> None:
    """Turn a week's Q&A page into draft entries in kb/, one per question.

    \b
    Example:
      askta import week5.txt --dry-run     # list the questions found
      askta import week5.md                # write kb/<id>.yaml drafts
    Then review the drafts, add answers and demos, set status: published.
    """
    settings = settings_of(ctx)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        click.echo(f"error: {file} is not UTF-8 text: save it as UTF-8", err=True)
        sys.exit(ExitCode.USAGE)
    chosen: Format = detect_format(file, text) if fmt == "auto" else fmt  # type: ignore[assignment]
    questions = parse_document(text, chosen)
    try:
        settings.kb_dir.mkdir(parents=True, exist_ok=True)
        kb = KnowledgeBase.load(settings.kb_dir)
    except KnowledgeBaseError as e:
        click.echo(f"error: fix the knowledge base first ({len(e.problems)} problem(s)):",
                   err=True)
        for p in e.problems:
            click.echo(f"  {p}", err=True)
        sys.exit(ExitCode.INVALID_KB)
    result = Importer(kb).run(questions, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps({"format": chosen, "questions": [asdict(q) for q in questions],
                               **asdict(result), "dry_run": dry_run}, indent=2))
        return
    verb = "would write" if dry_run else "wrote"
    click.echo(f"found {len(questions)} questions in {file} (read as {chosen})")
    for c in result.created:
        click.echo(f"  {verb} {c['path']}: {c['question']}")
    for s in result.skipped:
        click.echo(f"  skipped: {s['question']} ({s['reason']})")
    click.echo(f"{len(result.created)} draft entries {verb}, {len(result.skipped)} skipped"
               + ("" if dry_run or not result.created else
                  ": review them, then set status: published"))
