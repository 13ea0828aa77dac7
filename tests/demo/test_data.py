from __future__ import annotations

import polars as pl

from synthgen.demo.data import DIRECT_IDENTIFIERS, generate_patients, truth_path, write_demo_csv


def test_generate_patients_is_deterministic_for_a_seed():
    a, ta = generate_patients(300, seed=7)
    b, tb = generate_patients(300, seed=7)
    c, _ = generate_patients(300, seed=8)
    assert a.equals(b) and ta.equals(tb)
    assert not a["name"].equals(c["name"])


def test_columns_and_types():
    v, _ = generate_patients(200, seed=1)
    assert v.height == 200
    for col in DIRECT_IDENTIFIERS:
        assert v[col].dtype == pl.String and v[col].null_count() == 0
    assert v["date_of_birth"].dtype == pl.Date
    assert v["admission_date"].dtype == pl.Date
    assert v["zip"].dtype == pl.String and v["zip"].str.len_chars().eq(5).all()
    assert v["readmitted_30d"].dtype == pl.Boolean
    assert set(v["sex"].unique()) <= {"F", "M"}
    assert (v["date_of_birth"] <= v["admission_date"]).all()
    assert v["visit_id"].is_unique().all()


def test_truth_offsets_point_at_the_planted_values():
    v, truth = generate_patients(500, seed=3)
    notes = dict(zip(v["visit_id"], v["notes"]))
    assert truth.height > 500  # 1-3 sentences, most with several identifiers
    for vid, value, start, end in truth.select("visit_id", "value", "start", "end").iter_rows():
        assert notes[vid][start:end] == value
    assert set(truth["entity_type"].unique()) == {
        "PERSON",
        "PHONE_NUMBER",
        "DATE_TIME",
        "LOCATION",
        "EMAIL_ADDRESS",
    }


def test_diagnosis_drives_stay_and_charges_and_age_drives_readmission():
    v, _ = generate_patients(4000, seed=0)
    by_diag = v.group_by("diagnosis_category").agg(
        pl.col("length_of_stay").mean().alias("los"), pl.col("total_charges").mean().alias("charges")
    )
    los = dict(zip(by_diag["diagnosis_category"], by_diag["los"]))
    charges = dict(zip(by_diag["diagnosis_category"], by_diag["charges"]))
    assert los["oncology"] > 1.8 * los["maternity"]
    assert charges["oncology"] > 2 * charges["gastrointestinal"]
    age = (v["admission_date"] - v["date_of_birth"]).dt.total_days() / 365.25
    old = v.filter(age >= 70)["readmitted_30d"].mean()
    young = v.filter(age < 40)["readmitted_30d"].mean()
    assert old > 2 * young


def test_write_demo_csv_writes_csv_and_truth_beside_it(tmp_path):
    csv, truth = write_demo_csv(tmp_path / "sub" / "patients.csv", n=50, seed=2)
    assert csv.exists() and truth == truth_path(csv) and truth.exists()
    back = pl.read_csv(csv, schema_overrides={"zip": pl.String})
    v, t = generate_patients(50, seed=2)
    assert back["notes"].to_list() == v["notes"].to_list()
    assert back["zip"].to_list() == v["zip"].to_list()
    assert pl.read_parquet(truth).equals(t)
