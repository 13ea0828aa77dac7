"""The ``synthgen`` command line (Typer + Rich): the app, its command groups, and error handling.

Errors are one line on stderr; the exit code says what happened:
0 ok, 1 failure, 2 usage or spec error, 3 access denied. ``--debug`` shows tracebacks.

One module per command group: :mod:`.stages` (ingest ... publish, run, demo), :mod:`.spec`,
:mod:`.catalog`, :mod:`.budget`, :mod:`.keys`, :mod:`.policy`, :mod:`.audit`,
:mod:`.data` (read, report, inspect) and :mod:`.pii` (scan-pii, eval-pii).
"""

from __future__ import annotations

import sys
import warnings
from typing import Annotated, Any

import typer

from synthgen.cli import data, help_style, pii, stages
from synthgen.cli.audit import audit_app
from synthgen.cli.budget import budget_app
from synthgen.cli.catalog import catalog_app
from synthgen.cli.console import err, out, plain, progress_bars
from synthgen.cli.keys import keys_app
from synthgen.cli.policy import policy_app
from synthgen.cli.spec import spec_app
from synthgen.errors import SynthgenError

__all__ = ["app", "err", "main", "out", "progress_bars"]

# Typer >= 0.29 vendors click; older releases raise click's own exceptions.
_CLICK_ERRORS: tuple[type[Exception], ...] = (typer.BadParameter.__mro__[2],)  # ClickException
try:
    import click as _click

    _CLICK_ERRORS += (_click.ClickException,)
except ImportError:  # pragma: no cover
    pass

app = typer.Typer(
    name="synthgen",
    help="Privacy-preserving synthetic data: anonymize with Presidio, train DP models with Opacus, "
    "publish encrypted datasets under role-based policies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # --install-completion / --show-completion for bash, zsh, fish and PowerShell.
    add_completion=True,
    cls=help_style.WorkflowGroup,
)
# `synthgen --help` lists the commands in the order a user works, panel by panel: set up (try
# the demo, write a spec, a data steward creates the role keys), the stages in pipeline order
# and `run` (all of them), then the results (read, report, inspect), the administration groups
# and the PII tools. WORKFLOW is that order; the registrations below follow it.
_SETUP, _STAGES, _RESULTS = "Set up", "Pipeline stages, in order", "Results"
_ADMIN, _PII = "Administration", "PII tools"
WORKFLOW: tuple[tuple[str, tuple[str, ...]], ...] = (
    (_SETUP, ("demo", "spec", "keys")),
    (_STAGES, ("ingest", "anonymize", "train", "generate", "evaluate", "publish", "run")),
    (_RESULTS, ("read", "report", "inspect")),
    (_ADMIN, ("budget", "policy", "audit", "catalog")),
    (_PII, ("scan-pii", "eval-pii")),
)
app.command(rich_help_panel=_SETUP)(stages.demo)
app.add_typer(spec_app, name="spec", rich_help_panel=_SETUP)
app.add_typer(keys_app, name="keys", rich_help_panel=_SETUP)
for _stage in (
    stages.ingest,
    stages.anonymize,
    stages.train,
    stages.generate,
    stages.evaluate,
    stages.publish,
    stages.run,
):
    app.command(rich_help_panel=_STAGES)(_stage)
app.command("read", rich_help_panel=_RESULTS)(data.read_cmd)
app.command("report", rich_help_panel=_RESULTS)(data.report_cmd)
app.command("inspect", rich_help_panel=_RESULTS)(data.inspect_cmd)
app.add_typer(budget_app, name="budget", rich_help_panel=_ADMIN)
app.add_typer(policy_app, name="policy", rich_help_panel=_ADMIN)
app.add_typer(audit_app, name="audit", rich_help_panel=_ADMIN)
app.add_typer(catalog_app, name="catalog", rich_help_panel=_ADMIN)
app.command("scan-pii", rich_help_panel=_PII)(pii.scan_pii)
app.command("eval-pii", rich_help_panel=_PII)(pii.eval_pii_cmd)
help_style.WorkflowGroup.order = tuple(name for _, names in WORKFLOW for name in names)
help_style.apply()

_state: dict[str, Any] = {"debug": False}


def _print_version(value: bool) -> None:
    if value:
        from synthgen import __version__

        out.print(f"synthgen {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    _state["debug"] = debug


# -- entry point ----------------------------------------------------------------


def _one_line(exc: BaseException | str, limit: int = 400) -> str:
    """An error as one line of at most ``limit`` characters: a message never reprints a large input."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unexpected(exc: BaseException) -> str:
    """An unexpected error's line; a database error without its SQL text and parameters (row values)."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError) and exc.orig is not None:
        first = str(exc.orig).splitlines()[0] if str(exc.orig) else ""
        return _one_line(f"catalog database error: {type(exc.orig).__name__}: {first}")
    return f"{type(exc).__name__}: {_one_line(exc)}"


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the app, turning synthgen errors into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    if not debug:
        # Library warnings (Opacus, SDV, torch) are for developers; --debug shows them. The one
        # that matters for privacy (Opacus's non-cryptographic noise RNG) is documented in the README.
        warnings.filterwarnings("ignore")
    try:
        # standalone_mode=False makes click *return* a typer.Exit's code instead of exiting with it.
        code = app(args=args, standalone_mode=False)
    except SynthgenError as exc:
        if debug:
            raise
        err.print(f"[red]error:[/red] {plain(_one_line(exc))}", highlight=False)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        err.print("aborted")
        raise SystemExit(130) from None
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", None)
        if code is None:
            code = exc.code if isinstance(exc, SystemExit) else 0
        raise SystemExit(code) from None
    except Exception as exc:
        if isinstance(exc, _CLICK_ERRORS):
            exc.show()  # type: ignore[attr-defined]
            raise SystemExit(exc.exit_code) from None  # type: ignore[attr-defined]
        if debug:
            raise
        err.print(
            f"[red]error:[/red] {plain(_unexpected(exc))} (run with --debug for the traceback)",
            highlight=False,
        )
        raise SystemExit(1) from None
    if isinstance(code, int) and code != 0:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
