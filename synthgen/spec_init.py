"""``synthgen spec init``: a commented starter spec, optionally with the column types of a table.

What goes into the file, and what never does:

- **Types only.** With a data source, each column gets the type the pipeline's own inference
  would give it (:func:`synthgen.sources.infer_schema` on the same first rows that ``ingest``
  samples), and from the same read of storage types ``integer: true`` for a column of whole
  numbers and ``date: true`` for one of calendar dates. Writing them down reads nothing ``run``
  would not read anyway, and with ``privacy.schema: declared`` the run then reads no type from
  real rows at all.
- **No value.** Bounds, category lists, row counts, null flags and example values are
  real-derived: none is written. Each numeric or categorical column gets a commented
  placeholder instead, with a note that a declared bound or category list must be public
  knowledge (a unit's range, a code list): it is then free under DP, while an undeclared one
  is found by a DP mechanism that spends part of epsilon.
- **Identifier columns by name.** A column whose *name* announces an identifier
  (``email``, ``phone``, ``ssn``, ...) or whose inferred type is ``id`` is written with
  ``operator: drop``. Columns are not scanned by value here (that is a read of real values);
  the anonymize stage still scans every column at run time.

The file is refused when it exists (never overwritten) and validates with ``spec validate``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from synthgen.errors import SourceError, SpecError
from synthgen.schema import ColumnType

#: File suffixes and the source kind they read as.
SUFFIX_KINDS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}

#: Rows read to infer types: the same sample ``ingest`` reads for its own inference.
SAMPLE_ROWS = 10_000

#: Bytes of a CSV file read to find its separator and comment lines (the header and a few rows).
_SNIFF_BYTES = 64 * 1024
#: Separators a starter spec recognises, in order of preference on a tie.
_SEPARATORS = ",;\t|"

_BAD_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class StarterColumn:
    name: str
    type: ColumnType
    #: Presidio entity announced by the column's name (a direct identifier), if any.
    pii: str | None = None
    #: A numeric column stored as whole numbers / a datetime column stored as dates (the same
    #: storage-type read as the type itself), written so a declared run keeps them.
    integer: bool = False
    date: bool = False


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass
class StarterSpec:
    """What :func:`init_spec` wrote: the file and the facts behind it (for the CLI's message)."""

    path: Path
    name: str
    source_kind: str | None
    columns: list[StarterColumn] = field(default_factory=list)
    dialect: CsvDialect | None = None

    @property
    def dropped(self) -> list[str]:
        return [c.name for c in self.columns if c.pii is not None or c.type == ColumnType.id]

    @property
    def numeric_names(self) -> int:
        """How many column names are numbers: a first line of data read as the header."""
        return sum(bool(_NUMBER.fullmatch(c.name.strip())) for c in self.columns)


@dataclass(frozen=True)
class CsvDialect:
    """How a CSV file is laid out: read from its first lines (layout, not values, goes in the spec)."""

    separator: str = ","
    #: Lines starting with this are comments (a leading ``# Data source: ...`` line, say).
    comment_prefix: str | None = None

    def source_keys(self) -> dict[str, str]:
        """The spec's ``source`` keys that differ from the defaults."""
        keys = {} if self.separator == "," else {"separator": self.separator}
        if self.comment_prefix is not None:
            keys["comment_prefix"] = self.comment_prefix
        return keys


def sniff_csv(path: Path) -> CsvDialect:
    """The separator and comment marker of a CSV/TSV file, from its first lines.

    Leading lines that start with ``#`` are comments. The separator is the candidate that
    splits the header and the next lines into the same number of fields (more than one),
    ``\\t`` for a ``.tsv`` file whatever it holds.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES).decode("utf-8", errors="replace")
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
    lines = head.splitlines()[:-1] if len(head) == _SNIFF_BYTES else head.splitlines()
    comment = "#" if lines and lines[0].startswith("#") else None
    rows = [ln for ln in lines if ln.strip() and not (comment and ln.startswith(comment))][:20]
    if path.suffix.lower() == ".tsv":
        return CsvDialect(separator="\t", comment_prefix=comment)
    best, best_fields = ",", 1
    for sep in _SEPARATORS:
        counts = {_fields(ln, sep) for ln in rows}
        if len(counts) == 1 and (n := counts.pop()) > best_fields:
            best, best_fields = sep, n
    return CsvDialect(separator=best, comment_prefix=comment)


def _fields(line: str, sep: str) -> int:
    import csv

    return len(next(csv.reader([line], delimiter=sep), []))


def pipeline_name(stem: str) -> str:
    """A valid pipeline name from a file stem (``My visits 2024`` -> ``my-visits-2024``)."""
    name = _BAD_NAME.sub("-", stem.strip().lower()).strip("-._")
    return (name or "my-pipeline")[:100]


def _yaml_str(value: str) -> str:
    """``value`` as a YAML scalar that loads back as the same string."""
    import yaml

    # Double quotes with escapes for anything unprintable: a plain or single-quoted scalar
    # folds a line break into the next line, and the file no longer parses.
    style = None if value.isprintable() else '"'
    dumped = yaml.safe_dump(value, default_flow_style=True, default_style=style, width=10_000)
    return dumped.strip().removesuffix("...").strip()


def _yaml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else _yaml_str(name)


def _source_block(
    kind: str | None,
    *,
    path: str | None,
    url_env: str | None,
    table: str | None,
    sid: str,
    dialect: CsvDialect | None = None,
) -> str:
    if kind is None:
        return (
            "source:\n"
            "  # csv | parquet | jsonl (documents) | sql (url_env, or url + password_env; table or query).\n"
            "  kind: csv\n"
            "  # Relative paths resolve against this file; ${SYNTHGEN_HOME} expands.\n"
            "  path: data.csv\n"
            "  # The privacy ledger's key for this data: every spec naming the same id shares one budget.\n"
            f"  id: {_yaml_str(sid)}\n"
        )
    lines = ["source:", f"  kind: {kind}"]
    if kind == "sql":
        lines.append("  # The environment variable holding the whole URL (credentials stay out of the spec).")
        lines.append(f"  url_env: {url_env}")
        lines.append(f"  table: {_yaml_str(table or '')}")
    else:
        lines.append("  # Relative paths resolve against this file.")
        lines.append(f"  path: {_yaml_str(path or '')}")
        for key, value in (dialect.source_keys() if dialect else {}).items():
            lines.append(f"  {key}: {_yaml_str(value)}")
    lines.append(
        "  # The privacy ledger's key for this data: every spec naming the same id shares one budget."
    )
    lines.append(f"  id: {_yaml_str(sid)}")
    return "\n".join(lines) + "\n"


_PLACEHOLDER = {
    ColumnType.numeric: "# bounds: [LOW, HIGH]  # public range only: free under DP (else a DP search pays)",
    ColumnType.datetime: "# bounds: [LOW, HIGH]  # public range only, epoch seconds: free under DP",
    ColumnType.categorical: "# categories: [A, B]  # public list only: free under DP (else DP finds them)",
}


def _columns_block(columns: list[StarterColumn]) -> str:
    if not columns:
        return (
            "# Per-column overrides. Types are inferred from the first rows unless declared here.\n"
            "# Bounds and category lists must be PUBLIC knowledge (a unit's range, a published code list),\n"
            "# never read off the data: declared, they are free under DP; left out, a DP mechanism finds\n"
            "# them and spends part of epsilon.\n"
            "columns: {}\n"
            "#  email: {pii: EMAIL_ADDRESS, operator: drop}\n"
            "#  age: {type: numeric, bounds: [0, 120]}\n"
            "#  country: {type: categorical, categories: [FR, DE, IT]}\n"
        )
    out = [
        "# Column types as synthgen infers them from the first rows (types only: no value, range,",
        "# category or count from the data is written here). Check each one.",
        "# Bounds and category lists must be PUBLIC knowledge (a unit's range, a published code list),",
        "# never read off the data: declared, they are free under DP; left out, a DP mechanism finds",
        "# them and spends part of epsilon (the preprocessing share).",
        "columns:",
    ]
    for c in columns:
        key = _yaml_key(c.name)
        if c.pii is not None:
            out.append(f"  {key}: {{pii: {c.pii}, operator: drop}}   # identifier by its name: dropped")
            continue
        if c.type == ColumnType.id:
            out.append(f"  {key}: {{type: id, operator: drop}}   # a unique key: dropped")
            continue
        out.append(f"  {key}:")
        out.append(f"    type: {c.type.value}")
        if c.integer and c.type == ColumnType.numeric:
            out.append("    integer: true   # whole numbers")
        if c.date and c.type == ColumnType.datetime:
            out.append("    date: true   # calendar dates, no time of day")
        hint = _PLACEHOLDER.get(c.type)
        if hint is not None:
            out.append(f"    {hint}")
    return "\n".join(out) + "\n"


def render(
    *,
    name: str,
    kind: str | None = None,
    path: str | None = None,
    url_env: str | None = None,
    table: str | None = None,
    columns: list[StarterColumn] | None = None,
    dialect: CsvDialect | None = None,
) -> str:
    """The starter spec's text (YAML with comments)."""
    columns = columns or []
    sid = f"local/{name}"
    declared = bool(columns)
    targets = [
        c.name for c in columns if c.type in (ColumnType.categorical, ColumnType.boolean) and not c.pii
    ]
    target_hint = "  # target: COLUMN" + (f"   # for example {_yaml_key(targets[0])}" if targets else "")
    parts = [
        "# synthgen pipeline spec (written by `synthgen spec init`). Check it with:",
        "#   synthgen spec validate THIS_FILE --show",
        "# Reference of every key: docs/spec-reference.md",
        f"name: {_yaml_str(name)}",
        "description: ''",
        _source_block(kind, path=path, url_env=url_env, table=table, sid=sid, dialect=dialect).rstrip("\n"),
        _columns_block(columns).rstrip("\n"),
        "anonymize:",
        "  # How identifiers found inside free text are replaced: surrogate | tag | redact | hash | mask.",
        "  text_operator: surrogate",
        "privacy:",
        "  dp: true",
        "  # Epsilon of one run (preprocessing + training); the source's ledger caps the total.",
        "  epsilon: 3.0",
        "  # declared: a DP run types no column from real rows and refuses an undeclared one.",
        f"  schema: {'declared' if declared else 'inferred'}",
        "model:",
        "  # auto: dp_mst below 20,000 DP rows, dp_tvae above (the run says which and why).",
        "  kind: auto",
        "output:",
        "  access:",
        "    # Each role needs a key (a data steward runs `synthgen keys init`) and policy read rights.",
        "    roles: [analyst, ml-engineer, data-steward]",
        "    classification: shareable",
        "evaluate:",
        "  # Expected share of real rows held out from training to evaluate against.",
        "  holdout: 0.2",
        "  # The column the utility section predicts (TSTR vs TRTR); leave unset to skip it.",
        target_hint,
        "",
    ]
    return "\n".join(parts)


def _kind_of(file: Path) -> str:
    kind = SUFFIX_KINDS.get(file.suffix.lower())
    if kind is None:
        known = ", ".join(sorted(SUFFIX_KINDS))
        raise SpecError(
            f"--from-data {file}: unknown file type {file.suffix or '(none)'!r}; expected one of {known}"
        )
    return kind


def _relative_to(target: Path, base: Path) -> str:
    try:
        return os.path.relpath(target.resolve(), base.resolve())
    except ValueError:  # another drive (Windows)
        return str(target.resolve())


def infer_columns(
    kind: str,
    *,
    path: Path | None = None,
    url_env: str | None = None,
    table: str | None = None,
    dialect: CsvDialect | None = None,
) -> list[StarterColumn]:
    """Types of the source's columns, inferred by the pipeline's own rule from its first rows."""
    from synthgen.anonymize.detect import name_hint
    from synthgen.sources import infer_schema, open_source, refuse_bad_column_names
    from synthgen.spec import spec_from_dict

    source: dict[str, object] = {"kind": kind}
    if kind == "sql":
        source.update(url_env=url_env, table=table)
    else:
        assert path is not None
        source["path"] = str(path.resolve())
        source.update(dialect.source_keys() if dialect else {})
    spec = spec_from_dict({"name": "spec-init", "source": source}, origin="--from-data")
    reader = open_source(spec)
    sample = reader.sample(SAMPLE_ROWS)
    if sample.width == 0:
        raise SourceError(f"{reader.describe()}: no columns")
    # The names ingest would refuse (a line break cannot be written back as a spec key either).
    refuse_bad_column_names(reader.header() or sample.columns, reader.describe())
    schema = infer_schema(sample)
    return [
        StarterColumn(name=c.name, type=c.type, pii=name_hint(c.name), integer=c.integer, date=c.date)
        for c in schema.columns
    ]


def init_spec(
    out: Path,
    *,
    from_data: Path | None = None,
    url_env: str | None = None,
    table: str | None = None,
    name: str | None = None,
) -> StarterSpec:
    """Write a starter spec to ``out`` (never over an existing file) and return what it holds.

    ``from_data`` (a CSV, TSV, Parquet or JSONL file) or ``url_env`` + ``table`` (a SQL table
    whose URL is in that environment variable) fill in the column types.
    """
    if out.exists() or out.is_symlink():
        raise SpecError(f"{out} already exists; spec init never overwrites: choose another path or remove it")
    if not out.parent.is_dir():
        raise SpecError(f"{out}: folder {out.parent} does not exist")
    if from_data is not None and (url_env or table):
        raise SpecError("give either --from-data FILE or --url-env VAR with --table TABLE, not both")
    if (url_env is None) != (table is None):
        raise SpecError("a SQL source needs both --url-env VAR and --table TABLE")
    if url_env is not None and not _ENV_NAME.match(url_env):
        raise SpecError(f"--url-env {url_env[:80]!r}: expected an environment variable's name")
    kind: str | None = None
    path_text: str | None = None
    columns: list[StarterColumn] = []
    dialect: CsvDialect | None = None
    if from_data is not None:
        kind = _kind_of(from_data)
        if not from_data.exists():
            raise SourceError(f"source file not found: {from_data}")
        dialect = sniff_csv(from_data) if kind == "csv" else None
        columns = infer_columns(kind, path=from_data, dialect=dialect)
        path_text = _relative_to(from_data, out.parent)
        stem = from_data.stem
    elif url_env is not None:
        kind = "sql"
        if not os.environ.get(url_env):
            raise SpecError(f"--url-env {url_env}: the environment variable is not set")
        columns = infer_columns(kind, url_env=url_env, table=table)
        stem = (table or "").split(".")[-1]
    else:
        stem = out.stem
    pname = pipeline_name(name or stem)
    text = render(
        name=pname, kind=kind, path=path_text, url_env=url_env, table=table, columns=columns, dialect=dialect
    )
    # Exclusive create: a file appearing since the check above is not overwritten either.
    try:
        with open(out, "x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:
        raise SpecError(
            f"{out} already exists; spec init never overwrites: choose another path or remove it"
        ) from None
    except OSError as exc:
        raise SpecError(f"cannot write {out}: {exc.strerror or exc}") from None
    return StarterSpec(path=out, name=pname, source_kind=kind, columns=columns, dialect=dialect)


def split_init_args(
    target: Path | None, *, out: Path | None, from_data: Path | None, sql: bool
) -> tuple[Path, Path | None]:
    """``spec init``'s (spec to write, data file) from its positional argument and options.

    ``spec init SOURCE [--out SPEC]`` (the positional is data), ``spec init SPEC --from-data
    SOURCE`` (the positional is the spec), ``spec init --url-env VAR --table T --out SPEC``.
    A positional with a data file's suffix is the source; without ``--out`` its spec is
    ``<stem>.yaml`` in the current folder.
    """
    is_data = target is not None and target.suffix.lower() in SUFFIX_KINDS
    if out is not None:
        if target is not None and (from_data is not None or sql):
            raise SpecError("give the spec to write once: either --out SPEC or a SPEC argument, not both")
        if target is not None and not is_data:
            raise SpecError(
                f"{target}: not a data file ({', '.join(sorted(SUFFIX_KINDS))}); "
                "use `spec init SOURCE --out SPEC` or `spec init SPEC --from-data SOURCE`"
            )
        return out, target if target is not None else from_data
    if is_data and from_data is None and not sql:
        assert target is not None
        return Path(f"{pipeline_name(target.stem)}.yaml"), target
    if is_data:
        raise SpecError(f"{target}: a data file cannot be the spec to write; name the spec with --out SPEC")
    return target or Path("pipeline.yaml"), from_data
