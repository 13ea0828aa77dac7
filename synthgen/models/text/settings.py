"""Text model section (``model.text``; owned by :mod:`synthgen.models.text`).

Every field here is public configuration: none of it is read from the data, so none of it
costs privacy budget (the word vocabulary released from the data is charged: see
``vocabulary_share``). Sizes default to a model that trains on two CPU cores in under a minute
on the demo's 10k short clinical notes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from synthgen.spec_section import SpecSection


class TextModelSettings(SpecSection):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    #: Synthesize text columns (False: text columns are left out of the synthetic output).
    enabled: bool = True
    #: Categorical columns the text is conditioned on (one prefix token each). Their category
    #: lists must be public (spec ``columns.<name>.categories``) or DP-discovered under DP.
    condition_on: list[str] = []
    #: Tokens: "words" adds word tokens (a word with its leading space, or a run of
    #: punctuation) to the 256 bytes, "bytes" uses bytes only. Under DP the words are
    #: released by Gaussian partition selection and charged to the text budget; a word
    #: needs to appear in hundreds of records to pass. Other words are spelled in bytes.
    vocabulary: Literal["words", "bytes"] = "words"
    #: Public word tokens (e.g. from a domain dictionary), used instead of a release from the
    #: data: nothing is charged for them. Under DP they must not come from the training text.
    words: list[str] | None = None
    #: Most word tokens kept (the most frequent by noisy count).
    max_words: int = Field(default=1000, ge=1, le=100_000)
    #: Distinct words each record may contribute to the vocabulary count (its first ones):
    #: the sensitivity of the DP release. More lets longer texts count fully, but costs noise.
    words_per_record: int = Field(default=16, ge=1, le=10_000)
    #: Share of the text model's epsilon and delta spent on the word vocabulary under DP
    #: (demo notes at text epsilon 0.9: share 0.1 released 38 words and gave holdout perplexity
    #: 5.8 per byte, share 0.3 released 61 words and gave 5.5; bytes only gave 13.3).
    vocabulary_share: float = Field(default=0.3, gt=0, lt=1)
    #: Passes over the data. Under DP the noise grows with the number of steps; on the demo
    #: notes (9,000 texts, text epsilon 0.9) 4 passes of batch 256 gave the lowest perplexity.
    epochs: int = Field(default=4, ge=1, le=10_000)
    #: Longest text kept, in UTF-8 bytes. Longer text keeps its first ``max_length`` bytes,
    #: cut back to a UTF-8 character boundary, and is trained without an end token.
    max_length: int = Field(default=256, ge=8, le=65_536)
    #: Expected (Poisson) batch size in records; under DP each record is in a batch with
    #: probability ``batch_size / n``.
    batch_size: int = Field(default=256, ge=1, le=1_000_000)
    #: Adam learning rate (1e-2 gave the lowest holdout perplexity at epsilon 0.9 on the demo notes).
    learning_rate: float = Field(default=1e-2, gt=0, le=10)
    #: Per-record gradient clipping bound C (DP-SGD sensitivity). Without DP, the bound of the
    #: usual whole-batch gradient-norm clip.
    max_grad_norm: float = Field(default=1.0, gt=0, le=1000)
    #: Opacus per-sample gradient mode: "hooks" (per-sample gradients kept in memory) or
    #: "ghost" (ghost clipping: two backward passes, no per-sample gradients stored).
    grad_sample_mode: Literal["hooks", "ghost"] = "hooks"
    #: Transformer width (must divide by n_heads). Under DP every parameter gets noise, so a
    #: small network learns more: on the demo notes at text epsilon 0.9, 64 wide and 1 block
    #: reached holdout perplexity 4.5 per byte against 5.5 for 64 x 2 blocks and 5.9 for 128 x 2.
    d_model: int = Field(default=64, ge=8, le=4_096)
    #: Transformer blocks.
    n_layers: int = Field(default=1, ge=1, le=64)
    #: Attention heads per block.
    n_heads: int = Field(default=2, ge=1, le=64)
    #: Null or empty text: "model" trains it as an empty text (so generation reproduces
    #: empty notes), "skip" leaves the row out of training. Both are counted.
    empty_text: Literal["model", "skip"] = "model"
    #: What the published dataset carries when the text model fails the quality gate (its DP
    #: perplexity per byte on the held-out real notes, measured right after training, is above
    #: the readability bar of 3.5; docs/report-verdict.md): "drop" leaves the column out,
    #: "empty" keeps it with every value null, "model" publishes the model's text anyway. In
    #: every case the run warns and its summary says so in one line; the manifest records it.
    fallback: Literal["drop", "empty", "model"] = "drop"
    #: Sampling defaults for generation (each can be overridden per call).
    temperature: float = Field(default=1.0, gt=0, le=100)
    #: Keep only the k most likely next bytes (0 = off).
    top_k: int = Field(default=0, ge=0, le=1_000_000)
    #: Nucleus sampling: keep the smallest set of next bytes with this total probability (1 = off).
    top_p: float = Field(default=1.0, gt=0, le=1)
    #: Rows generated per forward pass.
    generate_batch_size: int = Field(default=512, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _check(self) -> TextModelSettings:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        short = [w for w in self.words or [] if len(w.encode("utf-8")) < 2]
        if short:
            raise ValueError(
                f"words: {short[0]!r} is shorter than two bytes (single bytes are tokens already)"
            )
        return self
