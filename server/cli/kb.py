"""Commands on the knowledge base: index, ask, eval, check (with the demo run behind
`check --demos`), schema."""

from __future__ import annotations

import dataclasses
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from indexer.demos import DemoPathError
from indexer.kb import KnowledgeBase, KnowledgeBaseError, Problem
from indexer.overlaps import searcher_overlaps
from server.cli.common import handle_errors, open_searcher_for, settings_of
from server.cli.exit_codes import ExitCode
from server.cli.overlaps import echo_overlaps
from server.config import Settings

if TYPE_CHECKING:
    from server.sandbox import RunResult


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
@handle_errors
def index(ctx: click.Context, as_json: bool) -> None:
    """Build the search index of the knowledge base, or bring it up to date.

    Only entries that changed since the last run are embedded again.
    """
    settings = settings_of(ctx)
    searcher = open_searcher_for(settings, progress=not as_json)
    stats = {**searcher.stats, "index_dir": str(settings.index_dir), "model": searcher.index.model}
    if as_json:
        click.echo(json.dumps(stats))
    else:
        click.echo(
            f"index: {stats['entries']} entries, {stats['vectors']} vectors in "
            f"{settings.index_dir} ({stats['added']} added, {stats['changed']} changed, "
            f"{stats['removed']} removed)"
        )


@click.command()
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
@handle_errors
def ask(ctx: click.Context, question: str, as_json: bool) -> None:
    """Ask a question the way a student would.

    \b
    Example:
      askta ask "why do we need relu"
    """
    result = open_searcher_for(settings_of(ctx)).search(question)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "answered": result.answered,
                    "entry": result.entry.model_dump(mode="json") if result.entry else None,
                    "score": round(result.score, 4),
                    "margin": round(result.margin, 4),
                    "reason": result.reason,
                    "suggestions": [h.to_dict() for h in result.suggestions],
                },
                indent=2,
            )
        )
        return
    if result.answered and result.entry:
        click.secho(
            f"{result.entry.question}  [{result.entry.id}, score {result.score:.2f}]", bold=True
        )
        click.echo()
        click.echo(result.entry.answer.rstrip())
        if result.entry.demo:
            click.echo(f"\nDemo: askta sandbox run {result.entry.demo}")
    else:
        click.secho("Not answered yet: this would go to the TAs' review queue.", bold=True)
        click.echo(f"Why: {result.reason}.")
    if result.suggestions:
        click.echo("\nClosest entries:")
        for h in result.suggestions:
            click.echo(f"  {h.score:.2f}  {h.entry_id}: {h.question}")


@click.command(name="eval")
@click.argument(
    "file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--calibrate", is_flag=True, help="Also search the best score/margin thresholds.")
@click.option(
    "--leave-one-out",
    is_flag=True,
    help="Instead of a file, ask each alternate question with it held out of the index.",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="With FILE as the dev set: import benchmarks/data's pages into a copy of the KB, "
    "ask paraphrases, near-topic questions and removed entries' questions, cross-fit the "
    "confidence model; prints today's rule against it, on questions it was not fitted on.",
)
@click.option("--fit", is_flag=True, help="With --fresh: write indexer/decision.json.")
@click.pass_context
@handle_errors
def evaluate_cmd(
    ctx: click.Context, file: Path | None, as_json: bool, calibrate: bool, leave_one_out: bool,
    fresh: bool, fit: bool,
) -> None:
    """Score a labeled question file ({q: ..., expect: id|null} items).

    \b
    Example:
      askta eval ../shared/data/dev_questions.yaml --calibrate
      askta eval --leave-one-out
      askta eval ../shared/data/dev_questions.yaml --fresh
    """
    from dataclasses import asdict

    from indexer.evaluate import calibrate as run_calibration
    from indexer.evaluate import leave_one_out as run_leave_one_out
    from indexer.evaluate import load_labeled, outcome, score

    if (file is None) == (not leave_one_out):
        raise click.UsageError("give a labeled question FILE, or --leave-one-out")
    if fit and not fresh:
        raise click.UsageError("--fit goes with --fresh")
    if fresh:
        from server.cli.fresh import run_fresh

        run_fresh(settings_of(ctx), file, fit=fit, as_json=as_json)  # type: ignore[arg-type]
        return
    searcher = open_searcher_for(settings_of(ctx))
    if leave_one_out:
        report = run_leave_one_out(searcher)
        outcomes = []
    else:
        items = load_labeled(file)  # type: ignore[arg-type]
        outcomes = [outcome(item, searcher.search(item.question, k=10)) for item in items]
        report = score(outcomes)
    cal = run_calibration(outcomes, searcher.thresholds) if calibrate and outcomes else None
    if as_json:
        data = report.to_dict()
        if cal:
            data["calibration"] = asdict(cal)
        data["thresholds"] = asdict(searcher.thresholds)
        click.echo(json.dumps(data, indent=2))
    else:
        t = searcher.thresholds
        click.echo(
            f"{report.total} questions ({report.answerable} answerable), thresholds: "
            f"score {t.score}, margin {t.margin}"
        )
        for label, value in (
            ("top-1", report.top1),
            ("MRR", report.mrr),
            ("answered precision", report.answered_precision),
            ("answered rate", report.answered_rate),
            ("route accuracy", report.route_accuracy),
            ("overall answer-or-route", report.overall),
        ):
            click.echo(f"  {label:<24} {value:.4f}")
        if report.wrong:
            click.echo("\nMistakes:")
            for o in report.wrong:
                got = o.answer or f"routed (top {o.top or '-'})"
                click.echo(
                    f"  {o.score:.2f} {o.margin:.2f}  expected {o.expect or 'route'}, "
                    f"got {got}: {o.question}"
                )
        if cal:
            click.echo(
                f"\nCalibrated: score {cal.score} (equally good from {cal.score_range[0]} "
                f"to {cal.score_range[1]}), margin {cal.margin}: overall {cal.overall}, "
                f"answered precision {cal.answered_precision}"
            )
    sys.exit(0 if report.total else ExitCode.FAILED)


