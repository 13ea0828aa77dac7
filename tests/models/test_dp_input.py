"""Under DP no decision reads a raw value: nullability, parsing and refusals (issue 12, point 4)."""

from __future__ import annotations

import polars as pl
import pytest

from synthgen.errors import ModelError, SpecError
from synthgen.models.base import make_synthesizer
from synthgen.models.dp_input import dp_coerce
from synthgen.models.encoding import validate_frame
from synthgen.models.settings import ModelSettings
from synthgen.privacy.declared import require_declared_types
from synthgen.privacy.settings import PrivacySettings
from synthgen.schema import ColumnSchema, ColumnType, TableSchema
from synthgen.spec import ColumnOverride

SCHEMA = TableSchema(
    columns=[
        ColumnSchema(name="x", type=ColumnType.numeric, bounds=(0, 100), nullable=False),
        ColumnSchema(name="c", type=ColumnType.categorical, categories=["a", "b"], nullable=False),
        ColumnSchema(name="flag", type=ColumnType.boolean, nullable=False),
    ]
)


def _frame(n: int = 400) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "x": [float(i % 100) for i in range(n)],
            "c": ["a" if i % 3 else "b" for i in range(n)],
            "flag": [i % 2 == 0 for i in range(n)],
        }
    )


def _encoder_nulls(frame: pl.DataFrame) -> list[bool]:
    synth = make_synthesizer(
        "dp_tvae",
        schema=SCHEMA,
        model=ModelSettings(kind="dp_tvae", batch_size=32, device="cpu"),
        privacy=PrivacySettings(epsilon=2.0),
    )
    return [c.null for c in synth._prepare(frame).encoder.config.columns]


def test_one_null_row_does_not_change_what_a_dp_model_can_emit() -> None:
    # Today's code read nullability from all rows: the neighbour with one null row got a
    # null token (or, with the schema saying not nullable, a refusal). Under DP every
    # column has the token, and the null rate is learned with DP.
    plain = _frame()
    neighbour = pl.concat(
        [plain, pl.DataFrame({"x": [None], "c": [None], "flag": [None]}, schema=plain.schema)]
    )
    assert _encoder_nulls(plain) == _encoder_nulls(neighbour) == [True, True, True]


@pytest.mark.parametrize(
    "column",
    [
        pl.Series("c", ["same"] * 10),
        pl.Series("c", [None] * 10, dtype=pl.String),
        pl.Series("c", [f"v{i}" for i in range(2_000)]),
    ],
)
def test_value_refusals_do_not_run_under_dp(column: pl.Series) -> None:
    schema = TableSchema(columns=[ColumnSchema(name="c", type=ColumnType.categorical)])
    frame = column.to_frame()
    with pytest.raises(ModelError):
        validate_frame(frame, schema, max_categories=1000)
    validate_frame(frame, schema, max_categories=1000, dp=True)  # modelled; discovery caps categories


def test_a_declared_list_longer_than_the_limit_is_still_refused_under_dp() -> None:
    schema = TableSchema(
        columns=[ColumnSchema(name="c", type=ColumnType.categorical, categories=[f"v{i}" for i in range(20)])]
    )
    with pytest.raises(ModelError, match="declares 20 categories"):
        validate_frame(pl.DataFrame({"c": ["v1"]}), schema, max_categories=10, dp=True)


def test_unparseable_values_become_nulls_row_by_row() -> None:
    schema = TableSchema(
        columns=[
            ColumnSchema(name="b", type=ColumnType.boolean),
            ColumnSchema(name="ts", type=ColumnType.datetime),
            ColumnSchema(name="n", type=ColumnType.numeric),
        ]
    )
    frame = pl.DataFrame(
        {
            "b": ["Y", "no", "maybe", None],
            "ts": ["2021-01-01", "2021-01-02T10:00:00+02:00", "10:30", "2021-01-03 04:05:06Z"],
            "n": ["1.5", "x", "3", None],
        }
    )
    out = dp_coerce(frame, schema)
    assert out["b"].to_list() == [True, False, None, None]
    assert [str(v) if v else None for v in out["ts"].to_list()] == [
        "2021-01-01 00:00:00",
        "2021-01-02 08:00:00",
        None,
        "2021-01-03 04:05:06",
    ]
    assert out["n"].to_list() == [1.5, None, 3.0, None]
    # 1-stable: a neighbour with one odd row leaves every other row's value unchanged.
    odd = pl.DataFrame({"b": ["perhaps"], "ts": ["01/02/2021"], "n": ["?"]})
    again = dp_coerce(pl.concat([odd, frame]), schema)
    assert again.slice(1).equals(out)


def test_declared_schema_refuses_an_untyped_column_in_one_line() -> None:
    schema = TableSchema(
        columns=[
            ColumnSchema(name="age", type=ColumnType.numeric),
            ColumnSchema(name="city", type=ColumnType.categorical),
        ]
    )
    declared = PrivacySettings.model_validate({"schema": "declared"})
    typed = {"age": ColumnOverride(type=ColumnType.numeric)}
    with pytest.raises(SpecError, match=r"column\(s\) 'city' have no type in the spec") as err:
        require_declared_types(declared, typed, schema)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)
    require_declared_types(declared, typed | {"city": ColumnOverride(type=ColumnType.categorical)}, schema)
    require_declared_types(PrivacySettings(), typed, schema)  # inferred: allowed
    require_declared_types(PrivacySettings.model_validate({"schema": "declared", "dp": False}), typed, schema)


def _declared_encoding(text: str, overrides: dict[str, ColumnOverride]) -> tuple[bool, str]:
    import io

    from synthgen.models.dp_input import dp_schema
    from synthgen.models.encoding import NumericCode, TableEncoder
    from synthgen.privacy.declared import declared_storage
    from synthgen.privacy.mechanisms import noise_rng
    from synthgen.sources import infer_schema

    frame = pl.read_csv(io.StringIO(text))  # the reader's dtype: Int64 unless a value has a point
    declared = PrivacySettings.model_validate({"schema": "declared"})
    schema, frame = declared_storage(declared, overrides, infer_schema(frame, overrides), frame)
    enc, _ = TableEncoder.fit(
        frame,
        dp_schema(schema),
        dp=True,
        column_epsilon=0.5,
        column_sigma=5.0,
        column_delta=1e-7,
        discovery_delta=1e-7,
        n_public=2000.0,
        rng=noise_rng(),
    )
    code = enc.columns[0]
    assert isinstance(code, NumericCode)
    return code.integer, code.dtype


def test_declared_schema_takes_a_numbers_integer_flag_from_the_spec_not_one_rows_dtype() -> None:
    # Before: a column of whole numbers read as Int64 (integer grid, integer output) until one row
    # held 2.5, then as Float64: that row decided, with certainty, whether every value came out whole.
    whole = "amount\n" + "\n".join(str(i * 7 % 500) for i in range(2000))
    neighbour = whole.replace("amount\n", "amount\n2.5\n", 1)
    numeric = {"amount": ColumnOverride(type=ColumnType.numeric)}
    assert _declared_encoding(whole, numeric) == _declared_encoding(neighbour, numeric) == (False, "float")
    integer = {"amount": ColumnOverride(type=ColumnType.numeric, integer=True)}
    assert _declared_encoding(whole, integer) == _declared_encoding(neighbour, integer) == (True, "int")
