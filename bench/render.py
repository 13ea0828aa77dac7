"""Render bench/results/*.json into docs/benchmarks.md (one table per benchmark).

``python -m bench.render`` — run after ``python -m bench``; the figures are the JSON's, unedited.
``python -m bench.render NAME ...`` re-renders only the sections of ``bench/results/NAME.json``.
Prose about a result goes in ``bench/notes/NAME.md`` and follows its table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.harness import BENCH_DIR, RESULTS_DIR

DOC = BENCH_DIR.parent / "docs" / "benchmarks.md"
NOTES_DIR = BENCH_DIR / "notes"


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list) and value and all(isinstance(v, int | float) for v in value):
        out.append((prefix, ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten(f"{prefix}[{i}]", v, out)
    elif isinstance(value, float):
        out.append((prefix, f"{value:.4g}"))
    else:
        out.append((prefix, str(value)))


def render() -> str:
    lines = [
        "# Benchmarks",
        "",
        "Measured on the CI machine kind (2 CPU cores, 24 GB, no GPU) unless a result says otherwise.",
        "Each benchmark measures its named baseline in the same run. Regenerate with",
        "`python -m bench NAME` then `python -m bench.render`; the raw JSON is in `bench/results/`.",
        "",
    ]
    for path in sorted(RESULTS_DIR.glob("*.json")):
        if path.stem.endswith("-quick"):
            continue
        lines += section(path)
    return "\n".join(lines)


def section(path: Path) -> list[str]:
    """One result file's section: heading, run line, the figures, then its notes if any."""
    data = json.loads(path.read_text())
    machine = data.get("machine", {})
    lines = [
        f"## {data.get('benchmark', path.stem)}",
        "",
        f"Run {data.get('when', '?')} on {machine.get('cpu_count', '?')} cores, "
        f"Python {machine.get('python', '?')}; wall {data.get('wall_s', '?')} s. "
        f"Raw: `{path.relative_to(BENCH_DIR.parent)}`.",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    rows: list[tuple[str, str]] = []
    _flatten("", data.get("results", {}), rows)
    lines += [f"| {k} | {v.replace('|', '/')} |" for k, v in rows]
    lines.append("")
    notes = NOTES_DIR / f"{path.stem}.md"
    if notes.is_file():  # prose kept beside the figures (what they mean, what they leave out)
        lines += [notes.read_text().strip(), ""]
    return lines


def splice(doc: str, stems: list[str]) -> str:
    """``doc`` with the sections of ``stems`` (result file names) rendered anew, the rest as is.

    A section already in ``doc`` is replaced where it stands; a new one goes before the first
    section whose heading sorts after its own.
    """
    head, *chunks = (c.rstrip("\n") + "\n" for c in doc.split("\n## "))
    for stem in stems:
        fresh = "\n".join(section(RESULTS_DIR / f"{stem}.json"))[len("## ") :].rstrip("\n") + "\n"
        raw = f"Raw: `bench/results/{stem}.json`"
        at = next((i for i, c in enumerate(chunks) if raw in c), None)
        if at is not None:
            chunks[at] = fresh
            continue
        title = fresh.split("\n", 1)[0]
        at = next((i for i, c in enumerate(chunks) if c.split("\n", 1)[0] > title), len(chunks))
        chunks.insert(at, fresh)
    return "\n## ".join([head, *chunks])


if __name__ == "__main__":
    import sys

    # ``python -m bench.render NAME ...`` re-renders only those results' sections.
    DOC.write_text(splice(DOC.read_text(), sys.argv[1:]) if sys.argv[1:] else render())
    print(f"wrote {DOC}")
