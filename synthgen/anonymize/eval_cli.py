"""``synthgen eval-pii``: how well the text anonymization finds PII in a user's labelled sample."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

out = Console()


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
