"""Synthesizer base class, device resolution, shared DP preprocessing, and the registry.

A synthesizer reads like a scikit-learn estimator: configuration in the
constructor, learned state set by :meth:`Synthesizer.fit` (trailing underscore),
``sample``/``save``/``load``. One file per model kind; a subclass registers
itself by setting the class attribute ``kind``.

Model artifacts (``save``) are JSON (config, encoding, privacy record) plus a
torch ``state_dict`` of tensors loaded with ``weights_only=True``: no pickle of
arbitrary objects and no training rows (P5).
"""

from __future__ import annotations

import importlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import polars as pl

from synthgen.errors import ModelError, PrivacyError, SpecError
from synthgen.models.dp_input import dp_coerce, dp_schema
from synthgen.models.encoding import TABULAR_TYPES, TableEncoder, validate_frame
from synthgen.models.settings import ModelSettings
from synthgen.privacy.accountant import BudgetSplit, check_column_charges, resolve_delta, split_budget
from synthgen.privacy.mechanisms import count_upper_bound, laplace_count, noise_rng
from synthgen.privacy.record import MechanismEntry, PrivacyRecord
from synthgen.privacy.settings import PrivacySettings
from synthgen.schema import ColumnType, TableSchema

ARTIFACT_VERSION = 1


@dataclass(frozen=True)
class Progress:
    """Reported after each epoch: loss and the epsilon spent so far (preprocessing + training)."""

    epoch: int
    epochs: int
    loss: float
    epsilon: float | None


