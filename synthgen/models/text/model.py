"""DP text model: a small transformer over bytes and DP-selected words, trained with DP-SGD.

Privacy guarantee (DP mode). The released weights and word list are (epsilon, delta)-DP
with respect to adding or removing one training record (one text and its condition
values): the word vocabulary by Gaussian partition selection
(:mod:`synthgen.models.text.vocabulary`, ``vocabulary_share`` of the budget), the weights by
Opacus's accountant over Poisson-sampled DP-SGD steps (the rest), composed by addition.
It holds only if:

* the category lists passed as ``categories`` are public or were produced by a DP mechanism
  charged separately (they become vocabulary; under DP they are never read from the data);
* the settings (sizes, epochs, batch size, max_length) are chosen without looking at the data;
* one person contributes one record; otherwise the guarantee per person degrades with the
  number of their records (group privacy).

The DP noise and the Poisson sampling draw from OS entropy, not from ``seed``: a seed
written in a spec is public, and a known noise stream could be subtracted from the
weights. Training under DP is therefore not bit-for-bit reproducible; initialisation,
the non-DP mode and generation are.
"""

from __future__ import annotations

import json
import math
import secrets
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from synthgen.errors import ModelError, PrivacyError
from synthgen.models.text.accounting import (
    AccountantName,
    PrivacyEntry,
    TextPrivacyRecord,
    calibrate_noise,
)
from synthgen.models.text.network import TextTransformer
from synthgen.models.text.sampling import Utf8State, sample_next, state_masks
from synthgen.models.text.settings import TextModelSettings
from synthgen.models.text.tokenizer import EOS, IGNORE, InputStats, TextTokenizer
from synthgen.models.text.vocabulary import dp_words, exact_words

FORMAT = "synthgen.text-model/1"
#: progress(done_steps, total_steps, last_loss)
Progress = Callable[[int, int, float], None]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ModelError(f"text model: unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(
            f"text model: device {device!r} requested but CUDA is not available; use cpu or auto"
        )
    return dev


