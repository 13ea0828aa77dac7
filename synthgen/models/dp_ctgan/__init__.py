"""DP-CTGAN: a conditional tabular GAN whose discriminator is trained with DP-SGD (Opacus).

Privacy argument (DESIGN.md P3-P5), in the order a reviewer should check it:

1. **Only the discriminator touches real rows, and only through Opacus.** Real rows
   are Poisson-sampled by Opacus's ``DPDataLoader`` at rate ``q = batch_size / n_dp``
   (``n_dp`` the DP row count; the accountant is charged ``1/int(1/q) >= q``). Each
   real row is paired with one freshly generated fake row and the pair is one Opacus
   *sample* (a ``(B, 2, d)`` tensor). The per-pair gradient is clipped to
   ``max_grad_norm`` (ghost clipping), summed, and Gaussian noise is added by
   ``DPOptimizer``; the sum is divided by the public expected batch size. Adding or
   removing one real row adds or removes one pair whose fake row is independent of
   the data, so the sensitivity of the noised sum is the clipping norm: each
   discriminator update is a standard DP-SGD step. An empty Poisson batch still
   releases a (pure noise) step, so what happens never depends on emptiness.
2. **The generator is post-processing.** Its loss is computed on generated rows only,
   through a plain *twin* of the discriminator evaluated with the private
   discriminator's current weights, detached (``torch.func.functional_call``). The
   twin carries no Opacus hooks, so generator passes neither disturb per-sample norms
   nor write into the discriminator's gradients. Why a twin rather than disabling
   the hooks: ghost clipping toggles hooks itself inside ``backward``; a separate
   module makes "the generator step cannot reach Opacus's state" true by
   construction instead of by call order.
3. **No loss term outside the clipped per-sample gradients**: the discriminator loss
   is the non-saturating GAN loss of each pair, nothing else. There is no gradient
   penalty (a ``GradSampleModule`` cannot double-backward, and ``DPOptimizer`` would
   silently drop a term added outside its hooks).
4. **pac = 1 under DP**, whatever the configuration asks (packing would put several
   people's rows into one Opacus sample); the value used is stored in the artifact.
5. **Conditional vectors come from DP counts.** Category counts of every one-hot
   block are released once with the discrete Gaussian mechanism (integer noise sampled
   exactly; a row holds exactly one token per block, so the L2 sensitivity of all counts
   is ``sqrt(#blocks)``) and composed with DP-SGD in the same Opacus accountant, charged
   as the continuous Gaussian it is a post-processing of (``count_release_multiplier``).
   There is no training-by-sampling: real batches are never selected by category, and
   the conditional loss only involves generated rows.
6. **Calibration.** The DP-SGD noise multiplier is found by a binary search with
   Opacus's accountant over the *whole* history (count release + every DP-SGD step)
   so that the spent epsilon never exceeds the training budget; the accountant
   reports what was spent, and a model over budget is discarded.

Randomness that protects privacy (Poisson sampling, gradient noise, count noise)
comes from OS entropy, never from the spec's seed; the seed drives weight
initialisation, the generator's inputs and sampling only. Caveat stated plainly:
Opacus's noise is ordinary floating-point Gaussian noise (``secure_mode`` needs
torchcsprng, not installed here).

The fitted artifact holds the generator's weights, the DP frequencies and the
configuration only: no training rows, no statistic fitted on raw rows.

Non-DP mode (``privacy.dp = False``) runs the same loop with a plain optimizer,
shuffled batches, exact frequencies and configurable packing; it records
``dp: false``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Self

import numpy as np
import polars as pl
import torch

from synthgen.errors import ModelError
from synthgen.models.base import Prepared, Progress, ProgressCallback, Synthesizer, resolve_device
from synthgen.models.dp_ctgan.accounting import DPPlan, History, calibrate_with_prior, history_epsilon
from synthgen.models.dp_ctgan.conditional import CondSampler, dp_frequencies, exact_frequencies
from synthgen.models.dp_ctgan.config import (
    DEFAULT_COUNT_NOISE_MULTIPLIER,
    HIDDEN_DIM,
    Block,
    CTGANConfig,
    blocks_from_spans,
)
from synthgen.models.dp_ctgan.networks import Generator, make_discriminator
from synthgen.models.dp_ctgan.sampling import generate
from synthgen.models.dp_ctgan.training import TrainResult, train
from synthgen.privacy.record import MechanismEntry, PrivacyRecord, compose, non_dp_record

__all__ = [
    "DEFAULT_COUNT_NOISE_MULTIPLIER",
    "DPCTGAN",
    "HIDDEN_DIM",
    "Block",
    "CTGANConfig",
    "CondSampler",
    "DPPlan",
    "Generator",
    "History",
    "TrainResult",
    "blocks_from_spans",
    "calibrate_with_prior",
    "dp_frequencies",
    "exact_frequencies",
    "generate",
    "history_epsilon",
    "make_discriminator",
    "train",
]


class DPCTGAN(Synthesizer):
    """DP-CTGAN (see the module docstring). ``privacy.dp=False`` trains the same model without noise."""

    kind = "dp_ctgan"

    def __init__(self, *, config: CTGANConfig | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: Requested hyperparameters; ``pac`` is overridden to 1 under DP at fit time.
        self.config = config if config is not None else CTGANConfig.from_settings(self.model)
        self.config_: CTGANConfig | None = None
        self.generator_: Generator | None = None
        self.cond_: CondSampler | None = None
        self.blocks_: list[Block] | None = None
        self.losses_: list[dict[str, float]] = []
        self.device_ = "cpu"

    @property
    def pac_(self) -> int:
        """Packing used in training (1 under DP, whatever was asked)."""
        if self.config_ is None:
            raise ModelError("DP-CTGAN is not fitted: call fit() or load() first")
        return self.config_.pac

    def fit(self, frame: pl.DataFrame, *, progress: ProgressCallback | None = None) -> Self:
        """Train on ``frame``. Under DP the whole path (preprocessing + training) is charged.

        Sets ``encoder_``, ``generator_``, ``cond_``, ``privacy_record_`` and
        ``duplicates_`` (a raw count for the restricted run report; not saved).
        """
        device = torch.device(resolve_device(self.model.device))
        prep = self._prepare(frame)
        assert prep.offsets is not None
        data = torch.from_numpy(prep.encoder.to_matrix(prep.codes, prep.offsets))
        blocks = blocks_from_spans(prep.encoder.spans)
        plan = self._plan(prep)
        pre_eps = compose(prep.mechanisms)[0]
        epochs = self.model.epochs

        def on_epoch(r: dict[str, float]) -> None:
            if progress is not None:
                eps = pre_eps + r["epsilon"] if "epsilon" in r else None
                progress(Progress(int(r["epoch"]), epochs, r["loss_d"], eps))

        result = train(
            data,
            blocks,
            config=self.config,
            epochs=epochs,
            batch_size=prep.batch_size,
            device=device,
            seed=self.model.seed,
            plan=plan,
            on_epoch=on_epoch,
        )
        del data
        self.encoder_ = prep.encoder
        self.duplicates_ = prep.duplicates
        self.device_ = str(device)
        self.blocks_ = blocks
        self.generator_ = result.generator
        self.cond_ = result.cond
        self.losses_ = result.losses
        self.config_ = CTGANConfig.from_json({**self.config.to_json(), "pac": result.pac})
        self.privacy_record_ = non_dp_record() if plan is None else self._record(prep, plan, result)
        return self

    def _plan(self, prep: Prepared) -> DPPlan | None:
        if prep.split is None:
            return None
        return DPPlan.from_count(
            epsilon=prep.split.training_epsilon,
            delta=prep.split.training_delta,
            batch_size=prep.batch_size,
            n_estimate=prep.n_estimate,
            accountant=self.privacy.accountant,
        )

    def _record(self, prep: Prepared, plan: DPPlan, result: TrainResult) -> PrivacyRecord:
        assert result.epsilon_spent is not None
        mechanisms = [
            *prep.mechanisms,
            MechanismEntry(
                step="training",
                # One entry: the Gaussian count release and DP-SGD were composed in one accountant.
                mechanism=f"dp_sgd_{plan.accountant}+gaussian_counts",
                epsilon=result.epsilon_spent,
                delta=plan.delta,
            ),
        ]
        spent_eps, spent_delta = compose(mechanisms)
        return PrivacyRecord(
            dp=True,
            target_epsilon=float(self.privacy.epsilon),
            target_delta=prep.total_delta,
            spent_epsilon=spent_eps,
            spent_delta=spent_delta,
            accountant=plan.accountant,
            noise_multiplier=result.noise_multiplier,
            sample_rate=plan.accounted_rate,
            expected_batch_size=plan.expected_batch_size,
            steps=result.steps,
            epochs=self.model.epochs,
            max_grad_norm=self.config.max_grad_norm,
            row_count_source="laplace_count (DP); delta rule uses its upper bound at failure 1e-6",
            mechanisms=mechanisms,
        )

    # -- sampling ------------------------------------------------------------------------

    def sample_batches(
        self, n: int, *, seed: int | None = None, batch_rows: int = 100_000
    ) -> Iterator[pl.DataFrame]:
        """Yield ``n`` rows in frames of at most ``batch_rows``; the same seed gives the same rows."""
        self._check_fitted()
        if self.generator_ is None or self.cond_ is None or self.encoder_ is None or self.blocks_ is None:
            raise ModelError("DP-CTGAN is not fitted: call fit() or load() first")
        if batch_rows < 1:
            raise ModelError("batch_rows must be >= 1")
        assert self.config_ is not None
        seed = self.model.seed if seed is None else seed
        rng = torch.Generator().manual_seed(seed)
        np_rng = np.random.default_rng(seed)
        left = n
        while left > 0:
            m = min(left, batch_rows)
            codes, offsets = generate(
                self.generator_,
                self.cond_,
                self.blocks_,
                m,
                embedding_dim=self.config_.embedding_dim,
                device=torch.device(self.device_),
                rng=rng,
            )
            calibrated = self.encoder_.calibrate(codes.numpy(), np_rng)
            yield self.encoder_.decode(calibrated, offsets=offsets.numpy(), rng=np_rng)
            left -= m

    # -- persistence ---------------------------------------------------------------------

    def _save_state(self, directory: Path) -> None:
        assert self.generator_ is not None and self.cond_ is not None and self.config_ is not None
        assert self.blocks_ is not None
        state = {k: v.detach().cpu() for k, v in self.generator_.state_dict().items()}
        torch.save(state, directory / "generator.pt")
        meta = {
            "config": self.config_.to_json(),
            "blocks": [asdict(b) for b in self.blocks_],
            # DP outputs (noisy counts) in DP mode; exact only in a dp: false artifact.
            "frequencies": self.cond_.frequencies,
        }
        (directory / "dp_ctgan.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")

    def _load_state(self, directory: Path) -> None:
        meta = json.loads((directory / "dp_ctgan.json").read_text(encoding="utf-8"))
        self.config_ = CTGANConfig.from_json(meta["config"])
        self.blocks_ = [Block(**b) for b in meta["blocks"]]
        self.cond_ = CondSampler([b for b in self.blocks_ if b.kind == "softmax"], meta["frequencies"])
        d = sum(b.width for b in self.blocks_)
        gen = Generator(self.config_.embedding_dim + self.cond_.width, self.config_.generator_dims, d)
        gen.load_state_dict(torch.load(directory / "generator.pt", map_location="cpu", weights_only=True))
        self.device_ = resolve_device(self.model.device)
        self.generator_ = gen.to(self.device_).eval()
