"""Arguments and options that several command groups share."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated, Any

import typer

SpecArg = Annotated[Path, typer.Argument(help="Pipeline spec (YAML).", show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", metavar="KEY=VALUE", help="Override a spec value: key.path=value (repeatable)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _default_user() -> str:
    try:
        return os.environ.get("SYNTHGEN_USER") or getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "unknown"


UserOpt = Annotated[
    str,
    typer.Option(
        "--user",
        "-u",
        envvar="SYNTHGEN_USER",
        default_factory=_default_user,
        help="Who is acting (policy user). Default: $SYNTHGEN_USER, else your login name.",
        show_default=False,
    ),
]


def load(spec: Path, overrides: list[str] | None) -> Any:
    """The spec at ``spec`` with ``--set`` overrides applied."""
    from synthgen.spec import load_spec

    return load_spec(spec, overrides or [])


#: Most local anonymize processes (each loads spaCy: a few hundred MB).
MAX_WORKERS = 64


def _workers(value: int) -> int:
    # A SpecError, not click's range check: one line on stderr and exit 2, like every usage error.
    from synthgen.errors import SpecError

    if not 1 <= value <= MAX_WORKERS:
        raise SpecError(
            f"--workers must be between 1 and {MAX_WORKERS} (got {value}): "
            "processes anonymizing snapshot parts"
        )
    return value


WorkersOpt = Annotated[
    int,
    typer.Option(
        "--workers",
        "-w",
        callback=_workers,
        help="Local processes that anonymize the snapshot's parts (ingest.part_rows rows each) "
        "in parallel; the output is the same for any number.",
    ),
]
