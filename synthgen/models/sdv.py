"""SDV synthesizers (GaussianCopula, CTGAN, TVAE) as non-DP model kinds (P7).

They fit on raw rows with no noise at all: their records say ``dp: false`` and
their outputs are not shareable unless a policy rule allows it. SDV saves its
models with pickle; ``save`` writes SDV's file and ``load`` refuses it unless the
spec sets ``model.sdv_allow_pickle: true`` (loading a pickle runs code from the
file, so only load artifacts this installation wrote itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import polars as pl

from synthgen.errors import ModelError
from synthgen.models.base import Progress, ProgressCallback, Synthesizer, count_duplicates
from synthgen.models.encoding import TABULAR_TYPES, validate_frame
from synthgen.privacy.record import non_dp_record
from synthgen.schema import ColumnType

_SDTYPE = {
    ColumnType.numeric: "numerical",
    ColumnType.datetime: "datetime",
    ColumnType.categorical: "categorical",
    ColumnType.boolean: "boolean",
}


class _SDVSynthesizer(Synthesizer):
    _sdv_class = ""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sdv_: Any = None

    @property
    def _batch_size(self) -> int:
        return self.model.batch_size or 500  # SDV's own default

    def _metadata(self) -> Any:
        from sdv.metadata import Metadata

        cols = {c.name: {"sdtype": _SDTYPE[c.type]} for c in self.schema.columns if c.type in TABULAR_TYPES}
        return Metadata.load_from_dict({"tables": {"table": {"columns": cols}}})

    def _make(self) -> Any:
        import sdv.single_table as st

        cls = getattr(st, self._sdv_class)
        kwargs: dict[str, Any] = {"enforce_min_max_values": True}
        if self._sdv_class != "GaussianCopulaSynthesizer":
            kwargs.update(
                epochs=self.model.epochs, batch_size=self._batch_size, enable_gpu=self.model.device != "cpu"
            )
        return cls(self._metadata(), **kwargs)

    def fit(self, frame: pl.DataFrame, *, progress: ProgressCallback | None = None) -> Self:
        """Fit SDV on raw rows (no DP). ``progress`` is called once, at the end."""
        self._check_distributed()
        schema = self._tabular_schema()
        validate_frame(frame, schema, max_categories=self.model.max_categories)
        frame = frame.select(schema.names)
        self.duplicates_ = count_duplicates(frame)
        if self.model.drop_duplicates:
            frame = frame.unique(maintain_order=True)
        if self._sdv_class != "GaussianCopulaSynthesizer" and self._batch_size % 10:
            raise ModelError("SDV's CTGAN/TVAE need model.batch_size divisible by 10 (pac=10)")
        self.sdv_ = self._make()
        self.sdv_.fit({"table": frame.to_pandas()})  # SDV 2 takes {table name: frame}
        self.privacy_record_ = non_dp_record()
        if progress is not None:
            progress(Progress(self.model.epochs, self.model.epochs, float("nan"), None))
        return self

    def sample_batches(
        self, n: int, *, seed: int | None = None, batch_rows: int = 100_000
    ) -> Iterator[pl.DataFrame]:
        self._check_fitted()
        import numpy as np
        import torch

        seed = self.model.seed if seed is None else seed
        # SDV draws from numpy's and torch's global generators; seed both, restoring torch's after.
        np_state = np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            np.random.seed(seed)
            torch.manual_seed(seed)
            self.sdv_.reset_sampling()
            left = n
            try:
                while left > 0:
                    m = min(left, batch_rows)
                    out = self.sdv_.sample(num_rows=m)
                    # SDV 2 returns {table name: frame}.
                    yield pl.from_pandas(out["table"] if isinstance(out, dict) else out)
                    left -= m
            finally:
                np.random.set_state(np_state)

    def _empty_frame(self) -> pl.DataFrame:
        return pl.DataFrame(schema={c.name: pl.Null for c in self._tabular_schema().columns})

    def _save_state(self, directory: Path) -> None:
        self.sdv_.save(str(directory / "sdv_model.pkl"))

    def _load_state(self, directory: Path) -> None:
        if not self.model.sdv_allow_pickle:
            raise ModelError(
                f"{directory} holds an SDV model, saved with pickle: set model.sdv_allow_pickle: true "
                "to load it (only for artifacts this installation wrote)"
            )
        import sdv.single_table as st
        from sdv.utils import load_synthesizer  # SDV 2: the classes no longer have `load`

        loaded = load_synthesizer(str(directory / "sdv_model.pkl"))
        if not isinstance(loaded, getattr(st, self._sdv_class)):
            raise ModelError(
                f"{directory}: the SDV file holds a {type(loaded).__name__}, not a {self._sdv_class}"
            )
        self.sdv_ = loaded


class SDVGaussianCopula(_SDVSynthesizer):
    kind = "sdv_gaussian_copula"
    _sdv_class = "GaussianCopulaSynthesizer"


class SDVCTGAN(_SDVSynthesizer):
    kind = "sdv_ctgan"
    _sdv_class = "CTGANSynthesizer"


class SDVTVAE(_SDVSynthesizer):
    kind = "sdv_tvae"
    _sdv_class = "TVAESynthesizer"
