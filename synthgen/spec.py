"""Pipeline spec: a YAML file validated with pydantic, with ``--set key=value`` overrides.

Every section forbids unknown keys, so a typo is an error that names its path
(``model.epochz: unknown key``) instead of a silently ignored setting.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from synthgen import pathvars, safe_yaml
from synthgen.anonymize.settings import AnonymizeSettings
from synthgen.errors import SpecError
from synthgen.evaluate.settings import EvaluateSettings
from synthgen.models.settings import ModelSettings
from synthgen.privacy.settings import PrivacySettings
from synthgen.schema import ColumnType, control_character
from synthgen.spec_section import SpecSection

#: Largest magnitude of a public bound (beyond it float64 loses integer precision).
MAX_BOUND = 1e15

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
#: Folders of the synthetic zone that generate and train write into: never a dataset's name.
RESERVED_DATASET_NAMES = frozenset({"staging", "models"})
_NAME_RULE = "use letters, digits, '_', '-', '.' (max 100), starting with a letter or digit"

SourceKind = Literal["csv", "parquet", "jsonl", "sql"]


def _url_holds_password(url: str) -> bool:
    """A password in a SQL URL's userinfo (any characters) or in its query string."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if re.search(r"://[^@]*:[^@]*@", url.split("?", 1)[0]):
        return True
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # malformed: fails later, at connect, without echoing it
        return False
    return parsed.password is not None or any(
        re.search(r"pass|pwd|secret|token", k, re.IGNORECASE) for k in parsed.query
    )


class SourceSpec(SpecSection):
    """Where the real data comes from. Secrets never live here: see ``url_env`` / ``secrets_file``."""

    model_config = ConfigDict(extra="forbid")

    #: csv | parquet | jsonl (text documents) | sql (SQLite, PostgreSQL, any SQLAlchemy URL).
    kind: SourceKind
    #: Identity of the data source for the privacy ledger (e.g. ``hospital-a/visits``): every spec
    #: and copy of the data that names the same id shares one budget. Unset: the resolved location.
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,119}$")
    #: File path (csv, parquet, jsonl); relative paths resolve against the spec file.
    path: str | None = None
    #: SQL: a SQLAlchemy URL *without* a password; the password comes from ``password_env``.
    url: str | None = None
    #: SQL: name of an environment variable holding the full URL (with credentials).
    url_env: str | None = None
    #: SQL: name of an environment variable holding the password alone.
    password_env: str | None = None
    #: SQL: a table name (``schema.table`` allowed); exactly one of table or query.
    table: str | None = None
    #: SQL: a SELECT query whose result is the source.
    query: str | None = None
    #: jsonl: the field holding the document text.
    text_field: str = "text"
    #: csv: the field separator.
    separator: str = ","
    #: csv: lines starting with this are comments and skipped (for example ``#``).
    comment_prefix: str | None = None
    #: Environment variables ``path`` may expand besides ``SYNTHGEN_HOME`` (never a secret's name).
    path_vars: list[str] = []

    @field_validator("separator")
    @classmethod
    def _separator(cls, v: str) -> str:
        if len(v.encode("utf-8")) != 1 or v in '\r\n"':
            raise ValueError("expected one single-byte character, such as ',' or ';' or a tab")
        return v

    @field_validator("comment_prefix")
    @classmethod
    def _comment_prefix(cls, v: str | None) -> str | None:
        if v is not None and not (1 <= len(v) <= 5 and v.isprintable() and not v.isspace()):
            raise ValueError("expected 1 to 5 printable characters, such as '#'")
        return v

    @model_validator(mode="after")
    def _check(self) -> SourceSpec:
        if self.kind == "sql":
            if not (self.url or self.url_env):
                raise ValueError("a sql source needs `url` or `url_env`")
            if (self.table is None) == (self.query is None):
                raise ValueError("a sql source needs exactly one of `table` or `query`")
            if self.table is not None and not all(
                p.replace("_", "").isalnum() for p in self.table.strip().split(".")
            ):
                # Checked here (exit 2 from `spec validate`), not first when the source opens.
                raise ValueError(f"table {self.table!r}: use a plain (schema.)table name, or `query`")
            if self.url and _url_holds_password(self.url):
                raise ValueError(
                    "`url` contains a password; put it in an environment variable and name it in "
                    "`password_env` (or the whole URL in `url_env`)"
                )
        elif not self.path:
            raise ValueError(f"a {self.kind} source needs `path`")
        pathvars.check_declared(self.path_vars, [self.password_env, self.url_env])
        why = pathvars.refusal(self.path or "", self.path_vars)
        if why is not None:
            raise ValueError(f"path: {why}")
        return self


