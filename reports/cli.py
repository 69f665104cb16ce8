"""`changeline report CAMPAIGN_ID`: (re)build a campaign's evidence report from its stored records."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def report(
    campaign_id: Annotated[str, typer.Argument(help="the campaign id (as given to or printed by `changeline run`)")],
    out: Annotated[Optional[str], typer.Option("--out", "-o",
                                               help="output directory (default: <CHANGELINE_HOME>/runs/ID/report)")] = None,
) -> None:
    """Write the campaign's HTML and JSON report and per-NE evidence packs; print their paths."""
    from changeline.arguments import Arguments
    from changeline.reports.build import build_campaign_report

    args = Arguments()
    args.name("CAMPAIGN_ID", campaign_id)
    args.done()
    paths = build_campaign_report(campaign_id, out_dir=Path(out) if out else None)
    typer.echo(f"HTML report:    {paths.html}")
    typer.echo(f"JSON report:    {paths.json}")
    typer.echo(f"Evidence packs: {paths.evidence_dir}")
