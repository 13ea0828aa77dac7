"""Each metric on a constructed case whose answer is known."""

import polars as pl
import pytest

from synthgen.evaluate import EvaluateSettings, evaluate

from .conftest import make_people, shuffle_columns


def test_identical_data_gives_top_quality_score_and_zero_distances(people, fast):
    train, hold = people
    r = evaluate(train=train, holdout=hold, synthetic=train, schema=None, settings=fast)
    fid = r.section("fidelity").metrics
    assert fid["quality_score"] == 1.0
    assert fid["column_shapes"] == 1.0 and fid["column_pair_trends"] == 1.0
    assert fid["tvd_1way_max"] == 0.0 and fid["tvd_2way_max"] == 0.0
    assert r.section("correlation").metrics["corr_diff_max"] == 0.0


def test_copy_of_training_rows_gives_dcr_share_near_one_and_attack_auc_near_one():
    # Equal-sized train and holdout: the DCR share sees every copied row.
    frame = make_people(800, seed=5)
    train, hold = frame.head(400), frame.tail(400)
    r = evaluate(
        train=train, holdout=hold, synthetic=train, schema=None, settings=EvaluateSettings(plots=False)
    )
    priv = r.section("privacy")
    assert priv.status == "ok"
    assert priv.metrics["dcr_share_closer_to_train"] >= 0.95
    assert priv.metrics["attack_auc"] >= 0.95
    assert priv.metrics["exact_match_rate"] == 1.0
    assert priv.metrics["exact_match_rate_holdout"] == 0.0
    assert any("DCR share" in a for a in priv.alerts) and any("attack AUC" in a for a in priv.alerts)


def test_copy_is_flagged_by_full_dcr_share_with_default_holdout(people):
    train, hold = people  # about 800 / 200 rows (the keyed holdout's size is binomial)
    r = evaluate(
        train=train, holdout=hold, synthetic=train, schema=None, settings=EvaluateSettings(plots=False)
    )
    m = r.section("privacy").metrics
    assert m["dcr_share_full_train"] >= 0.95
    assert m["dcr_share_full_train_expected"] == pytest.approx(train.height / 1000, abs=1e-3)
    # The equal-sized share is diluted (only a quarter of the copies fall in the sample) but still high.
    assert m["dcr_share_closer_to_train"] > 0.6
    assert m["attack_auc"] >= 0.95


def test_fresh_sample_from_the_same_distribution_shows_no_memorisation(people):
    train, hold = people
    fresh = make_people(800, seed=99)
    r = evaluate(
        train=train, holdout=hold, synthetic=fresh, schema=None, settings=EvaluateSettings(plots=False)
    )
    m = r.section("privacy").metrics
    assert 0.4 <= m["dcr_share_closer_to_train"] <= 0.6
    assert abs(m["dcr_share_full_train"] - m["dcr_share_full_train_expected"]) < 0.08
    assert 0.4 <= m["attack_auc"] <= 0.6
    assert not r.section("privacy").alerts


def test_independent_columns_give_low_pair_trends_but_good_shapes(people, fast):
    train, hold = people
    r = evaluate(train=train, holdout=hold, synthetic=shuffle_columns(train, 4), schema=None, settings=fast)
    fid = r.section("fidelity").metrics
    assert fid["column_shapes"] >= 0.95
    assert fid["column_pair_trends"] < 0.6
    assert fid["tvd_2way_max"] > 0.3
    assert r.section("correlation").metrics["corr_diff_max"] > 0.8


def test_utility_tstr_matches_trtr_on_same_distribution_and_collapses_on_shuffled(people, fast):
    train, hold = people
    good = evaluate(train=train, holdout=hold, synthetic=make_people(800, 42), schema=None, settings=fast)
    bad = evaluate(train=train, holdout=hold, synthetic=shuffle_columns(train, 4), schema=None, settings=fast)
    g, b = good.section("utility").metrics, bad.section("utility").metrics
    assert g["hgb_trtr_roc_auc"] > 0.85
    assert abs(g["hgb_tstr_roc_auc"] - g["hgb_trtr_roc_auc"]) < 0.05
    assert b["hgb_tstr_roc_auc"] < 0.65
    assert set(g) >= {"linear_trtr_roc_auc", "linear_tstr_f1", "hgb_tstr_accuracy"}


