"""The notebook API: fit a DP synthesizer on a DataFrame, sample, evaluate, with no pipeline around it.

>>> import synthgen
>>> synth = synthgen.Synthesizer(epsilon=1.0).fit(df)          # doctest: +SKIP
>>> fake = synth.sample(1_000, seed=0)                          # doctest: +SKIP
>>> synth.privacy_["epsilon"]                                   # doctest: +SKIP

The synthesizers, the DP preprocessing (row count, numeric bounds and category discovery
unless declared public in ``metadata``) and the privacy record are the pipeline's own; what
this mode leaves out is the governance around them. A notebook fit is **governed by no
cap**: nothing is written to a ledger, each ``fit`` spends its ``epsilon`` again on the same
people, and nothing stops a second fit on the same data. Use ``synthgen run`` (ledger, caps,
zones, encryption, audit) for anything shared. Pandas in gives pandas out; polars in gives
polars out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from synthgen.errors import SpecError

#: What ``kind="auto"`` picks: the marginal-based DP model, which keeps column relationships
#: that DP-SGD models lose on mid-size tables (DESIGN.md, section 4), and trains in seconds.
AUTO_KIND = "dp_mst"
_META = "synthgen-notebook.json"
#: The notebook evaluation's holdout split is keyed like the pipeline's, with a fixed key so
#: that the same frame splits the same way in every session.
_NOTEBOOK_HOLDOUT_KEY = b"synthgen-notebook-holdout-v1"


def _to_polars(data: Any) -> tuple[pl.DataFrame, str]:
    if isinstance(data, pl.DataFrame):
        return data, "polars"
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas ships with the core dependencies
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        return pl.from_pandas(data), "pandas"
    raise SpecError(f"expected a pandas or polars DataFrame, got {type(data).__name__}")


def _from_polars(frame: pl.DataFrame, flavour: str) -> Any:
    return frame.to_pandas() if flavour == "pandas" else frame


def _overrides(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """``{"age": {"type": "numeric", "bounds": [0, 120]}, ...}`` -> the spec's column overrides."""
    from synthgen.spec import ColumnOverride

    out = {}
    for name, value in (metadata or {}).items():
        if isinstance(value, str):
            value = {"type": value}
        out[name] = ColumnOverride.model_validate(value)
    return out


def _privacy_view(record: dict[str, Any], kind: str) -> dict[str, Any]:
    """The privacy record, with the spent (ε, δ) first and the fact that no cap governed it."""
    return {
        "dp": record.get("dp"),
        "epsilon": record.get("spent_epsilon"),
        "delta": record.get("spent_delta"),
        "kind": kind,
        "governed_by_cap": False,
        **record,
    }


