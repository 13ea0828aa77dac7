"""``synthgen inspect DATASET``: the shareable manifest as anyone holding the file sees it.

No key, no policy check, no audit entry: the manifest sits unencrypted in the envelope
header, so this shows exactly what a copy of the file discloses. It is *not* authenticated
here (its authentication is the segment tags, which need the data key); the output says so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from synthgen.errors import SpecError

out = Console()

UNVERIFIED = "not checked: the manifest is read from the header without a key; `synthgen read` verifies it"


def _envelope_path(dataset: str) -> Path:
    """A file path as given, else the catalogued synthetic dataset of that name or id."""
    candidate = Path(dataset)
    if candidate.is_file():
        return candidate
    from synthgen.catalog import Catalog
    from synthgen.zones import Zones

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
    return Zones.from_env().synthetic.resolve(ds.path)


def read_manifest(path: Path) -> dict[str, Any]:
    """The envelope header's manifest, unverified."""
    from synthgen.crypto.envelope import read_header
    from synthgen.errors import CryptoError

    try:
        with open(path, "rb") as fh:
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
    table = Table("field", "value", title=str(path), title_justify="left")
    for key, value in sorted(manifest.items()):
        table.add_row(key, value if isinstance(value, str) else json.dumps(value, sort_keys=True))
    out.print(table)
    out.print(f"authentication: {UNVERIFIED}", highlight=False)