@click.command()
@click.option("--demos", is_flag=True, help="Also run every demo in the sandbox.")
@click.option("--overlaps", is_flag=True,
              help="Also list pairs of entries close enough to be confused (loads the model).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
@handle_errors
def check(ctx: click.Context, demos: bool, overlaps: bool, as_json: bool) -> None:
    """Validate every entry in kb/ (and with --demos, run every demo), and the session key
    if one is set or kept in the data dir.

    Errors name the file, the line and the field. With --overlaps, also the pairs of
    entries a student's wording can flip between (exit 1 if there are any).

    \b
    Example:
      askta check --overlaps
    """

    settings = settings_of(ctx)
    kb = KnowledgeBase.load(settings.kb_dir)
    param_problems = demo_param_problems(kb)
    if param_problems:
        raise KnowledgeBaseError(param_problems)
    check_secret_key(settings)
    failures: list[dict[str, Any]] = []
    ran = 0
    if demos:
        results = check_demos(settings, kb)
        ran = len(results)
        for demo, result in results:
            if result.status != "ok" or result.exit_code != 0:
                tail = "\n".join(result.stderr.strip().splitlines()[-6:])
                failures.append(
                    {
                        "demo": demo,
                        "status": result.status,
                        "exit_code": result.exit_code,
                        "stderr": tail,
                    }
                )
    pairs = searcher_overlaps(open_searcher_for(settings)) if overlaps else []
    ok = not failures and not pairs
    if as_json:
        data: dict[str, Any] = {"ok": ok, "entries": len(kb), "demos_run": ran,
                                "failures": failures}
        if overlaps:
            data["overlaps"] = [o.to_dict() for o in pairs]
        click.echo(json.dumps(data))
    else:
        for f in failures:
            click.echo(
                f"{f['demo']}: {f['status']} (exit {f['exit_code']})\n{f['stderr']}", err=True
            )
        extra = f", {ran} demos ran" if demos else ""
        if ok:
            extra += ", no confusable entries" if overlaps else ""
            click.echo(f"ok, {len(kb)} entries ({len(kb.published())} published){extra}")
        if pairs:
            valid = "" if failures else f"valid, {len(kb)} entries{extra}; "
            echo_overlaps(pairs, f"{valid}{len(pairs)} pairs of entries could be confused:")
    sys.exit(ExitCode.FAILED if not ok else 0)



def demo_param_problems(kb: KnowledgeBase) -> list[Problem]:
    """Each demo's parameter declarations that cannot be used, one problem per demo file
    (its path and line)."""
    from indexer.demo_params import ParamDeclarationError, read_params

    problems: list[Problem] = []
    seen: set[Path] = set()
    for entry in kb.entries.values():
        path = kb.demo_path(entry)
        if path is None or path in seen:
            continue
        seen.add(path)
        try:
            read_params(path)
        except ParamDeclarationError as e:
            problems.append(Problem(kb.display(path), e.line, None,
                                    f"parameter declaration: {e.message}"))
        except (OSError, UnicodeDecodeError) as e:
            problems.append(Problem(kb.display(path), None, None, f"cannot be read ({e})"))
    return problems


@click.command()
def schema() -> None:
    """Print the JSON Schema of an entry file (for editor autocompletion)."""
    from indexer.schema import json_schema

    click.echo(json_schema())


def check_secret_key(settings: Settings) -> None:
    """A session key that `askta serve` would refuse (too short, unreadable) raises
    SecretKeyError now; none yet is fine, serve makes one."""
    from server.web.sessions import KEY_FILE, secret_key

    if settings.secret_key is not None or (settings.data_dir / KEY_FILE).exists():
        secret_key(settings)


def check_demos(settings: Settings, kb: KnowledgeBase) -> list[tuple[str, RunResult]]:
    """Run every demo an entry points to (each once) in the sandbox; (demo path, result)
    per demo in path order. Raises SandboxUnavailable if the sandbox cannot run here."""
    from server.sandbox import SandboxRunner

    demos: dict[str, Path] = {}
    for entry in kb.entries.values():
        try:
            path = kb.demo_path(entry)
        except DemoPathError as e:  # changed on disk since the KB was loaded
            raise KnowledgeBaseError([Problem(kb.display(kb.path_of(entry.id)), None, "demo",
                                              str(e))]) from None
        if path is not None:
            demos.setdefault(str(entry.demo), path)
    if not demos:
        return []
    cfg = settings.sandbox_config()
    # as many warm workers as there are slots; the pool refills while demos run
    cfg = dataclasses.replace(cfg, pool_size=min(len(demos), cfg.max_concurrent),
                              gpu_pool_size=0, queue_size=len(demos))
    with SandboxRunner(cfg) as runner:
        runner.start()

        def one(item: tuple[str, Path]) -> tuple[str, RunResult]:
            name, path = item
            code = path.read_text(encoding="utf-8")
            return name, runner.run(code, settings.sandbox_device, filename=path.name)

        with ThreadPoolExecutor(max_workers=cfg.max_concurrent) as pool:
            return list(pool.map(one, sorted(demos.items())))
