"""`askta eval FILE --fresh`: the decision on a week nobody tuned (server/evaluation.py)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from indexer.decision import BUNDLED
from indexer.embedders import load_embedder
from indexer.evaluate import load_labeled
from server.config import Settings
from server.evaluation import collect, fit_and_report

COLUMNS = ("top1", "answered_precision", "answered_rate", "route_accuracy")


def run_fresh(settings: Settings, dev_file: Path, *, fit: bool, as_json: bool) -> None:
    """Ask every set, cross-fit the model, print today's rule against it; with `fit`,
    write the model fitted on every set to indexer/decision.json."""
    embedder = load_embedder(settings.model, settings.encoder)
    asked = collect(settings.kb_dir, embedder, load_labeled(dev_file))
    result = fit_and_report(asked, embedder.name)
    assert result.model is not None
    if fit:
        result.model.save(BUNDLED)
    if as_json:
        click.echo(json.dumps({
            "model": embedder.name,
            "rule": {k: asdict(v) for k, v in result.baseline.items()},
            "fitted_out_of_fold": {k: asdict(v) for k, v in result.fitted.items()},
            "gated_out_of_fold": {k: asdict(v) for k, v in result.gated.items()},
            "answer_at": result.model.answer_at, "near_at": result.model.near_at,
            "gate_at": result.model.gate_at,
            "decides": result.model.decides, "written": str(BUNDLED) if fit else None,
        }, indent=2))
        return
    click.echo(f"model {embedder.name}; figures of the fitted model are out of fold "
               f"(each question decided by a model fitted without its group)")
    head = "".join(f"{c:>22}" for c in COLUMNS)
    click.echo(f"{'set':<24}{'n':>5}  {'decision':<9}{head}")
    for name, base in result.baseline.items():
        for label, fig in (("rule", base), ("gated", result.gated[name]),
                           ("fitted", result.fitted[name])):
            values = "".join(f"{getattr(fig, c):>22.4f}" for c in COLUMNS)
            click.echo(f"{name:<24}{fig.questions:>5}  {label:<9}{values}")
    verdict = "replaces" if result.model.decides else "does not replace"
    click.echo(f"\nthe fitted model {verdict} the score and margin rule "
               f"(answer at p >= {result.model.answer_at:.3f}, near miss at "
               f"p >= {result.model.near_at:.3f})")
    gate = result.model.gate_at
    click.echo(f"the rule answers only at p >= {gate:.3f} too" if gate else
               "no gate: out of fold it would cost the rule answers on the bundled KB")
    if fit:
        click.echo(f"wrote {BUNDLED}")
