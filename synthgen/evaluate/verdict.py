"""Pass / warn / fail for every report section, against the thresholds documented here.

A report of numbers alone leaves the reader to guess which ones matter. Each rule below
reads one section's metrics and details and says ``pass``, ``warn`` or ``fail`` with a
sentence per finding; the report shows the worst level as a traffic light and lists the
failures first under "Look at these first". The thresholds are the project's, written
down in one place (and in docs/report-verdict.md) so that a reviewer can argue with them:

========================  =========================================  ======================
section                   pass                                       fail
========================  =========================================  ======================
fidelity                  1-way TVD mean <= 0.10, no column with     TVD mean > 0.20, or a
                          >= 10% synthetic values unseen in real     column >= 50% unseen
                          data (the model's ``other``)               (collapsed to other)
correlation               each of the 5 strongest real associations  one lost more than 0.30
                          (>= 0.3) kept within 0.15
utility                   TSTR >= 0.9 x TRTR (HGB main metric),      TSTR < 0.75 x TRTR, TSTR
                          no TSTR F1 of 0 where TRTR's is above 0    not computed, or F1 = 0
                                                                     where TRTR's is >= 0.1
privacy                   DCR share <= 0.60, attack AUC <= 0.60      DCR share > 0.70 or
                                                                     attack AUC > 0.70
leakage                   0 real identifier values found             any found
text                      holdout perplexity <= 2.5 per byte         the DP quality gate
                                                                     failed (DP perplexity
                                                                     > 3.5 per byte)
========================  =========================================  ======================

Between pass and fail is warn. The text section follows the quality gate decided at training
time (:mod:`synthgen.models.text.gate`): a failed gate fails the section; a passed gate with
an exact perplexity above 3.5 (the DP figure is noisy) warns. When the gate withheld the
column (``model.text.fallback: drop`` or ``empty``), that failure does not count towards the
overall verdict, whose words say the notes were withheld instead: the published tables are
judged on their own, and no unreadable text reached anyone. With ``fallback: model`` the
unreadable text was published, and the failure counts (without a gate, as for a model trained
before it, the exact perplexity alone decides: fail above 3.5). A section that was skipped
(not configured) is ``n/a``; a section that could not be computed is ``warn`` (schema:
``fail`` when nothing compares).
A column the pipeline dropped on purpose (identifier, text left out) is no finding.
The verdict is real-derived like the report (P1): it stays restricted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from synthgen.evaluate.sections.base import SectionResult, Verdict
from synthgen.models.text.gate import READABLE_PERPLEXITY

Finding = tuple[Verdict, str]

_ORDER: dict[Verdict, int] = {"n/a": 0, "pass": 1, "warn": 2, "fail": 3}


@dataclass(frozen=True)
class Thresholds:
    """The documented thresholds (module docstring); pass one to :func:`judge` to change them."""

    tvd_pass: float = 0.10
    tvd_fail: float = 0.20
    unseen_warn: float = 0.10
    unseen_fail: float = 0.50
    association_pass: float = 0.15
    association_fail: float = 0.30
    utility_pass: float = 0.90
    utility_fail: float = 0.75
    f1_meaningful: float = 0.10
    dcr_pass: float = 0.60
    dcr_fail: float = 0.70
    attack_pass: float = 0.60
    attack_fail: float = 0.70
    perplexity_pass: float = 2.5
    #: Also the text quality gate's bar (:data:`synthgen.models.text.gate.READABLE_PERPLEXITY`).
    perplexity_fail: float = READABLE_PERPLEXITY


THRESHOLDS = Thresholds()


def worst(levels: Iterable[Verdict]) -> Verdict:
    """The most severe level (``n/a`` when there is none)."""
    return max(levels, key=lambda v: _ORDER[v], default="n/a")


def _band(value: float, pass_at: float, fail_at: float) -> Verdict:
    """``pass`` up to ``pass_at``, ``fail`` above ``fail_at``, ``warn`` between (higher is worse)."""
    if value <= pass_at:
        return "pass"
    return "fail" if value > fail_at else "warn"


def _schema(s: SectionResult, t: Thresholds) -> list[Finding]:
    if s.status == "error" and s.metrics.get("columns_compared") == 0:
        return [("fail", s.message or "no column can be compared")]
    return [("warn", a) for a in s.alerts] or [("pass", s.message or "schemas match")]


def _fidelity(s: SectionResult, t: Thresholds) -> list[Finding]:
    out: list[Finding] = []
    for col, share in sorted((s.details.get("unseen_share") or {}).items(), key=lambda kv: -kv[1]):
        if share >= t.unseen_fail:
            out.append(("fail", f"column {col!r} collapsed: {share:.0%} of synthetic values are 'other'"))
        elif share >= t.unseen_warn:
            out.append(("warn", f"column {col!r}: {share:.0%} of synthetic values are 'other'"))
    tvd = s.metrics.get("tvd_1way_mean")
    if isinstance(tvd, int | float):
        level = _band(tvd, t.tvd_pass, t.tvd_fail)
        out.append((level, f"1-way marginal distance {tvd:.2f} (pass <= {t.tvd_pass}, fail > {t.tvd_fail})"))
    return out


def _correlation(s: SectionResult, t: Thresholds) -> list[Finding]:
    strongest = s.details.get("strongest")
    if strongest is None:
        return []
    if not strongest:
        return [("pass", "no real association of 0.3 or more to keep")]
    out: list[Finding] = []
    for p in strongest:
        syn = p["synthetic"]
        gap = abs(p["real"]) if syn is None else abs(p["real"] - syn)
        level = _band(gap, t.association_pass, t.association_fail)
        if level != "pass":
            shown = "undefined" if syn is None else f"{syn:.2f}"
            what = "relationship lost" if level == "fail" else "relationship weakened"
            out.append(
                (
                    level,
                    f"{p['column_1']} × {p['column_2']}: {what}, association {p['real']:.2f} real"
                    f" → {shown} synthetic",
                )
            )
    if not out:
        out.append(
            ("pass", f"the {len(strongest)} strongest real associations kept within {t.association_pass}")
        )
    return out


def _utility(s: SectionResult, t: Thresholds) -> list[Finding]:
    out: list[Finding] = [("fail", a) for a in s.alerts if a.startswith("TSTR")]
    out += [("warn", a) for a in s.alerts if not a.startswith("TSTR")]
    for model in ("hgb", "linear"):
        real_f1, syn_f1 = s.metrics.get(f"{model}_trtr_f1"), s.metrics.get(f"{model}_tstr_f1")
        if isinstance(real_f1, int | float) and real_f1 > 0 and syn_f1 == 0:
            # A real-trained model that barely finds the class either (F1 under 0.1) loses little.
            level: Verdict = "fail" if real_f1 >= t.f1_meaningful else "warn"
            name = "gradient boosting" if model == "hgb" else "linear model"
            out.append(
                (
                    level,
                    f"{name} trained on synthetic rows never predicts the class"
                    f" (F1 = 0; trained on real rows {real_f1:.2f})",
                )
            )
    ratio = s.metrics.get("hgb_ratio")
    metric = s.headline.get("utility_metric") or "score"
    if isinstance(ratio, int | float):
        level = _band(-ratio, -t.utility_pass, -t.utility_fail)
        out.append((level, f"TSTR {metric} is {ratio:.2f} × TRTR (pass >= {t.utility_pass})"))
    return out


def _privacy(s: SectionResult, t: Thresholds) -> list[Finding]:
    out: list[Finding] = []
    if s.metrics.get("dp") is False:
        out.append(("warn", "trained without differential privacy: no formal guarantee, not shareable"))
    share, auc = s.metrics.get("dcr_share_closer_to_train"), s.metrics.get("attack_auc")
    if isinstance(share, int | float):
        out.append(
            (_band(share, t.dcr_pass, t.dcr_fail), f"DCR share {share:.2f} (about 0.5 = no memorisation)")
        )
    if isinstance(auc, int | float):
        out.append(
            (_band(auc, t.attack_pass, t.attack_fail), f"membership attack AUC {auc:.2f} (0.5 = chance)")
        )
    out += [("warn", a) for a in s.alerts if a.startswith(("exact copies", "synthetic rows sit closer"))]
    return out


def _leakage(s: SectionResult, t: Thresholds) -> list[Finding]:
    found = s.metrics.get("real_values_found")
    if found is None:
        return [("warn", "the leak scan gave no total of real identifier values")]
    if found:
        return [("fail", f"{found} real identifier value(s) found in the synthetic output")]
    return [("pass", "no real identifier value in the synthetic output")]


_WITHHELD_WORDS = {"dropped": "left out of the dataset", "nulls": "published with every value null"}


def _text_findings(s: SectionResult, t: Thresholds, *, skip: Iterable[str] = ()) -> list[Finding]:
    """Per text column: the quality gate's decision, then the exact holdout perplexity's band."""
    gates: dict[str, dict[str, Any]] = s.details.get("gates") or {}
    exact = {
        k.removesuffix(".perplexity"): v
        for k, v in s.metrics.items()
        if k.endswith(".perplexity") and isinstance(v, int | float)
    }
    out: list[Finding] = []
    for column in sorted((set(exact) | set(gates)) - set(skip)):
        gate, value = gates.get(column) or {}, exact.get(column)
        shown = f"holdout perplexity {value:.2f} per byte" if value is not None else "no holdout perplexity"
        dp = gate.get("dp_perplexity_per_byte")
        if gate and not gate.get("checked", True):
            out.append(("warn", f"text column {column!r}: published unchecked (no held-out rows to gate it)"))
            continue
        if gate and not gate.get("passed", True):
            figure = f"DP perplexity {dp:.2f} > {t.perplexity_fail:g}" if dp is not None else "no DP figure"
            what = _WITHHELD_WORDS.get(
                gate.get("output", ""), "published anyway (model.text.fallback: model)"
            )
            out.append(
                (
                    "fail",
                    f"text column {column!r}: below the readability bar ({figure}; exact {shown}): {what}",
                )
            )
            continue
        if value is None:
            continue
        level = _band(value, t.perplexity_pass, t.perplexity_fail)
        sentence = (
            f"text column {column!r}: {shown}"
            f" (readable <= {t.perplexity_pass}, unreadable > {t.perplexity_fail})"
        )
        if level == "fail" and gate:
            level = "warn"  # the gate (a noisy DP figure) let it through: published, but look at it
            sentence += f"; the DP quality gate passed it (DP perplexity {dp:.2f})" if dp is not None else ""
        out.append((level, sentence))
    return out


def _text(s: SectionResult, t: Thresholds) -> list[Finding]:
    return _text_findings(s, t)


def withheld_text(section: SectionResult) -> dict[str, str]:
    """Text columns the quality gate withheld, with what was published instead (from the text section)."""
    gates: dict[str, dict[str, Any]] = section.details.get("gates") or {}
    return {
        c: _WITHHELD_WORDS[g["output"]]
        for c, g in sorted(gates.items())
        if g.get("output") in _WITHHELD_WORDS
    }


def _alerts_warn(s: SectionResult, t: Thresholds) -> list[Finding]:
    return [("warn", a) for a in s.alerts] or [("pass", "no subgroup gap beyond the alert threshold")]


_RULES: dict[str, Callable[[SectionResult, Thresholds], list[Finding]]] = {
    "schema": _schema,
    "fidelity": _fidelity,
    "correlation": _correlation,
    "utility": _utility,
    "bias": _alerts_warn,
    "privacy": _privacy,
    "leakage": _leakage,
    "text": _text,
}


def judge(section: SectionResult, thresholds: Thresholds = THRESHOLDS) -> None:
    """Set ``section.verdict`` and ``section.findings`` (worst first) from its metrics, and
    ``section.overall`` where the section weighs less in the overall verdict (withheld text)."""
    section.overall = None
    if section.status == "skipped":
        section.verdict, section.findings = "n/a", []
        return
    rule = _RULES.get(section.name)
    findings = rule(section, thresholds) if rule is not None else []
    if section.status == "error" and not any(level == "fail" for level, _ in findings):
        findings.append(("warn", f"not computed: {section.message}"))
    findings.sort(key=lambda f: -_ORDER[f[0]])
    section.findings = findings
    section.verdict = worst(level for level, _ in findings) if findings else "pass"
    withheld = withheld_text(section) if section.name == "text" else {}
    if withheld:
        # What was withheld reached no one: the section counts for the columns published only.
        rest = _text_findings(section, thresholds, skip=withheld)
        section.overall = worst(level for level, _ in rest)


def overall_words(verdict: Verdict, withheld: dict[str, str]) -> str:
    """The overall verdict in words, saying which text columns the quality gate withheld."""
    if not withheld:
        return VERDICT_WORDS[verdict]
    cols = ", ".join(f"{c} ({what})" for c, what in withheld.items())
    note = f"the text model is below the readability bar, so its notes were withheld: {cols}"
    if verdict == "pass":
        return f"the tables are fit for use: every other section passed its threshold; {note}"
    return f"{VERDICT_WORDS[verdict]}; {note}"


#: What the overall verdict means, in words for the run summary and the report's first line.
VERDICT_WORDS: dict[Verdict, str] = {
    "pass": "fit for use: every section passed its threshold",
    "warn": "usable with care: some sections are borderline (see 'look at these first')",
    "fail": "not fit for use as it stands: some sections failed (see 'look at these first')",
    "n/a": "no verdict: nothing was evaluated",
}