def test_regression_target_reports_r2_and_mae(people):
    train, hold = people
    r = evaluate(
        train=train,
        holdout=hold,
        synthetic=train,
        schema=None,
        settings=EvaluateSettings(target="z", plots=False),
    )
    u = r.section("utility")
    assert u.metrics["task"] == "regression"
    assert u.metrics["hgb_trtr_r2"] > 0.9 and u.metrics["linear_tstr_r2"] > 0.9
    assert u.metrics["hgb_trtr_mae"] > 0


def test_multiclass_target_reports_macro_scores(people):
    train, hold = people
    r = evaluate(
        train=train,
        holdout=hold,
        synthetic=train,
        schema=None,
        settings=EvaluateSettings(target="colour", plots=False),
    )
    u = r.section("utility")
    assert u.status == "ok"
    # colour is independent of everything: AUC near chance, but computed.
    assert 0.3 < u.metrics["hgb_trtr_roc_auc"] < 0.7
    assert u.metrics["hgb_trtr_f1"] is not None


def test_bias_reports_subgroup_shares_and_flags_a_shifted_share(people, fast):
    train, hold = people
    skewed = pl.concat([train.filter(pl.col("sex") == "M")] * 2)
    r = evaluate(train=train, holdout=hold, synthetic=skewed, schema=None, settings=fast)
    bias = r.section("bias")
    assert bias.status == "ok"
    shares = {row[0]: row for row in bias.tables[0].rows}
    assert shares["F"][2] == 0.0 and shares["F"][1] > 0.3
    assert bias.metrics["sex_max_share_gap"] > 0.3
    assert any("sex: HistGradientBoosting utility" in t.title for t in bias.tables)


def test_privacy_guarantee_from_ledger_appears_beside_empirical_metrics(people, fast):
    train, hold = people
    r = evaluate(
        train=train,
        holdout=hold,
        synthetic=train,
        schema=None,
        settings=fast,
        privacy={"dp": True, "epsilon": 2.5, "delta": 1e-6},
    )
    assert r.headline["epsilon"] == 2.5 and r.headline["delta"] == 1e-6 and r.headline["dp"] is True
    nondp = evaluate(
        train=train, holdout=hold, synthetic=train, schema=None, settings=fast, privacy={"dp": False}
    )
    assert any("without differential privacy" in a for a in nondp.section("privacy").alerts)


def test_mode_collapse_is_named_instead_of_read_as_memorisation(people):
    train, hold = people
    # Every synthetic row is the same typical row: no copy of any one person, but the DCR
    # shares then hinge on the few real rows nearest to it.
    typical = train.head(1).with_columns(pl.lit(0.01).alias("x"), pl.lit(0.03).alias("z"))
    r = evaluate(
        train=train,
        holdout=hold,
        synthetic=pl.concat([typical] * 300),
        schema=None,
        settings=EvaluateSettings(plots=False),
    )
    priv = r.section("privacy")
    assert priv.metrics["dcr_distinct_nearest_share"] < 0.05
    assert "crowd around few real records" in priv.message


def test_scores_are_numeric_headline_values_only(people, fast):
    train, hold = people
    r = evaluate(
        train=train,
        holdout=hold,
        synthetic=train,
        schema=None,
        settings=fast,
        privacy={"dp": True, "epsilon": 1.0, "delta": 1e-6, "accountant": "prv", "cap": 10.0},
    )
    scores = r.scores
    assert scores["quality_score"] == 1.0 and "attack_auc" in scores
    assert all(isinstance(v, float) for v in scores.values())
    assert "utility_metric" not in scores and "dp" not in scores and "schema_matches" not in scores
    assert r.section("privacy").metrics["ledger_accountant"] == "prv"
    assert r.section("privacy").metrics["ledger_cap"] == 10.0