def _os_generator(device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(secrets.randbits(63))
    return g


class DPTextModel:
    """Language model for one text column (bytes + DP-selected words), trained with DP-SGD (Opacus).

    Args:
        settings: the spec's ``model.text`` section.
        epsilon, delta: the budget this model may spend (the text share of the run). The
            noise is calibrated so the spent epsilon at ``delta`` never exceeds ``epsilon``.
            Ignored, and may be None, when ``dp`` is False.
        dp: False trains the same model without clipping or noise, for comparison only; its
            output is not private (``privacy_record_.dp`` is False).
        device: auto | cpu | cuda | cuda:N.
        categories: public (or DP-discovered) category list for each column in
            ``settings.condition_on``. Required for each condition column under DP; without
            DP a missing list is taken from the data.
        accountant: "prv" or "rdp" (Opacus accountants).
        seed: seeds initialisation and, without DP, batch order. Never the DP noise.

    Fitted attributes: ``tokenizer_``, ``network_``, ``privacy_record_``, ``input_stats_``
    (exact counts over real rows: restricted), ``loss_history_``.
    """

    def __init__(
        self,
        *,
        settings: TextModelSettings,
        epsilon: float | None,
        delta: float | None,
        dp: bool = True,
        device: str = "auto",
        categories: Mapping[str, Sequence[str]] | None = None,
        accountant: AccountantName = "prv",
        seed: int = 0,
    ) -> None:
        if dp and (epsilon is None or delta is None):
            raise PrivacyError("text model: DP training needs epsilon and delta")
        self.settings = settings
        self.epsilon = epsilon
        self.delta = delta
        self.dp = dp
        self.device = resolve_device(device)
        self.categories = {k: list(v) for k, v in (categories or {}).items()}
        self.accountant: AccountantName = accountant
        self.seed = seed

    # -- training ----------------------------------------------------------------

    def _tokenizer_for(
        self, texts: pl.Series, conditions: pl.DataFrame | None
    ) -> tuple[TextTokenizer, PrivacyEntry | None]:
        """The tokenizer, and under DP with word tokens the ledger entry of its word release."""
        cats = dict(self.categories)
        for col in self.settings.condition_on:
            if col in cats:
                continue
            if self.dp:
                raise PrivacyError(
                    f"text model: condition column {col!r} has no public category list; under DP it "
                    f"cannot be read from the data. Declare columns.{col}.categories in the spec or "
                    "pass a DP-discovered list"
                )
            if conditions is None or col not in conditions.columns:
                raise ModelError(f"text model: condition column {col!r} is missing from the conditions")
            values = conditions.get_column(col).cast(pl.String).drop_nulls().unique().sort()
            cats[col] = values.to_list()
        s = self.settings
        words: list[str] = []
        entry = None
        if s.vocabulary == "words" and s.words is not None:
            words = list(s.words)
        elif s.vocabulary == "words":
            strings = [b.decode("utf-8") if b else None for b in TextTokenizer.to_bytes(texts, InputStats())]
            if self.dp:
                assert self.epsilon is not None and self.delta is not None
                eps, delta = self.epsilon * s.vocabulary_share, self.delta * s.vocabulary_share
                words, params = dp_words(
                    strings, epsilon=eps, delta=delta, per_record=s.words_per_record, max_words=s.max_words
                )
                # Charged as the release reports it: at the variance its sampler drew with
                # (epsilon at most the share asked for).
                entry = PrivacyEntry(
                    step="text_preprocessing",
                    mechanism=f"word vocabulary: Gaussian partition selection (discrete Gaussian, "
                    f"sigma={params['sigma']:.2f}, rho={params['rho']:.4g}, "
                    f"threshold={params['threshold']:.1f}, "
                    f"{s.words_per_record} words per record, {len(words)} released)",
                    epsilon=params["epsilon"],
                    delta=params["delta"],
                    accountant=self.accountant,
                )
            else:
                words = exact_words(strings, per_record=s.words_per_record, max_words=s.max_words)
        tok = TextTokenizer(
            condition_columns=s.condition_on, categories=cats, max_length=s.max_length, words=words
        )
        return tok, entry

    def _new_network(self, vocab_size: int, n_positions: int) -> TextTransformer:
        s = self.settings
        return TextTransformer(
            vocab_size=vocab_size,
            n_positions=n_positions,
            d_model=s.d_model,
            n_layers=s.n_layers,
            n_heads=s.n_heads,
        ).to(self.device)

    def fit(
        self,
        texts: pl.Series,
        conditions: pl.DataFrame | None = None,
        *,
        progress: Progress | None = None,
        n_public: float | None = None,
    ) -> DPTextModel:
        """Train on one text per record, conditioned on that record's categorical values.

        Args:
            texts: String (or Binary, decoded as UTF-8 with replacement) series, one per record.
            conditions: the columns named in ``settings.condition_on``, same row order.
            progress: called after each optimiser step with (done, total, loss).
            n_public: a DP (or public) count of the training records, e.g. the run's Laplace
                row count. Under DP it sets the Poisson rate ``batch_size / n_public`` and the
                gradient average. Without it the exact count is used, as Opacus does, and
                ``privacy_record_.row_count_source`` says "exact": the count is then not protected.
        """
        s = self.settings
        tok, vocab_entry = self._tokenizer_for(texts, conditions)
        inputs, targets, stats = tok.encode_training(texts, conditions, skip_empty=s.empty_text == "skip")
        n = len(inputs)
        if n == 0:
            raise ModelError("text model: no training text (every row was null or empty); nothing to learn")
        with torch.random.fork_rng(devices=[self.device.index or 0] if self.device.type == "cuda" else []):
            torch.manual_seed(self.seed)
            net = self._new_network(tok.vocab_size, tok.sequence_length)
        dataset = TensorDataset(torch.from_numpy(inputs), torch.from_numpy(targets))
        batch = min(s.batch_size, n)
        optimizer = torch.optim.Adam(net.parameters(), lr=s.learning_rate)
        criterion = torch.nn.CrossEntropyLoss(ignore_index=IGNORE)

        if self.dp:
            record, loss_history = self._fit_dp(
                net, optimizer, criterion, dataset, progress, n_public, vocab_entry
            )
        else:
            loader = DataLoader(
                dataset, batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(self.seed)
            )
            total = s.epochs * len(loader)
            loss_history = self._loop(
                net, optimizer, loader, total, progress, criterion=None, clip_batch=s.max_grad_norm
            )
            record = TextPrivacyRecord(dp=False, steps=total, epochs=s.epochs)

        net.eval()
        self.tokenizer_ = tok
        self.network_ = net
        self.privacy_record_ = record
        self.input_stats_: InputStats = stats
        self.loss_history_ = loss_history
        return self

    def _fit_dp(
        self,
        net: TextTransformer,
        optimizer: torch.optim.Optimizer,
        criterion: torch.nn.CrossEntropyLoss,
        dataset: TensorDataset,
        progress: Progress | None,
        n_public: float | None,
        vocab_entry: PrivacyEntry | None,
    ) -> tuple[TextPrivacyRecord, list[float]]:
        from opacus import PrivacyEngine
        from opacus.data_loader import DPDataLoader
        from opacus.validators import ModuleValidator

        s = self.settings
        assert self.epsilon is not None and self.delta is not None
        # DP-SGD gets what the word release left of the text budget.
        train_eps = self.epsilon - (vocab_entry.epsilon if vocab_entry else 0.0)
        train_delta = self.delta - (vocab_entry.delta if vocab_entry else 0.0)
        errors = ModuleValidator.validate(net, strict=False)
        if errors:
            raise ModelError(f"text model: network not supported by Opacus: {errors[0]}")
        # Poisson sampling at a public rate: q = batch_size / n_public when the caller passes a
        # DP (or public) row count, so neither the rate nor the gradient average reveals the
        # exact count. Opacus's loader runs int(1/q) steps per epoch and we charge 1/int(1/q) >= q.
        n_ref = float(n_public) if n_public is not None else float(len(dataset))
        q = min(1.0, s.batch_size / n_ref)
        loader = DPDataLoader(dataset, sample_rate=q, generator=_os_generator(torch.device("cpu")))
        steps_per_epoch = len(loader)
        sample_rate = 1.0 / steps_per_epoch
        expected_batch = max(1, round(q * n_ref))
        total = s.epochs * steps_per_epoch
        sigma, _ = calibrate_noise(
            target_epsilon=train_eps,
            target_delta=train_delta,
            sample_rate=sample_rate,
            steps=total,
            accountant=self.accountant,
        )
        with warnings.catch_warnings():
            # "Secure RNG turned off": we seed noise and sampling from OS entropy instead.
            warnings.filterwarnings("ignore", message="Secure RNG turned off")
            engine = PrivacyEngine(accountant=self.accountant)
            wrapped = engine.make_private(
                module=net,
                optimizer=optimizer,
                criterion=criterion,
                data_loader=loader,
                noise_multiplier=sigma,
                max_grad_norm=s.max_grad_norm,
                # The loader above already samples each record independently with rate q.
                poisson_sampling=False,
                grad_sample_mode=s.grad_sample_mode,
                noise_generator=_os_generator(self.device),
            )
        if s.grad_sample_mode == "ghost":
            gsm, dp_optimizer, dp_criterion, dp_loader = wrapped
        else:
            gsm, dp_optimizer, dp_loader = wrapped
            dp_criterion = None
        # Average over the public expected batch size, not one derived from the exact count.
        dp_optimizer.expected_batch_size = expected_batch
        try:
            with warnings.catch_warnings():
                # Opacus's hooks fire on module outputs (our inputs are token ids): expected.
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                losses = self._loop(gsm, dp_optimizer, dp_loader, total, progress, criterion=dp_criterion)
        finally:
            gsm.cleanup()
        spent = float(engine.accountant.get_epsilon(delta=train_delta))
        if spent > train_eps:
            raise PrivacyError(f"text model: DP-SGD spent epsilon {spent:.4f} over its target {train_eps:g}")
        entry = PrivacyEntry(
            step="text_training",
            mechanism=f"DP-SGD (Opacus, Poisson sampling q={sample_rate:.5f}, sigma={sigma:.4f}, "
            f"C={s.max_grad_norm:g}, {total} steps)",
            epsilon=spent,
            delta=train_delta,
            accountant=self.accountant,
        )
        record = TextPrivacyRecord(
            dp=True,
            target_epsilon=self.epsilon,
            target_delta=self.delta,
            entries=[e for e in (vocab_entry, entry) if e is not None],
            noise_multiplier=sigma,
            max_grad_norm=s.max_grad_norm,
            sample_rate=sample_rate,
            expected_batch_size=expected_batch,
            steps=total,
            epochs=s.epochs,
            row_count_source="public" if n_public is not None else "exact",
        )
        return record, losses

    def _loop(
        self,
        net: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        loader: DataLoader,
        total: int,
        progress: Progress | None,
        *,
        criterion: Any,
        clip_batch: float | None = None,
    ) -> list[float]:
        """The training steps, shared by DP and non-DP (the wrappers make the difference)."""
        net.train()
        losses: list[float] = []
        done = 0
        while done < total:
            for x, y in loader:
                x, y = x.to(self.device), y.to(self.device)
                # Trim the padding every row of this batch shares; an empty Poisson batch keeps
                # one column so Opacus still takes (and charges) a noisy step.
                valid = (y != IGNORE).any(dim=0).nonzero()
                width = int(valid.max()) + 1 if len(valid) else 1
                x, y = x[:, :width].contiguous(), y[:, :width].contiguous()
                optimizer.zero_grad(set_to_none=True)
                logits = net(x)
                b, t, v = logits.shape
                if criterion is not None:  # ghost clipping: per-sequence losses, two backward passes
                    loss = criterion(logits.reshape(b * t, v), y.reshape(b * t), shape=(b, t))
                else:
                    loss = _per_sequence_loss(logits, y).mean() if b else logits.sum() * 0.0
                loss.backward()
                if clip_batch is not None:
                    # Non-DP only: the usual global-norm clip for a stable baseline (DP clips per record).
                    torch.nn.utils.clip_grad_norm_(net.parameters(), clip_batch)
                optimizer.step()
                done += 1
                value = float(loss.item()) if b else float("nan")
                losses.append(value)
                if progress is not None:
                    progress(done, total, value)
                if done >= total:
                    break
        return losses

    # -- scoring and generation -------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise ModelError("text model: not fitted; call fit() or load() first")

    @torch.no_grad()
    def score(
        self, texts: pl.Series, conditions: pl.DataFrame | None = None, *, batch_size: int = 256
    ) -> tuple[np.ndarray, np.ndarray]:
        """Negative log-likelihood (nats) of each text (its tokens + EOS) and its bytes + EOS.

        Texts are encoded by the training rule (truncation included); nulls score as empty text.
        The second array counts bytes, not tokens, so that perplexity per byte compares models
        whatever their vocabulary.
        """
        self._check_fitted()
        inputs, targets, stats = self.tokenizer_.encode_training(texts, conditions, skip_empty=False)
        nll = np.zeros(len(inputs))
        for i in range(0, len(inputs), batch_size):
            x = torch.from_numpy(inputs[i : i + batch_size]).to(self.device)
            y = torch.from_numpy(targets[i : i + batch_size]).to(self.device)
            logits = self.network_(x)
            tok_nll = F.cross_entropy(
                logits.transpose(1, 2).float(), y, ignore_index=IGNORE, reduction="none"
            )
            nll[i : i + len(x)] = tok_nll.sum(dim=1).cpu().numpy()
        return nll, stats.scored_bytes

    @torch.no_grad()
    def generate(
        self,
        conditions: pl.DataFrame | None = None,
        n: int | None = None,
        *,
        seed: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        max_length: int | None = None,
        batch_size: int | None = None,
        prompt: str = "",
        name: str = "text",
    ) -> pl.Series:
        """Sample one text per row, conditioned on that row's values in ``conditions``.

        Generation reads only the model (post-processing of a DP release: no extra cost).
        ``n`` defaults to the number of condition rows; unconditioned models need ``n``.
        Sampling parameters default to the settings; ``max_length`` (bytes) is capped at
        the trained ``max_length``, prompt included. ``prompt`` (optional) is text every
        sample starts with (used by the memorisation test). The same seed gives the same
        texts on the same machine.
        """
        self._check_fitted()
        s = self.settings
        tok = self.tokenizer_
        if n is None:
            if conditions is None:
                raise ModelError("text model: generate() needs n or a conditions frame")
            n = conditions.height
        if conditions is not None and conditions.height != n:
            raise ModelError(f"text model: n={n} but the conditions frame has {conditions.height} rows")
        temperature = s.temperature if temperature is None else temperature
        top_k = s.top_k if top_k is None else top_k
        top_p = s.top_p if top_p is None else top_p
        if temperature <= 0 or top_k < 0 or not 0 < top_p <= 1:
            raise ModelError("text model: need temperature > 0, top_k >= 0 and 0 < top_p <= 1")
        head = prompt.encode("utf-8")
        limit = min(max_length or tok.max_length, tok.max_length) - len(head)
        if limit < 1:
            raise ModelError(f"text model: prompt of {len(head)} bytes leaves no room within max_length")
        batch_size = batch_size or s.generate_batch_size
        cond = (
            conditions.select(tok.condition_columns)
            if tok.condition_columns and conditions is not None
            else None
        )
        ids = tok.encode_conditions(cond, n)
        if head:
            ids = np.concatenate(
                [ids, np.tile(np.asarray(tok.text_ids(head), dtype=np.int64), (n, 1))], axis=1
            )
        prefix = torch.from_numpy(ids.astype(np.int64)).to(self.device)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(secrets.randbits(63) if seed is None else seed)
        masks = state_masks(tok.vocab_size, self.device, word_start=tok.word_start)
        out: list[str] = []
        # One token at a time through a small network: each op is too small for intra-op
        # threads to pay, and spinning threads cost ~10x when the cores are shared (measured).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for i in range(0, n, batch_size):
                texts = self._generate_batch(
                    prefix[i : i + batch_size], limit, masks, gen, temperature, top_k, top_p
                )
                out.extend(prompt + t for t in texts)
        finally:
            torch.set_num_threads(threads)
        return pl.Series(name, out, dtype=pl.String)

    def _generate_batch(
        self,
        prefix: torch.Tensor,
        limit: int,
        masks: torch.Tensor,
        gen: torch.Generator,
        temperature: float,
        top_k: int,
        top_p: float,
    ) -> list[str]:
        b = prefix.shape[0]
        cache = self.network_.new_cache(b, prefix.shape[1] + limit)
        last = self.network_.step(prefix, cache)[:, -1]
        produced = torch.full((b, limit), EOS, dtype=torch.long, device=self.device)
        utf8 = Utf8State(b, self.device)
        finished = torch.zeros(b, dtype=torch.bool, device=self.device)
        # Rows still generating (their indices in ``produced``). Finished rows are dropped from
        # the batch, cache included, once they are a quarter of it: a step's cost follows the
        # rows still writing, not the longest text. Each row's draws depend only on its own
        # logits, so dropping others changes no row's distribution.
        rows = torch.arange(b, device=self.device)
        for t in range(limit):
            allowed = masks[utf8.state]
            nxt = sample_next(last, allowed, temperature=temperature, top_k=top_k, top_p=top_p, generator=gen)
            nxt = torch.where(finished, EOS, nxt)
            produced[rows, t] = nxt
            utf8.advance(nxt)
            finished |= nxt == EOS
            n_done = int(finished.sum())
            if n_done == len(rows) or t == limit - 1:
                break
            if 4 * n_done >= len(rows):
                keep = (~finished).nonzero().squeeze(1)
                rows, nxt, finished = rows[keep], nxt[keep], finished[keep]
                utf8.state, utf8.owed = utf8.state[keep], utf8.owed[keep]
                cache.keep(keep)
            last = self.network_.step(nxt.unsqueeze(1), cache)[:, -1]
        # A word token is several bytes: cut the text back to the byte limit.
        return [self.tokenizer_.decode(row, max_bytes=limit) for row in produced.cpu().tolist()]

    # -- persistence ------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``weights.pt`` (tensors only) into ``directory``.

        The artifact holds weights, public configuration and the privacy record: no training
        text and no counts over it (``input_stats_`` is not saved).
        """
        self._check_fitted()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        config = {
            "format": FORMAT,
            "settings": self.settings.model_dump(mode="json"),
            "tokenizer": self.tokenizer_.config(),
            "dp": self.dp,
            "accountant": self.accountant,
            "seed": self.seed,
            "privacy_record": self.privacy_record_.model_dump(mode="json"),
        }
        state = {k: v.detach().cpu() for k, v in self.network_.state_dict().items()}
        torch.save(state, d / "weights.pt")
        (d / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        return d

    @classmethod
    def load(cls, directory: str | Path, *, device: str = "auto") -> DPTextModel:
        """Read a model written by :meth:`save` (weights loaded with ``weights_only=True``)."""
        d = Path(directory)
        try:
            config = json.loads((d / "config.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"text model: cannot read {d / 'config.json'}: {exc}") from None
        if config.get("format") != FORMAT:
            raise ModelError(f"text model: {d} is not a {FORMAT} artifact")
        record = TextPrivacyRecord.model_validate(config["privacy_record"])
        model = cls(
            settings=TextModelSettings.model_validate(config["settings"]),
            epsilon=record.target_epsilon,
            delta=record.target_delta,
            dp=bool(config["dp"]),
            device=device,
            categories=config["tokenizer"]["categories"],
            accountant=config["accountant"],
            seed=int(config["seed"]),
        )
        tok = TextTokenizer(
            condition_columns=config["tokenizer"]["condition_columns"],
            categories=config["tokenizer"]["categories"],
            max_length=int(config["tokenizer"]["max_length"]),
            words=config["tokenizer"].get("words", []),
        )
        net = model._new_network(tok.vocab_size, tok.sequence_length)
        try:
            state = torch.load(d / "weights.pt", map_location=model.device, weights_only=True)
            net.load_state_dict(state)
        except (OSError, RuntimeError) as exc:
            raise ModelError(f"text model: cannot load weights from {d}: {exc}") from None
        net.eval()
        model.tokenizer_ = tok
        model.network_ = net
        model.privacy_record_ = record
        model.loss_history_ = []
        return model


def _per_sequence_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss of each sequence over its own scored tokens, shape ``(batch,)``.

    One value per record: the DP unit. Averaging within a record (not across the batch)
    keeps one record's contribution independent of the others before clipping.
    """
    tok = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE, reduction="none")
    n_tok = (targets != IGNORE).sum(dim=1).clamp(min=1)
    return tok.sum(dim=1) / n_tok


def perplexity_from(nll: np.ndarray, count: np.ndarray) -> float:
    """Per-byte perplexity ``exp(total NLL / total scored bytes)`` (counts from ``DPTextModel.score``)."""
    total = int(count.sum())
    return float(math.exp(float(nll.sum()) / total)) if total else float("nan")
