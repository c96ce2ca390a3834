"""``maskpipe audit``: verify a published output and re-scan it for PII and canaries."""
from __future__ import annotations

import json
from typing import List, Optional

import typer

from maskpipe.cli.common import app, fail


@app.command()
def audit(
    output: str = typer.Argument(..., help="A finished output folder (or its manifest.json)."),
    canaries: Optional[str] = typer.Option(None, "--canaries", help="File with one canary string per line: report "
                                           "every file and member holding one."),
    fields: Optional[List[str]] = typer.Option(None, "--fields", help="Member fields to scan for PII (body, body.txt, "
                                               "(key)); repeatable or comma-separated. Default: every text member and key."),
    no_pii: bool = typer.Option(False, "--no-pii", help="Skip the PII re-scan (integrity and canaries only)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, help="Worker processes (default: the CPUs)."),
    limit: int = typer.Option(100, "--limit", min=1, help="Findings listed per check (counts are always complete)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Verify a published output and re-scan it for PII and canaries (locators only, never values).

    Verifies every shard against the manifest (size, sha256, samples), finds files outside the
    manifest and bookkeeping, re-scans every text member, key and file for PII (all rule-based
    entities) and, with --canaries, for the given strings. Exit 0: all verified, nothing found;
    8: integrity or unlisted files; 16: PII found; 32: a canary found (added up when several);
    2: bad --canaries file; 4: not a finished output.
    """
    try:
        from maskpipe.audit import audit as audit_

        flds = [f.strip() for item in fields or [] for f in item.split(",") if f.strip()] or None
        res = audit_(output, canaries=canaries, fields=flds, jobs=jobs, limit=limit, pii=not no_pii)
    except Exception as e:  # noqa: BLE001 - fail() prints ours as one line, others by type only
        fail(e, debug)
        return
    typer.echo(json.dumps(res.to_json(), indent=1) if json_out else res.text())
    raise typer.Exit(res.exit_code)