ProgressCallback = Callable[[Progress], None]


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; validate ``cpu``, ``cuda``, ``cuda:N``."""
    import torch

    d = device.strip().lower()
    if d == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if d == "cpu":
        return "cpu"
    if d == "cuda" or (d.startswith("cuda:") and d[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ModelError(
                f"device {device!r} requested but CUDA is not available here; use device: auto or cpu"
            )
        if ":" in d and int(d[5:]) >= torch.cuda.device_count():
            raise ModelError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
        return d
    raise ModelError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")


def count_duplicates(frame: pl.DataFrame) -> int:
    """Exact duplicate rows: rows minus distinct rows. A raw statistic: report it in the REAL zone only.

    Equal rows hash alike, so a row whose hash no other row has is distinct from every row and
    only the rows that share a hash are compared. ``frame.unique()`` over all rows held about
    1.1 GB at 5,000,000 rows (the rows' encoding and the distinct rows); this about 0.3 GB.
    """
    if not frame.width:
        return max(frame.height - 1, 0)  # every row is the empty row
    shared = frame.hash_rows().is_duplicated()
    return int(shared.sum()) - frame.filter(shared).unique().height


#: Default batch size, and the share of a smaller data set one batch takes by default.
DEFAULT_BATCH_SIZE = 1024
_DEFAULT_BATCH_SHARE = 0.25


def batch_size_for(requested: int | None, n_rows: float) -> int:
    """``model.batch_size`` when set; else 1024, or a quarter of ``n_rows`` on smaller data.

    Under DP ``n_rows`` is the DP row count (public), so the default is DP too.
    """
    if requested is not None:
        return requested
    return int(max(2, min(DEFAULT_BATCH_SIZE, n_rows * _DEFAULT_BATCH_SHARE)))


@dataclass
class Prepared:
    """Encoded training data and what it cost. Codes are raw-derived: never persist them."""

    encoder: TableEncoder
    #: ``(n, C)`` token codes: int64, or :func:`~synthgen.models.encoding.code_dtype` for a kind
    #: with ``codes_only``.
    codes: np.ndarray
    #: Within-bin offsets; None for a kind with ``codes_only``.
    offsets: np.ndarray | None
    mechanisms: list[MechanismEntry]
    #: DP-SGD budget (None in non-DP mode).
    split: BudgetSplit | None
    #: Noisy row count (DP mode) or exact count (non-DP); the sampling rate derives from it.
    n_estimate: float
    total_delta: float | None
    duplicates: int
    #: ``model.batch_size``, or the default for ``n_estimate`` rows (see :func:`batch_size_for`).
    batch_size: int


class Synthesizer(ABC):
    """A tabular synthesizer: ``fit(frame) -> self``, ``sample(n, seed)``, ``save``/``load``."""

    kind: ClassVar[str] = ""
    #: False for kinds that never draw batches (marginal-based): no batch-size check on the DP count.
    uses_batches: ClassVar[bool] = True
    #: True for kinds that can train over several processes (``model.distributed``).
    supports_distributed: ClassVar[bool] = False
    #: True for kinds that train on token codes alone: ``_prepare`` gives them compact codes
    #: (:meth:`TableEncoder.encode_codes`) and no offsets.
    codes_only: ClassVar[bool] = False
    _registry: ClassVar[dict[str, type[Synthesizer]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Synthesizer._registry[cls.kind] = cls

    def __init__(self, *, schema: TableSchema, model: ModelSettings, privacy: PrivacySettings) -> None:
        self.schema = schema
        self.model = model
        self.privacy = privacy
        self.privacy_record_: PrivacyRecord | None = None
        self.encoder_: TableEncoder | None = None
        #: Exact duplicate rows in the training frame (raw statistic: for the restricted run report only).
        self.duplicates_: int | None = None
        #: Upper bound on the epsilon of the DP results computed so far. Even a failed fit
        #: has released something (its error can depend on them), so the pipeline charges it:
        #: the preprocessing share once preprocessing starts, all of epsilon once training does.
        self.released_epsilon_ = 0.0
        #: A DP row count already released for this fit (by ``auto``, at this model's count epsilon).
        self.dp_count_: tuple[float, MechanismEntry] | None = None

    # -- fitting -------------------------------------------------------------------------

    @abstractmethod
    def fit(self, frame: pl.DataFrame, *, progress: ProgressCallback | None = None) -> Self:
        """Fit on ``frame``; sets ``privacy_record_`` and the model state."""

    def _check_distributed(self) -> None:
        """Refuse ``model.distributed.world_size > 1`` where it is not supported (reads no data)."""
        if self.model.distributed.world_size > 1 and not (self.supports_distributed and self.privacy.dp):
            raise SpecError(
                "model.distributed.world_size > 1 needs model.kind dp_tvae with privacy.dp true, "
                f"not {self.kind}{'' if self.privacy.dp else ' without DP'}: set world_size 1 or kind dp_tvae"
            )

    def _check_fitted(self) -> None:
        if self.privacy_record_ is None:
            raise ModelError(f"{type(self).__name__} is not fitted: call fit() or load() first")

    def _tabular_schema(self) -> TableSchema:
        cols = [c for c in self.schema.columns if c.type in TABULAR_TYPES]
        if not cols:
            raise ModelError("the schema has no numeric, datetime, categorical or boolean column to model")
        # Under DP nullability is not read from the data: every column has a null token.
        return dp_schema(TableSchema(columns=cols)) if self.privacy.dp else TableSchema(columns=cols)

    def dp_columns(self) -> tuple[int, int, int]:
        """(columns needing a DP mechanism, of which category discoveries, modelled columns): schema only."""
        schema = self._tabular_schema()
        dp_cols = [
            c
            for c in schema.columns
            if c.type in (ColumnType.numeric, ColumnType.datetime)
            or (c.type == ColumnType.categorical and c.categories is None)
        ]
        discovery = sum(1 for c in dp_cols if c.type == ColumnType.categorical)
        return len(dp_cols), discovery, len(schema.columns)

    def _prepare(self, frame: pl.DataFrame) -> Prepared:
        """Shared preprocessing: validation, duplicates, DP row count, budget split, DP encoding.

        In DP mode the only reads of raw rows are the DP mechanisms listed in the
        returned ``mechanisms`` (P2); nullability, parsing and refusals read no value
        (:mod:`synthgen.models.dp_input`).
        """
        self._check_distributed()
        if self.privacy.dp and self.privacy.entity_key is not None:
            raise PrivacyError(
                "privacy.entity_key is set but the tabular models give record-level DP only: "
                "aggregate to one row per person first, or remove entity_key"
            )
        if self.privacy.dp and not (self.privacy.epsilon > 0 and math.isfinite(self.privacy.epsilon)):
            raise SpecError(f"privacy.epsilon must be > 0, got {self.privacy.epsilon}")
        schema = self._tabular_schema()
        if frame.height == 0:
            raise ModelError("the training data has no rows")
        if self.privacy.dp:
            frame = dp_coerce(frame, schema)  # unparseable values become nulls, row by row
        validate_frame(frame, schema, max_categories=self.model.max_categories, dp=self.privacy.dp)
        frame = frame.select(schema.names)
        duplicates = count_duplicates(frame)
        if self.model.drop_duplicates and duplicates:
            # At most one row per person changes, so DP holds on the deduplicated data.
            frame = frame.unique(maintain_order=True)

        if not self.privacy.dp:
            batch = batch_size_for(self.model.batch_size, frame.height)
            if frame.height < batch:
                raise ModelError(
                    f"the data has {frame.height} rows, fewer than model.batch_size={batch}: "
                    "lower model.batch_size"
                )
            encoder, _ = TableEncoder.fit(
                frame,
                schema,
                dp=False,
                numeric_bins=self.model.numeric_bins,
                max_categories=self.model.max_categories,
            )
            codes, offsets = self._encode(encoder, frame, schema)
            return Prepared(encoder, codes, offsets, [], None, float(frame.height), None, duplicates, batch)

        rng = noise_rng()
        # Columns that need a DP mechanism: numeric/datetime (quantile bins) and categoricals without a list.
        n_dp_cols, discovery, _ = self.dp_columns()
        # The delta rule needs n before the split; a preliminary split fixes the count's epsilon
        # (it does not depend on delta), then the delta is resolved from the DP count.
        pre_split = split_budget(
            self.privacy,
            total_delta=0.5,
            dp_columns=n_dp_cols,
            discovery_columns=discovery,
            columns=len(schema.columns),
        )
        self.released_epsilon_ = float(self.privacy.epsilon) - pre_split.training_epsilon  # preprocessing
        n_noisy, count_entry = self.dp_count_ or laplace_count(
            frame.height, epsilon=pre_split.count_epsilon, rng=rng
        )
        if abs(count_entry.epsilon - pre_split.count_epsilon) > 1e-12:
            raise PrivacyError("the DP row count handed in was not made at this model's count epsilon")
        n_upper = count_upper_bound(n_noisy, pre_split.count_epsilon)
        total_delta = resolve_delta(self.privacy, n_upper)
        split = split_budget(
            self.privacy,
            total_delta=total_delta,
            dp_columns=n_dp_cols,
            discovery_columns=discovery,
            columns=len(schema.columns),
        )
        batch = batch_size_for(self.model.batch_size, n_noisy)
        if self.uses_batches and n_noisy < batch:
            raise ModelError(
                f"the data has about {max(int(n_noisy), 0)} rows (DP count), fewer than "
                f"model.batch_size={batch}: lower model.batch_size"
            )
        encoder, entries = TableEncoder.fit(
            frame,
            schema,
            dp=True,
            column_epsilon=split.column_epsilon,
            column_sigma=split.column_sigma,
            column_delta=split.column_delta,
            discovery_delta=split.discovery_delta,
            n_public=n_noisy,
            rng=rng,
            numeric_bins=self.model.numeric_bins,
            max_categories=self.model.max_categories,
        )
        check_column_charges(split, entries, dp_columns=n_dp_cols, discovery_columns=discovery)
        codes, offsets = self._encode(encoder, frame, schema)
        self.released_epsilon_ = float(self.privacy.epsilon)  # training comes next
        return Prepared(
            encoder, codes, offsets, [count_entry, *entries], split, n_noisy, total_delta, duplicates, batch
        )

    def _encode(
        self, encoder: TableEncoder, frame: pl.DataFrame, schema: TableSchema
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if self.codes_only:
            return encoder.encode_codes(frame, schema), None
        return encoder.encode(frame, schema)

    # -- sampling ------------------------------------------------------------------------

    @abstractmethod
    def sample_batches(
        self, n: int, *, seed: int | None = None, batch_rows: int = 100_000
    ) -> Iterator[pl.DataFrame]:
        """Yield ``n`` synthetic rows in frames of at most ``batch_rows`` (bounded memory)."""

    def sample(self, n: int, *, seed: int | None = None) -> pl.DataFrame:
        """``n`` synthetic rows; the same seed gives the same rows."""
        if n < 0:
            raise ModelError(f"cannot sample {n} rows")
        frames = list(self.sample_batches(n, seed=seed))
        if not frames:
            return self._empty_frame()
        return pl.concat(frames, how="vertical")

    def _empty_frame(self) -> pl.DataFrame:
        assert self.encoder_ is not None
        return self.encoder_.decode(
            np.zeros((0, len(self.encoder_.columns)), dtype=np.int64), rng=np.random.default_rng(0)
        )

    # -- persistence ---------------------------------------------------------------------

    def _config_json(self) -> dict[str, Any]:
        return {
            "version": ARTIFACT_VERSION,
            "kind": self.kind,
            "schema": self.schema.model_dump(mode="json"),
            "model": self.model.model_dump(mode="json"),
            "privacy": self.privacy.model_dump(mode="json"),
        }

    def save(self, directory: Path) -> None:
        """Write ``config.json``, ``privacy.json``, ``encoding.json`` and the weights into ``directory``."""
        self._check_fitted()
        assert self.privacy_record_ is not None
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(self._config_json(), indent=1), encoding="utf-8")
        (directory / "privacy.json").write_text(
            self.privacy_record_.model_dump_json(indent=1), encoding="utf-8"
        )
        if self.encoder_ is not None:
            self.encoder_.save(directory / "encoding.json")
        self._save_state(directory)

    @abstractmethod
    def _save_state(self, directory: Path) -> None: ...

    @abstractmethod
    def _load_state(self, directory: Path) -> None: ...

    @classmethod
    def load(cls, directory: Path) -> Synthesizer:
        """Load any saved synthesizer (the kind is read from ``config.json``)."""
        directory = Path(directory)
        cfg_path = directory / "config.json"
        if not cfg_path.is_file():
            raise ModelError(
                f"no saved model in {directory} (config.json missing): run `synthgen train` first"
            )
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        if cfg.get("version") != ARTIFACT_VERSION:
            raise ModelError(f"{directory}: model artifact version {cfg.get('version')} is not supported")
        model = ModelSettings.model_validate(cfg["model"])
        synth = make_synthesizer(
            cfg["kind"],
            schema=TableSchema.model_validate(cfg["schema"]),
            model=model,
            privacy=PrivacySettings.model_validate(cfg["privacy"]),
        )
        if cls is not Synthesizer and not isinstance(synth, cls):
            raise ModelError(f"{directory} holds a {cfg['kind']} model, not {cls.__name__}")
        synth.privacy_record_ = PrivacyRecord.model_validate_json(
            (directory / "privacy.json").read_text("utf-8")
        )
        enc = directory / "encoding.json"
        if enc.is_file():
            synth.encoder_ = TableEncoder.load(enc)
        synth._load_state(directory)
        return synth


_MODULES: dict[str, str] = {
    "dp_tvae": "synthgen.models.dp_tvae",
    "dp_ctgan": "synthgen.models.dp_ctgan",
    "dp_mst": "synthgen.models.dp_mst",
    "auto": "synthgen.models.auto",
    "sdv_gaussian_copula": "synthgen.models.sdv",
    "sdv_ctgan": "synthgen.models.sdv",
    "sdv_tvae": "synthgen.models.sdv",
}


def make_synthesizer(
    kind: str, *, schema: TableSchema, model: ModelSettings, privacy: PrivacySettings
) -> Synthesizer:
    """The synthesizer registered for ``kind`` (``ModelSettings.kind``), configured but not fitted."""
    if kind not in _MODULES:
        raise SpecError(f"unknown model kind {kind!r}: use one of {', '.join(sorted(_MODULES))}")
    if kind not in Synthesizer._registry:
        try:
            importlib.import_module(_MODULES[kind])
        except ModuleNotFoundError as exc:
            raise ModelError(f"model kind {kind!r} is not available in this installation ({exc})") from None
    cls = Synthesizer._registry.get(kind)
    if cls is None:
        raise ModelError(f"model kind {kind!r} is not available in this installation")
    if model.kind != kind:
        model = model.model_copy(update={"kind": kind})
    return cls(schema=schema, model=model, privacy=privacy)
