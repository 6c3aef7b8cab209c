"""How `askta check --overlaps` and `askta import` print confusable entries."""

from __future__ import annotations

import click

from indexer.overlaps import Overlap


def echo_overlaps(overlaps: list[Overlap], heading: str) -> None:
    """Each confusable pair, then the phrasings that flip between its entries."""
    if not overlaps:
        return
    click.echo(heading)
    for o in overlaps:
        click.echo(f"  {o.a} ~ {o.b}  (up to {o.score:.2f})")
        for f in o.flips:
            own = f"{f.own_score:.2f}" if f.own_score > -1 else "none"
            click.echo(f'    "{f.phrasing}" ({f.entry_id}) lands on {f.nearest}: '
                       f"{f.nearest_score:.2f} against {own} for its own entry")
    click.echo("Sharpen them: a more specific question, an alternate moved to the entry "
               "it belongs to, or a pointer from one answer to the other.")
