"""Data commands: ``synthgen read``, ``synthgen report`` and ``synthgen inspect``.

``read`` and ``report`` are policy-checked and audited (:mod:`synthgen.access`); a denied
access raises :class:`synthgen.errors.AccessDenied` (exit code 3).

``inspect DATASET`` shows the shareable manifest as anyone holding the file sees it: no key,
no policy check, no audit entry. The manifest sits unencrypted in the envelope header, so
this shows exactly what a copy of the file discloses. It is *not* authenticated here (its
authentication is the segment tags, which need the data key); the output says so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from synthgen.cli.console import out, plain
from synthgen.cli.options import UserOpt
from synthgen.errors import SpecError

UNVERIFIED = "not checked: the manifest is read from the header without a key; `synthgen read` verifies it"


def _envelope_path(dataset: str) -> Path | str:
    """A file path as given, else the catalogued synthetic dataset of that name or id."""
    candidate = Path(dataset)
    if candidate.is_file():
        return candidate
    from synthgen.catalog import Catalog
    from synthgen.zones import Zone, Zones

    catalog = Catalog.from_env()
    try:
        ds = catalog.find_dataset(dataset, zone="synthetic")
    finally:
        catalog.dispose()
    if ds is None:
        raise SpecError(
            f"{dataset!r} is neither a file nor a published dataset; list them with "
            "`synthgen catalog list --zone synthetic`"
        )
    zone = Zones.from_env().synthetic
    return zone.resolve(ds.path) if isinstance(zone, Zone) else zone.uri(ds.path)


def read_manifest(path: Path | str) -> dict[str, Any]:
    """The envelope header's manifest, unverified (an object-store URL is read through its zone)."""
    from synthgen.crypto.envelope import read_header
    from synthgen.errors import CryptoError

    try:
        if isinstance(path, Path):
            with open(path, "rb") as fh:
                header = read_header(fh)
        else:
            from synthgen.zones import Zones

            with Zones.from_env().synthetic.open(path, "rb") as fh:
                header = read_header(fh)
    except OSError as exc:
        raise SpecError(f"cannot open {path}: {exc.strerror}") from None
    except CryptoError as exc:
        raise CryptoError(f"{path}: {exc}") from None
    return header.manifest


def inspect_cmd(
    dataset: Annotated[
        str, typer.Argument(help="An encrypted dataset file, or a published dataset's name/id.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print a published dataset's shareable manifest, as any holder of the file sees it (no key)."""
    path = _envelope_path(dataset)
    manifest = read_manifest(path)
    if as_json:
        doc = {"file": str(path), "authentication": UNVERIFIED, "manifest": manifest}
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return
    # The manifest is unauthenticated (any holder of the file can write it): printed as plain text.
    table = Table("field", "value", title=plain(path), title_justify="left")
    for key, value in sorted(manifest.items()):
        table.add_row(
            plain(key), plain(value if isinstance(value, str) else json.dumps(value, sort_keys=True))
        )
    out.print(table)
    out.print(f"authentication: {UNVERIFIED}", highlight=False)


def read_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset name (newest version) or id.")],
    user: UserOpt,
    out_path: Annotated[
        str | None,  # as typed: Path() would drop a trailing '/'
        typer.Option(
            "--out",
            "-o",
            help="Write the decrypted data to this new file (outside the zones; never overwritten).",
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", "-f", help="parquet | csv (with --out; default: its suffix)."),
    ] = None,
    rows: Annotated[int, typer.Option("--rows", help="Rows to print without --out.")] = 10,
) -> None:
    """Decrypt a published dataset you may read: policy check, key unwrap, verification, audit."""
    from synthgen.access import read_dataset, read_to_file
    from synthgen.errors import SpecError

    if fmt is None:  # `--out f.csv` means CSV: parquet bytes under a .csv name read as garbage
        fmt = "csv" if out_path is not None and out_path.lower().endswith(".csv") else "parquet"
    if fmt not in ("parquet", "csv"):
        raise SpecError(f"--format {fmt!r}: expected parquet or csv")
    if out_path is not None:
        path = read_to_file(dataset, user=user, out=out_path, format=fmt)  # type: ignore[arg-type]
        out.print(f"wrote {plain(path)}", highlight=False)
        return
    frame = read_dataset(dataset, user=user)
    out.print(f"{plain(dataset)}: {frame.height:,} rows x {frame.width} columns", highlight=False)
    out.print(plain(frame.head(rows)), highlight=False)


def report_cmd(
    name: Annotated[str, typer.Argument(help="Pipeline name or report id.")],
    user: UserOpt,
    out_path: Annotated[
        str | None, typer.Option("--out", "-o", help="Copy the report to this new file (never overwritten).")
    ] = None,
) -> None:
    """Open a restricted evaluation report (policy-checked, audited): prints its path or copies it."""
    from synthgen.access import read_report

    out.print(str(read_report(name, user=user, out=out_path)), highlight=False)