class Synthesizer:
    """A DP synthesizer for one table, configured in the constructor and learned by :meth:`fit`.

    Args:
        kind: ``"auto"`` (the marginal-based ``dp_mst``), or any ``model.kind`` of a spec
            (``dp_tvae``, ``dp_ctgan``, ``dp_mst``; the ``sdv_*`` kinds are not DP).
        epsilon: the (ε) this fit may spend, DP preprocessing included. It is not charged to
            any ledger: a notebook fit is governed by no cap.
        delta: δ; None means 1/(10 n) as in the pipeline (P3).
        dp: False trains without differential privacy (for comparison only, P7).
        **options: any other ``model`` setting of a spec (``epochs=10``, ``batch_size=256``...).
    """

    def __init__(
        self,
        kind: str = "auto",
        epsilon: float = 1.0,
        delta: float | None = None,
        *,
        dp: bool = True,
        **options: Any,
    ) -> None:
        self.kind = kind
        self.epsilon = epsilon
        self.delta = delta
        self.dp = dp
        self.options = options

    def fit(self, data: Any, metadata: dict[str, Any] | None = None) -> Synthesizer:
        """Fit on ``data`` (pandas or polars). ``metadata`` declares columns as in a spec's ``columns``:

        ``{"age": {"bounds": [0, 120]}, "city": {"categories": ["Oslo", "Rome"]}, "id": "id"}``.
        Declared bounds and categories are public and free under DP; undeclared ones are
        found by DP mechanisms that spend part of ``epsilon``. ``id`` and ``text`` columns
        are left out of the table model.
        """
        from synthgen.models.base import make_synthesizer
        from synthgen.models.settings import ModelSettings
        from synthgen.privacy.settings import PrivacySettings
        from synthgen.schema import ColumnType
        from synthgen.sources import infer_schema

        frame, self.flavour_ = _to_polars(data)
        schema = infer_schema(frame, _overrides(metadata))
        kind = AUTO_KIND if self.kind == "auto" else self.kind
        model = ModelSettings.model_validate({"kind": kind, **self.options})
        privacy = PrivacySettings(dp=self.dp, epsilon=self.epsilon, delta=self.delta)
        self.model_ = make_synthesizer(kind, schema=schema, model=model, privacy=privacy)
        self.model_.fit(frame)
        self.columns_ = [c.name for c in schema.columns if c.type not in (ColumnType.id, ColumnType.text)]
        record = self.model_.privacy_record_
        assert record is not None
        self.privacy_: dict[str, Any] = _privacy_view(record.model_dump(mode="json"), kind)
        return self

    def sample(self, n: int, seed: int | None = None) -> Any:
        """``n`` synthetic rows, as the same kind of DataFrame :meth:`fit` was given."""
        self._check_fitted()
        return _from_polars(self.model_.sample(n, seed=seed), self.flavour_)

    def save(self, path: str | Path) -> Path:
        """Write the fitted model (weights, public configuration, privacy record; no training rows)."""
        self._check_fitted()
        path = Path(path)
        self.model_.save(path)
        (path / _META).write_text(json.dumps({"flavour": self.flavour_, "kind": self.kind}), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Synthesizer:
        """A fitted synthesizer saved by :meth:`save` (or a pipeline model's ``tabular`` folder)."""
        from synthgen.models.base import Synthesizer as Model

        path = Path(path)
        model = Model.load(path)
        meta_path = path / _META
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
        privacy = model.privacy
        self = cls(
            kind=meta.get("kind", model.model.kind),
            epsilon=privacy.epsilon,
            delta=privacy.delta,
            dp=privacy.dp,
        )
        self.model_, self.flavour_ = model, meta.get("flavour", "polars")
        record = model.privacy_record_
        self.privacy_ = _privacy_view(record.model_dump(mode="json") if record else {}, model.model.kind)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise SpecError("this Synthesizer is not fitted yet: call .fit(df) first")

    def __repr__(self) -> str:
        state = "fitted" if hasattr(self, "model_") else "not fitted"
        settings = f"kind={self.kind!r}, epsilon={self.epsilon}, delta={self.delta}, dp={self.dp}"
        return f"Synthesizer({settings}; {state})"


def evaluate(
    real: Any, synthetic: Any, *, holdout: Any = None, target: str | None = None, **settings: Any
) -> Any:
    """Compare ``synthetic`` with ``real`` and return the report object (verdict, sections, summary).

    ``holdout`` (real rows the synthesizer never saw) is the baseline of the privacy metrics
    and the test set of the utility metrics; without it a 20% slice of ``real`` is split off,
    which only makes sense when the synthesizer was fitted on the other 80%. The result is
    real-derived: ``synthgen.evaluate.html.render(result)`` gives the HTML page, restricted.
    """
    # The submodules, not the package: synthgen.evaluate forwards its notebook call to this module.
    from synthgen.evaluate.evaluation import evaluate as evaluate_frames
    from synthgen.evaluate.holdout import split_holdout
    from synthgen.evaluate.settings import EvaluateSettings

    train, _ = _to_polars(real)
    syn, _ = _to_polars(synthetic)
    if holdout is None:
        train, hold = split_holdout(train, 0.2, key=_NOTEBOOK_HOLDOUT_KEY)
    else:
        hold, _ = _to_polars(holdout)
    return evaluate_frames(
        train=train,
        holdout=hold,
        synthetic=syn,
        schema=None,
        settings=EvaluateSettings(target=target, **settings),
    )


def anonymize(
    data: Any, *, secret: bytes | None = None, columns: dict[str, Any] | None = None, **settings: Any
) -> Any:
    """Remove direct identifiers from ``data`` with Presidio (offline), as the pipeline's anonymize stage.

    Identifier columns (by declaration in ``columns``, name or Presidio on a sample) are
    dropped or replaced by their operator; PII spans in text columns are replaced. ``secret``
    (>= 16 bytes) keys surrogates and hashes: pass the same one for consistent pseudonyms
    across calls; None draws a fresh one. Defence in depth, not a guarantee (P8). Returns
    the same kind of DataFrame it was given.
    """
    import secrets as _secrets

    from synthgen.anonymize import anonymize_table
    from synthgen.anonymize.settings import AnonymizeSettings
    from synthgen.sources import infer_schema

    frame, flavour = _to_polars(data)
    overrides = _overrides(columns)
    operators = {name: o.operator for name, o in overrides.items() if o.operator is not None}
    opts = AnonymizeSettings.model_validate(
        {**settings, "operators": {**operators, **settings.get("operators", {})}}
    )
    result = anonymize_table(
        frame,
        schema=infer_schema(frame, overrides),
        settings=opts,
        secret=secret or _secrets.token_bytes(32),
    )
    assert result.frame is not None
    return _from_polars(result.frame, flavour)
