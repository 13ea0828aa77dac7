"""``synthgen audit``: verify the hash-chained audit trail."""

from __future__ import annotations

import typer

from synthgen.cli.console import err, out, plain

audit_app = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the keyed audit chain (JSONL file, catalog copy, catalog anchor); exit 1 if anything was
    edited, deleted, inserted or cut. Needs the platform secret (the chain's key)."""
    from synthgen.catalog import Catalog
    from synthgen.errors import AuditError
    from synthgen.policy import verify_audit

    report = verify_audit(Catalog.from_env())
    if report.ok:
        out.print(f"{report.summary()} (head {report.head})", highlight=False)
        return
    for problem in report.problems:
        err.print(plain(str(problem)), highlight=False)
    raise AuditError(report.summary())