class ColumnOverride(SpecSection):
    """Per-column schema override. Bounds and categories given here are *public* (free under DP)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    #: numeric | categorical | datetime | boolean | text | id (overrides inference).
    type: ColumnType | None = None
    #: Presidio entity the column holds (EMAIL_ADDRESS, PERSON, ...): a direct identifier.
    pii: str | None = None
    #: Public [lower, upper] of a numeric column (lower < upper, within +-1e15); values are
    #: clipped to it. Free under DP.
    bounds: tuple[float, float] | None = None
    #: Public category list, each category once; other values map to an "other" bucket. Free under DP.
    categories: list[str] | None = None
    #: A numeric column of whole numbers only (public; generated values are integers). Unset: the
    #: data's dtype decides, except under DP with privacy.schema declared (then false).
    integer: bool | None = None
    #: A datetime column of calendar dates, no time of day (public; generated values are dates).
    #: Unset: the data's dtype decides, except under DP with privacy.schema declared (then false).
    date: bool | None = None
    #: Anonymization operator for this column (drop|surrogate|hash|mask|redact).
    operator: Literal["drop", "surrogate", "hash", "mask", "redact"] | None = None

    @field_validator("categories")
    @classmethod
    def _categories(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("an empty list declares no category: list them, or leave categories out")
        # A repeated category gives the encoder two codes for one value: the run used to crash in
        # training, after epsilon was charged (and a retry charged again).
        seen: set[str] = set()
        for c in v or []:
            if c in seen:
                raise ValueError(f"{safe_yaml.quote(c)} is listed more than once: list each category once")
            seen.add(c)
        return v

    @field_validator("bounds")
    @classmethod
    def _bounds(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not v[0] < v[1]:
            raise ValueError("expected lower < upper")
        if v is not None and max(abs(v[0]), abs(v[1])) > MAX_BOUND:
            raise ValueError(f"expected finite bounds within +-{MAX_BOUND:.0e}")
        return v


class AccessSpec(SpecSection):
    model_config = ConfigDict(extra="forbid")

    #: Roles whose key wraps the dataset key (besides what the policy grants).
    #: Roles the dataset key is wrapped for (each must also be allowed to read it by the policy).
    roles: list[str] = ["analyst", "ml-engineer", "data-steward"]
    #: shareable (DP outputs only, unless a policy allows dp false) | internal | restricted.
    classification: Literal["shareable", "internal", "restricted"] = "shareable"
    #: Free-form access tags, bound to the ciphertext in its authenticated manifest.
    tags: dict[str, str] = {}


class OutputSpec(SpecSection):
    model_config = ConfigDict(extra="forbid")

    #: Synthetic rows to generate (default 10,000; at most 100 million).
    rows: int | None = Field(default=None, ge=1, le=100_000_000)
    #: Name of the synthetic dataset; defaults to ``<pipeline name>-synthetic``.
    name: str | None = None
    #: Rows per generation shard (Airflow maps one task per shard).
    shard_rows: int = Field(default=100_000, ge=1, le=100_000_000)
    #: Who may read the published dataset.
    access: AccessSpec = AccessSpec()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.match(v):
            raise ValueError(_NAME_RULE)
        if v in RESERVED_DATASET_NAMES:
            raise ValueError(f"{v!r} is a folder of the synthetic zone, not a dataset name: choose another")
        return v


class IngestSettings(SpecSection):
    """How the snapshot is written (the unit of work that anonymization maps over)."""

    model_config = ConfigDict(extra="forbid")

    #: Rows per snapshot part: the snapshot is written as Parquet parts of at most this many rows,
    #: and anonymization runs one task per part (`--workers N` in the CLI, a mapped task in Airflow).
    part_rows: int = Field(default=200_000, ge=100, le=100_000_000)


class PipelineSpec(SpecSection):
    """One pipeline: a source, how to anonymize and synthesize it, and who may read the result."""

    model_config = ConfigDict(extra="forbid")

    #: Pipeline name: letters, digits, '_', '-', '.'; the Airflow DAG is ``synthgen__<name>``.
    name: str
    #: Free text shown in listings.
    description: str = ""
    #: Where the real data comes from.
    source: SourceSpec
    #: How the snapshot is written: part size.
    ingest: IngestSettings = IngestSettings()
    #: Per-column overrides of the inferred schema (types, identifiers, public bounds/categories).
    columns: dict[str, ColumnOverride] = {}
    #: Presidio anonymization of identifier columns and free text.
    anonymize: AnonymizeSettings = AnonymizeSettings()
    #: Differential privacy: epsilon, delta, budget cap, accountant.
    privacy: PrivacySettings = PrivacySettings()
    #: The synthesizer and its training settings.
    model: ModelSettings = ModelSettings()
    #: What is generated and who may read it.
    output: OutputSpec = OutputSpec()
    #: The evaluation report.
    evaluate: EvaluateSettings = EvaluateSettings()
    #: Cron expression, preset (@daily) or None for manual runs only.
    schedule: str | None = None

    #: Directory of the spec file (relative source paths resolve against it). Not part of the YAML.
    base_dir: Path = Field(default=Path("."), exclude=True)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(_NAME_RULE)
        return v

    @field_validator("columns")
    @classmethod
    def _column_names(cls, v: dict[str, ColumnOverride]) -> dict[str, ColumnOverride]:
        # Such a name is refused at ingest too (a data problem there); here it is the spec's.
        for name in v:
            bad = control_character(name)
            if bad is not None:
                raise ValueError(
                    f"column name {safe_yaml.quote(name)} holds a control character ({bad!r}): "
                    "synthgen refuses such names; rename the column in the source"
                )
        return v

    @model_validator(mode="after")
    def _sdv_pickle(self) -> PipelineSpec:
        # Refused here, not at generate: a run would train, then fail loading its own model. (In
        # the spec, not ModelSettings: a saved model's settings must still load, and refuse there.)
        if self.model.kind.startswith("sdv_") and not self.model.sdv_allow_pickle:
            raise ValueError(
                f"model.kind {self.model.kind} saves its model with pickle, which generate loads (loading "
                "a pickle runs code from the file): set model.sdv_allow_pickle: true to allow it"
            )
        return self

    @model_validator(mode="after")
    def _dataset_name(self) -> PipelineSpec:
        # The published name is checked here, before any epsilon is spent, not at publish.
        if not self.output.name and not _NAME.match(self.synthetic_name):
            raise ValueError(
                f"name: '{self.name}-synthetic' (the default output.name) is over 100 characters: "
                "shorten the name or set output.name"
            )
        return self

    @property
    def synthetic_name(self) -> str:
        return self.output.name or f"{self.name}-synthetic"

    def source_path(self) -> Path:
        """The source file; ``${SYNTHGEN_HOME}`` and the variables in ``source.path_vars`` expand."""
        assert self.source.path is not None
        p = Path(pathvars.expand(self.source.path, self.source.path_vars)).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)


# -- loading -----------------------------------------------------------------


def expand_vars(value: str, allowed: list[str] | None = None) -> str:
    """Expand ``${SYNTHGEN_HOME}`` (and ``allowed`` variables) in a path; see :mod:`synthgen.pathvars`."""
    return pathvars.expand(value, allowed or [])


#: Errors a spec message lists before "(and N more)"; the CLI keeps a message to one line.
MAX_LISTED_ERRORS = 4


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that holds the key at ``loc`` (its last part), for "did you mean"."""
    import typing

    model: Any = PipelineSpec
    parts = list(loc[:-1])
    while parts:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        part = parts.pop(0)
        field = model.model_fields.get(str(part)) or next(
            (f for f in model.model_fields.values() if f.alias == part), None
        )
        if field is None:
            return None
        ann: Any = field.annotation
        while True:
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            origin = typing.get_origin(ann)
            if origin is dict and len(args) == 2:
                if not parts:
                    return None
                parts.pop(0)  # the mapping's own key (a column name)
                ann = args[1]
                continue
            if origin is not None and len(args) == 1 and origin is not dict:  # Optional[X]
                ann = args[0]
                continue
            break
        model = ann
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def did_you_mean(key: str, loc: tuple[Any, ...]) -> str:
    """`` (did you mean 'epochs'?)`` for an unknown key at ``loc``, or ``""``."""
    import difflib

    model = _model_at(loc)
    if model is None:
        return ""
    names = [f.alias or n for n, f in model.model_fields.items() if not f.exclude]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _one_error(error: Any) -> str:
    loc = ".".join(str(p) for p in error["loc"]) or "(top level)"
    if len(loc) > safe_yaml.MAX_QUOTE:  # a key is input too: never reprint a long one
        loc = loc[: safe_yaml.MAX_QUOTE - 3] + "..."
    typ = error["type"]
    if typ == "extra_forbidden":
        msg = "unknown key" + did_you_mean(str(error["loc"][-1]), tuple(error["loc"]))
    elif typ == "missing":
        msg = "required key is missing"
    elif typ.endswith("_type") or typ.endswith("_parsing"):
        expected = typ.split("_")[0]
        msg = f"expected {expected}, got {safe_yaml.quote(error.get('input'))}"
    else:
        msg = error["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg}"


def _format_error(exc: ValidationError, origin: str) -> str:
    """Every error of a spec on one line (the first :data:`MAX_LISTED_ERRORS`), "; "-separated."""
    errors = exc.errors()
    listed = "; ".join(_one_error(e) for e in errors[:MAX_LISTED_ERRORS])
    more = len(errors) - MAX_LISTED_ERRORS
    suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more > 0 else ""
    return f"{origin}: {listed}{suffix}"


def _parse_value(key: str, raw: str) -> Any:
    try:
        return safe_yaml.load(raw)[0]
    except safe_yaml.DuplicateKeyError as exc:
        raise SpecError(f"--set {key}: {exc.problem}") from None
    except (yaml.YAMLError, safe_yaml.YamlLimitError):
        return raw


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML scalars/lists)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--set {safe_yaml.quote(item)}: expected key=value (for example model.epochs=5)")
        parts = key.strip().split(".")
        node: Any = data
        for p in parts[:-1]:
            if not isinstance(node, dict):
                raise SpecError(f"--set {key}: {p} is not a section")
            node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise SpecError(f"--set {key}: {parts[-2]} is not a section")
        node[parts[-1]] = _parse_value(key.strip(), raw)
    return data


def load_spec(path: str | Path, overrides: list[str] | None = None) -> PipelineSpec:
    """Read, override and validate a pipeline spec. Raises :class:`SpecError` with one line."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"spec file not found: {p}")
    try:
        data, _ = safe_yaml.load(safe_yaml.read_text(p))
    except safe_yaml.YamlLimitError as exc:
        raise SpecError(f"{p}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise SpecError(f"{p}{where}: {problem}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{p}: not a UTF-8 text file") from None
    if not isinstance(data, dict):
        raise SpecError(f"{p}: expected a mapping at the top level")
    return spec_from_dict(data, overrides=overrides, origin=str(p), base_dir=p.resolve().parent)


def spec_from_dict(
    data: dict[str, Any],
    *,
    overrides: list[str] | None = None,
    origin: str = "spec",
    base_dir: Path | None = None,
) -> PipelineSpec:
    from synthgen.storage.credentials import refuse_credentials_in

    data = apply_overrides(dict(data), overrides or [])
    refuse_credentials_in(data, origin=origin)  # before validation: "unknown key" would hide why
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_format_error(exc, origin)) from None
    if base_dir is not None:
        spec.base_dir = base_dir
    return spec
