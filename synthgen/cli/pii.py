"""PII tools: ``synthgen scan-pii`` (what Presidio finds in a file) and ``synthgen eval-pii``
(how well the text anonymization finds PII in a user's labelled sample)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from synthgen.cli.console import out
from synthgen.cli.options import JsonOpt
from synthgen.errors import SpecError


def eval_pii_cmd(
    labelled: Annotated[
        Path, typer.Argument(help='JSON Lines: {"text": ..., "spans": [{"start", "end", "type"}]} per line.')
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    predictions: Annotated[
        Path | None,
        typer.Option(
            "--predictions", help="Write the predicted spans here (same format, one line per input line)."
        ),
    ] = None,
    config: Annotated[
        str | None, typer.Option(help="Presidio analyzer config (YAML); default: the shipped one.")
    ] = None,
    threshold: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="Minimum Presidio score.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Documents per spaCy batch.")] = 256,
) -> None:
    """Measure PII detection on labelled text: character precision and recall per entity type.

    Runs exactly the pipeline's text analysis (same config, batching and span merging). Recall of
    a type is the share of its labelled characters inside any detected span; precision is the
    share of characters detected as that type that lie inside any labelled span. Whitespace is
    not counted. The labelled text is real data: keep the file and the predictions restricted.
    """
    from synthgen.anonymize.evaluate import evaluate_file
    from synthgen.anonymize.settings import AnonymizeSettings

    settings = AnonymizeSettings(config=config, threshold=threshold, batch_size=batch_size)
    res = evaluate_file(labelled, settings=settings, predictions=predictions)
    if as_json:
        sys.stdout.write(json.dumps(res, indent=2) + "\n")
        return
    _print(res, labelled)


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def _print(res: dict[str, Any], labelled: Path) -> None:
    table = Table(
        "entity", "precision", "recall", "gold chars", "predicted chars",
        title=f"PII detection on {labelled} ({res['docs']:,} docs, {res['docs_per_s']} docs/s, "
        f"model {res['spacy_model']})",
    )  # fmt: skip
    types = list(res["by_type"].items())
    for k, (ent, b) in enumerate(types):
        table.add_row(
            ent, _f(b["precision"]), _f(b["recall"]), str(b["gold_chars"]), str(b["predicted_chars"]),
            end_section=k == len(types) - 1,
        )  # fmt: skip
    for label, key in (("direct identifiers", "direct_identifiers"), ("all types", "all")):
        b = res[key]
        table.add_row(
            f"[bold]{label}[/bold]", _f(b["precision"]), _f(b["recall"]), str(b["gold_chars"]),
            str(b["predicted_chars"]),
        )  # fmt: skip
    out.print(table)


def scan_pii(
    file: Annotated[Path, typer.Argument(help="A CSV, Parquet or JSON Lines file.", show_default=False)],
    limit: Annotated[int, typer.Option(min=1, help="Non-empty values analysed per column.")] = 1000,
    config: Annotated[str | None, typer.Option(help="Presidio analyzer config (YAML).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the PII entities Presidio finds in each column of a file."""
    import polars as pl

    from synthgen.anonymize import scan_pii as scan
    from synthgen.errors import SourceError

    if not file.is_file():
        raise SourceError(f"file not found: {file}")
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".parquet", ".jsonl", ".ndjson"):
        raise SpecError(f"{file}: unsupported file type {file.suffix!r}; use .csv, .parquet or .jsonl")
    try:
        if suffix == ".csv":
            frame = pl.read_csv(file, n_rows=limit * 4)
        elif suffix == ".parquet":
            frame = pl.scan_parquet(file).head(limit * 4).collect()
        else:
            frame = pl.read_ndjson(file, n_rows=limit * 4)
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read {file}: {str(exc).strip().splitlines()[0]}") from None
    found = scan(frame, config=config, limit=limit)
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return
    table = Table("column", "entities found", title=f"PII in {file} (first {limit:,} values per column)")
    for col, ents in found.items():
        table.add_row(col, ", ".join(f"{k}: {v}" for k, v in ents.items()) or "-")
    out.print(table)
