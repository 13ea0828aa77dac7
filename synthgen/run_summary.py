"""What `synthgen run` and `synthgen demo` print at the end: facts, a verdict in words, and paths.

A table of 25 raw metric keys leaves a newcomer guessing; this summary says what was made,
whether the report judged it fit for use (its verdict, see :mod:`synthgen.evaluate.verdict`)
and what to look at first, then prints every path on its own line (never cut to fit a
terminal) with the exact command that opens the report.

The figures beside the verdict come from the evaluation report, which compares with real
rows: like the report they are for the person who ran the pipeline, not for recipients of
the synthetic dataset (P9).
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass
class RunSummary:
    title: str
    #: (label, value) rows of the table.
    facts: list[tuple[str, str]] = field(default_factory=list)
    verdict: str | None = None
    verdict_words: str = ""
    look_first: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: (label, path): printed on their own lines.
    paths: list[tuple[str, str]] = field(default_factory=list)
    open_command: str | None = None


def open_command(path: str | Path) -> str:
    """The shell command that opens ``path`` in the desktop's browser on this platform."""
    quoted = shlex.quote(str(path))
    if sys.platform == "darwin":
        return f"open {quoted}"
    if sys.platform.startswith("win"):
        return f'start "" "{path}"'
    return f"xdg-open {quoted}"


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _report_summary(ev: Any, zones: Any = None) -> dict[str, Any]:
    from synthgen.zone_io import is_remote, read_bytes, sibling

    where = ev.extra.get("summary_path") or sibling(ev.path, "summary.json")
    if is_remote(where):  # a real zone on an object store
        try:
            return dict(json.loads(read_bytes(zones, where).decode("utf-8")))
        except (OSError, ValueError):
            return {}
    path = Path(where)
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def build(spec: Any, ctx: Any, results: dict[str, Any], *, title: str) -> RunSummary:
    """Collect the summary of one whole run from the stage results and the catalog."""
    from synthgen.evaluate.verdict import VERDICT_WORDS
    from synthgen.privacy.budget import standing
    from synthgen.source_identity import source_key

    pub, train_r = results["publish"], results["train"]
    model = ctx.catalog.get_dataset(train_r.dataset_id)
    source = (model.extra.get("ledger_source") if model else None) or source_key(spec)
    now = standing(ctx.catalog, source)
    s = RunSummary(title=title)
    eps = train_r.extra.get("epsilon")
    s.facts += [
        ("run", str(results["run_id"])),
        ("dataset", f"{pub.extra.get('name')} ({pub.dataset_id})"),
        ("synthetic rows", _fmt(pub.rows)),
        ("differential privacy", _fmt(pub.extra.get("dp"))),
        # Which model, and for model.kind auto why (the README promises it; only the API's dict had it).
        ("model", str(train_r.extra.get("model", spec.model.kind))),
        ("epsilon this run", "—" if eps is None else _fmt(float(eps))),
        ("budget source (ledger key)", source),
        ("epsilon charged / cap (source)", f"{now.charged_epsilon:.3g} / {now.cap_epsilon:.3g}"),
        ("epsilon remaining", _fmt(float(now.remaining_epsilon))),
    ]
    ev = results.get("evaluate")
    if ev is not None:
        report = _report_summary(ev, ctx.zones)
        rows = report.get("rows") or {}
        if rows:
            s.facts.append(
                (
                    "real rows",
                    f"{rows.get('train', 0):,} trained on, {rows.get('holdout', 0):,} held out (evaluation)",
                )
            )
        head = report.get("headline") or {}
        leak = (report.get("sections") or {}).get("leakage", {}).get("metrics", {})
        for key, label in (
            ("quality_score", "quality score (1 = best)"),
            ("utility_tstr", "TSTR (train synthetic, test real)"),
            ("utility_trtr", "TRTR (train real, test real)"),
            ("dcr_share", "DCR share (0.5 = no memorisation)"),
            ("attack_auc", "membership attack AUC (0.5 = chance)"),
        ):
            if isinstance(head.get(key), int | float):
                s.facts.append((label, _fmt(float(head[key]))))
        found = leak.get("real_values_found")
        if found is not None:
            s.facts.append(
                ("real identifier values in output", f"{found} (leak scan against every source value)")
            )
        spans = leak.get("text_entities_found")
        if spans:
            what = "made up by the text model, none is a real value" if found == 0 else "see the report"
            s.facts.append(("PII-like spans Presidio flags in text", f"{spans} ({what})"))
        s.verdict = report.get("verdict") or ev.extra.get("verdict")
        s.verdict_words = report.get("verdict_words") or {str(k): v for k, v in VERDICT_WORDS.items()}.get(
            str(s.verdict), ""
        )
        s.look_first = list(report.get("look_first") or ev.extra.get("look_first") or [])
        s.paths.append(("report (restricted: compares with real rows)", str(ev.path)))
        s.open_command = open_command(ev.path)
    s.facts += _text_gate_facts(model.extra if model else {})
    s.warnings = [str(w) for w in train_r.extra.get("warnings", [])]
    s.paths.append(("encrypted dataset", str(pub.path)))
    return s


def _text_gate_facts(model_extra: dict[str, Any]) -> list[tuple[str, str]]:
    """A text column that passed the quality gate, as a fact (a failed one is among the warnings).

    The figure is the gate's DP one (no exact figure is stored with the model).
    """
    from synthgen.models.text.gate import GateResult

    out = []
    for info in ((model_extra.get("text") or {}).get("columns") or {}).values():
        gate = info.get("gate")
        if gate and gate.get("checked") and gate.get("passed"):
            out.append(("text quality gate", GateResult.from_dict(gate).line()))
    return out


def render(summary: RunSummary, console: Console, *, extra_facts: dict[str, str] | None = None) -> None:
    """Print the table, the verdict and what to look at, then every path in full on its own line."""
    table = Table(show_header=False, title=summary.title, title_justify="left")
    for label, value in [*summary.facts, *(extra_facts or {}).items()]:
        table.add_row(label, value)
    console.print(table)
    if summary.verdict:
        colour = {"pass": "green", "warn": "yellow", "fail": "red"}.get(summary.verdict, "white")
        console.print(
            f"[bold {colour}]verdict: {summary.verdict.upper()}[/bold {colour}] {summary.verdict_words}",
            soft_wrap=True,
        )
        for item in summary.look_first[:8]:
            console.print(f"  - {item}", soft_wrap=True, highlight=False, markup=False)
        if len(summary.look_first) > 8:
            console.print(f"  ... and {len(summary.look_first) - 8} more in the report", soft_wrap=True)
    for w in summary.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}", soft_wrap=True, highlight=False)
    for label, path in summary.paths:
        console.print(f"{label}:", soft_wrap=True)
        console.print(f"  {path}", soft_wrap=True, highlight=False, markup=False)
    if summary.open_command:
        console.print("open the report:", soft_wrap=True)
        console.print(f"  {summary.open_command}", soft_wrap=True, highlight=False, markup=False)
