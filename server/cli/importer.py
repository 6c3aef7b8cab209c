"""`askta import`: a week's Q&A page into draft entries."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from indexer.kb import KnowledgeBase, KnowledgeBaseError
from indexer.overlaps import searcher_overlaps
from server.cli.common import fail, handle_errors, open_searcher_for, settings_of
from server.cli.exit_codes import ExitCode
from server.cli.overlaps import echo_overlaps
from server.review.importer import Format, Importer, PageError, detect_format, parse_document

FIRST_LINE_CHARS = 100


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["auto", "text", "markdown", "html"]),
              default="auto", show_default=True, help="How to read FILE.")
@click.option("--dry-run", is_flag=True,
              help="Show each question with the first line of its answer; write nothing.")
@click.option("--overlaps/--no-overlaps", default=True, show_default=True,
              help="List the new drafts that could be confused with existing entries "
                   "(loads the model).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
@handle_errors
def import_command(ctx: click.Context, file: Path, fmt: str, dry_run: bool, overlaps: bool,
                   as_json: bool) -> None:
    """Turn a week's Q&A page into draft entries in kb/, one per question.

    Questions are headings or short paragraphs ending in "?", and under a Q&A section
    also statement and topic headings and quoted (`> ...`) questions. Front matter
    (YAML or TOML) gives tags; raw HTML becomes Markdown, scripts are dropped.

    \b
    Example:
      askta import week5.md --dry-run      # the questions found, with their answers' first lines
      askta import week5.md                # write kb/<id>.yaml drafts
    Then review the drafts, add answers and demos, set status: published.
    """
    settings = settings_of(ctx)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        fail(f"{file} is not UTF-8 text: save it as UTF-8", ExitCode.USAGE)
    chosen: Format = detect_format(file, text) if fmt == "auto" else fmt  # type: ignore[assignment]
    try:
        questions = parse_document(text, chosen)
    except PageError as e:
        fail(f"{file}: {e}", ExitCode.USAGE)
    try:
        settings.kb_dir.mkdir(parents=True, exist_ok=True)
        kb = KnowledgeBase.load(settings.kb_dir)
    except KnowledgeBaseError as e:
        fail(f"fix the knowledge base first ({len(e.problems)} problem(s)):",
             ExitCode.INVALID_KB, e.problems)
    importer = Importer(kb)
    drafts, _ = importer.plan(questions)
    # Before anything is written (a model that cannot load stops the import whole), and
    # against the KB's index: drafts are never indexed.
    pairs = searcher_overlaps(open_searcher_for(settings), drafts) if overlaps and drafts else []
    result = importer.run(questions, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps({"format": chosen, "questions": [asdict(q) for q in questions],
                               "created": result.created, "skipped": result.skipped,
                               "overlaps": [o.to_dict() for o in pairs], "dry_run": dry_run},
                              indent=2))
        return
    verb = "would write" if dry_run else "wrote"
    click.echo(f"found {len(questions)} questions in {file} (read as {chosen})")
    for c in result.created:
        click.echo(f"  {verb} {c['path']}: {c['question']}")
        if dry_run:
            line = c["first_line"] or "(no answer on the page)"
            cut = line if len(line) <= FIRST_LINE_CHARS else line[:FIRST_LINE_CHARS - 1] + "…"
            click.echo(f"      {cut}")
    for s in result.skipped:
        click.echo(f"  skipped: {s['question']} ({s['reason']})")
    click.echo(f"{len(result.created)} draft entries {verb}, {len(result.skipped)} skipped"
               + ("" if dry_run or not result.created else
                  ": review them, then set status: published"))
    echo_overlaps(pairs, f"{len(pairs)} pairs of a new draft and another entry could be confused:")
