"""DP-CTGAN: a conditional tabular GAN whose discriminator is trained with DP-SGD.

Privacy argument (DESIGN.md P3-P5), in the order a reviewer should check it:

1. **Only the discriminator touches real rows**, and only through Opacus: real rows
   are Poisson-sampled by Opacus's ``DPDataLoader``; each real row is paired with one
   freshly generated fake row and the pair is one Opacus "sample" (a ``(B, 2, d)``
   tensor). The per-pair gradient is clipped to ``max_grad_norm`` (ghost clipping),
   summed, and Gaussian noise is added by ``DPOptimizer``. Adding or removing one real
   row adds or removes exactly one pair, so the sensitivity of the noised sum is the
   clipping norm: the discriminator is a standard DP-SGD release.
2. **The generator is post-processing.** Its loss is computed on generated rows only,
   through a plain *twin* of the discriminator evaluated with the private
   discriminator's current weights *detached* (``torch.func.functional_call``). The
   twin carries no Opacus hooks, so generator passes neither disturb the per-sample
   norms nor write into the discriminator's gradients; the discriminator's weights
   are already DP, and everything computed from them is free.
3. **No loss term outside the clipped per-sample gradients**: the discriminator loss
   is the plain (non-saturating) GAN loss per pair. No gradient penalty (a
   ``GradSampleModule`` cannot double-backward and ``DPOptimizer`` would silently
   drop a term added outside its hooks).
4. **pac = 1 under DP**: packing rows lets one person influence several packs'
   features in one "sample" structure that Opacus does not know about; it is forced
   to 1 whatever the configuration asks, and the forced value is recorded.
5. **Conditional vectors come from DP counts**: per one-hot block, category counts
   released once with the Gaussian mechanism (L2 sensitivity ``sqrt(#blocks)``: a row
   holds exactly one category per block) and composed with DP-SGD in the same Opacus
   accountant. There is no training-by-sampling: real batches are never selected by
   category; the conditional loss involves generated rows only.
6. **Calibration**: the noise multiplier is found by binary search with Opacus's
   accountant over the *whole* history (count release + every DP-SGD step) so that the
   spent epsilon never exceeds the target; the accountant reports what was spent.

The fitted artifact holds the generator's weights, the DP frequencies and the
configuration only: no training rows and no statistic fitted on raw rows.

Non-DP mode (``dp=False``) runs the same loop with a plain optimizer, exact
frequencies and configurable packing; it records ``dp: false``.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from opacus import PrivacyEngine
from opacus.accountants.utils import create_accountant
from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping
from torch import Tensor, nn
from torch.func import functional_call
from torch.utils.data import DataLoader, TensorDataset

from synthgen.errors import ModelError, PrivacyError

BlockKind = Literal["softmax", "tanh"]

#: Noise multiplier (sigma / L2 sensitivity) of the one-shot Gaussian release of the
#: category counts used for conditional vectors. Large on purpose: one full-data
#: release at this multiplier adds little to the RDP of training (its cost is paid by
#: a slightly larger DP-SGD noise multiplier, computed jointly).
DEFAULT_COUNT_NOISE_MULTIPLIER = 15.0


@dataclass(frozen=True)
class Block:
    """A run of columns of the encoded matrix that the generator emits together.

    ``softmax``: a one-hot group (a category, a quantile bin, a null indicator);
    ``tanh``: one scalar in [-1, 1].
    """

    start: int
    width: int
    kind: BlockKind

    def __post_init__(self) -> None:
        if self.width < 1 or self.start < 0:
            raise ModelError(f"invalid block {self}: width must be >= 1 and start >= 0")
        if self.kind == "tanh" and self.width != 1:
            raise ModelError(f"invalid block {self}: a tanh block has width 1")


@dataclass
class CTGANConfig:
    """Hyperparameters of DP-CTGAN (configuration, not learned state)."""

    embedding_dim: int = 128
    generator_dims: tuple[int, ...] = (256, 256)
    discriminator_dims: tuple[int, ...] = (256, 256)
    generator_lr: float = 2e-4
    discriminator_lr: float = 2e-4
    #: Per-sample (per real/fake pair) clipping norm of the discriminator gradient.
    max_grad_norm: float = 1.0
    #: Packing of rows into one discriminator input; forced to 1 under DP (P4).
    pac: int = 1
    #: Gumbel-softmax temperature for one-hot blocks during training.
    tau: float = 0.2
    #: Generator steps per discriminator step.
    generator_steps: int = 1
    count_noise_multiplier: float = DEFAULT_COUNT_NOISE_MULTIPLIER
    #: Discriminator dropout (no parameters, so it is compatible with ghost clipping).
    dropout: float = 0.5

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["generator_dims"] = list(self.generator_dims)
        d["discriminator_dims"] = list(self.discriminator_dims)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CTGANConfig:
        d = dict(d)
        d["generator_dims"] = tuple(d["generator_dims"])
        d["discriminator_dims"] = tuple(d["discriminator_dims"])
        return cls(**d)


# -- networks ----------------------------------------------------------------------


class _Residual(nn.Module):
    """Linear + BatchNorm + ReLU whose output is concatenated to its input (as in CTGAN).

    BatchNorm is fine here: the generator never sees real data.
    """

    def __init__(self, i: int, o: int) -> None:
        super().__init__()
        self.fc = nn.Linear(i, o)
        self.bn = nn.BatchNorm1d(o)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class Generator(nn.Module):
    """Maps (noise, conditional vector) to raw (pre-activation) encoded rows."""

    def __init__(self, in_dim: int, dims: Sequence[int], out_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in dims:
            layers.append(_Residual(d, h))
            d += h
        layers.append(nn.Linear(d, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # type: ignore[no-any-return]


def make_discriminator(in_dim: int, dims: Sequence[int], dropout: float) -> nn.Sequential:
    """An MLP critic made of ``nn.Linear`` layers only (ghost clipping supports them).

    It maps ``(..., in_dim)`` to ``(..., 1)``, so a ``(B, 2, d)`` pair tensor gives one
    logit per row while Opacus still sees ``B`` samples.
    """
    layers: list[nn.Module] = []
    d = in_dim
    for h in dims:
        layers += [nn.Linear(d, h), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
        d = h
    layers.append(nn.Linear(d, 1))
    return nn.Sequential(*layers)


# -- conditional vectors -----------------------------------------------------------


@dataclass
class CondSampler:
    """Draws conditional vectors from (DP) category frequencies of one-hot blocks.

    A vector picks one block uniformly, then one category with the block's
    frequency. The frequencies are DP outputs (or exact ones in non-DP mode); no real
    row is ever looked up.
    """

    blocks: list[Block]
    frequencies: list[list[float]]
    offsets: list[int] = field(init=False)
    width: int = field(init=False)

    def __post_init__(self) -> None:
        self.offsets = []
        w = 0
        for b in self.blocks:
            self.offsets.append(w)
            w += b.width
        self.width = w

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Return (cond one-hot ``(n, width)``, chosen block ``(n,)``, category ``(n,)``)."""
        cond = torch.zeros(n, self.width)
        which = torch.randint(len(self.blocks), (n,), generator=generator)
        cat = torch.zeros(n, dtype=torch.long)
        for i, freq in enumerate(self.frequencies):
            rows = (which == i).nonzero(as_tuple=True)[0]
            if rows.numel() == 0:
                continue
            p = torch.tensor(freq, dtype=torch.float)
            k = torch.multinomial(p, rows.numel(), replacement=True, generator=generator)
            cat[rows] = k
            cond[rows, self.offsets[i] + k] = 1.0
        return cond, which, cat


def exact_frequencies(data: Tensor, blocks: Sequence[Block]) -> list[list[float]]:
    """Exact category frequencies: NON-DP, only for ``dp=False`` runs."""
    out = []
    for b in blocks:
        counts = torch.bincount(data[:, b.start : b.start + b.width].argmax(1), minlength=b.width).double()
        out.append((counts / counts.sum()).tolist())
    return out


def dp_frequencies(
    data: Tensor, blocks: Sequence[Block], *, noise_multiplier: float, generator: torch.Generator | None = None
) -> list[list[float]]:
    """Category frequencies of every one-hot block, released with the Gaussian mechanism.

    Each row is reduced to its argmax in every block, so one row adds exactly one to
    one count per block: the L2 sensitivity of all counts together is
    ``sqrt(len(blocks))`` under add/remove adjacency, and the noise standard deviation
    is ``noise_multiplier * sqrt(len(blocks))``. The caller must charge one Gaussian
    step ``(noise_multiplier, sample_rate=1, steps=1)`` to the accountant. Clamping
    and normalising are post-processing.
    """
    sigma = noise_multiplier * math.sqrt(len(blocks))
    out = []
    for b in blocks:
        counts = torch.bincount(data[:, b.start : b.start + b.width].argmax(1), minlength=b.width).double()
        noisy = counts + sigma * torch.randn(b.width, generator=generator, dtype=torch.double)
        # A floor keeps every category reachable; it is post-processing of the noisy counts.
        noisy = noisy.clamp(min=0.0) + 1e-3
        out.append((noisy / noisy.sum()).tolist())
    return out


# -- accounting --------------------------------------------------------------------


def spent_epsilon(
    history: list[tuple[float, float, int]], *, delta: float, accountant: str
) -> float:
    """Epsilon of a composition of (noise_multiplier, sample_rate, steps) Gaussian steps."""
    acc = create_accountant(mechanism=accountant)
    acc.history = list(history)
    with warnings.catch_warnings():
        # PRV logs divide-by-zero for a sample rate of 1 (the count release) and RDP
        # warns when its best order is the largest: both are harmless here (RDP is
        # then merely conservative).
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        return float(acc.get_epsilon(delta=delta))


def calibrate_noise(
    *,
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    prior: list[tuple[float, float, int]],
    accountant: str,
    tolerance: float = 0.01,
) -> float:
    """Smallest noise multiplier (within ``tolerance`` in epsilon) such that ``prior`` plus
    ``steps`` DP-SGD steps at ``sample_rate`` spend at most ``target_epsilon``.

    The search always returns the *upper* end of its bracket, whose epsilon was
    computed and is ``<= target_epsilon``.
    """
    def eps(sigma: float) -> float:
        return spent_epsilon(prior + [(sigma, sample_rate, steps)], delta=delta, accountant=accountant)

    if prior and spent_epsilon(prior, delta=delta, accountant=accountant) >= target_epsilon:
        raise PrivacyError(
            f"epsilon {target_epsilon:g} is too small even for the category counts; raise privacy.epsilon"
        )
    lo, hi = 0.0, 2.0
    eps_hi = eps(hi)
    while eps_hi > target_epsilon:
        lo, hi = hi, hi * 2
        eps_hi = eps(hi)
        if hi > 1e4:
            raise PrivacyError(f"no noise multiplier reaches epsilon {target_epsilon:g}; raise privacy.epsilon")
    # Invariant: eps(hi) <= target < eps(lo). Return hi, never an unchecked value.
    while target_epsilon - eps_hi > tolerance and hi - lo > 1e-3:
        mid = (lo + hi) / 2
        e = eps(mid)
        if e <= target_epsilon:
            hi, eps_hi = mid, e
        else:
            lo = mid
    return hi


# -- training ----------------------------------------------------------------------


@dataclass
class TrainResult:
    """What training learned and what it cost."""

    generator: Generator
    cond: CondSampler
    dp: bool
    pac: int
    noise_multiplier: float
    epsilon_spent: float | None
    delta: float | None
    steps: int
    sample_rate: float
    accountant: str | None
    history: list[tuple[float, float, int]]
    losses: list[dict[str, float]]


Progress = Callable[[dict[str, float]], None]


def activate(raw: Tensor, blocks: Sequence[Block], *, tau: float | None) -> Tensor:
    """Apply each block's output activation; ``tau=None`` gives hard one-hots (sampling)."""
    parts = []
    for b in blocks:
        x = raw[:, b.start : b.start + b.width]
        if b.kind == "tanh":
            parts.append(torch.tanh(x))
        elif tau is None:
            parts.append(F.one_hot(x.argmax(1), b.width).to(raw.dtype))
        else:
            parts.append(F.gumbel_softmax(x, tau=tau, hard=False))
    return torch.cat(parts, dim=1)


def _cond_loss(raw: Tensor, cond: CondSampler, which: Tensor, cat: Tensor) -> Tensor:
    """Cross-entropy making the generated row honour its conditional vector (fake rows only)."""
    total = raw.new_zeros(())
    for i, b in enumerate(cond.blocks):
        rows = (which == i).nonzero(as_tuple=True)[0]
        if rows.numel() == 0:
            continue
        logits = raw[rows, b.start : b.start + b.width]
        total = total + F.cross_entropy(logits, cat[rows], reduction="sum")
    return total / raw.shape[0]


def train(
    data: Tensor,
    blocks: Sequence[Block],
    *,
    config: CTGANConfig,
    dp: bool,
    epochs: int,
    batch_size: int,
    device: torch.device,
    seed: int,
    epsilon: float | None = None,
    delta: float | None = None,
    accountant: Literal["prv", "rdp"] = "prv",
    progress: Progress | None = None,
) -> TrainResult:
    """Train DP-CTGAN on an encoded matrix ``data`` (rows x encoded columns).

    Under ``dp=True`` the guarantee is (``epsilon``, ``delta``)-DP for the rows of
    ``data`` under add/remove adjacency, *provided* ``blocks`` and the encoding are
    themselves public or DP (the caller's responsibility), and only if nothing else
    reads ``data``. The returned generator and frequencies are DP outputs.
    """
    n, d = data.shape
    if not blocks or sum(b.width for b in blocks) != d:
        raise ModelError(f"blocks cover {sum(b.width for b in blocks)} encoded columns, the data has {d}")
    if batch_size > n:
        raise ModelError(
            f"the dataset has {n} rows, fewer than the batch size {batch_size}; lower model.batch_size"
        )
    if dp:
        if epsilon is None or not epsilon > 0:
            raise PrivacyError(f"epsilon must be > 0 under DP, got {epsilon}; set privacy.epsilon")
        if delta is None or not 0 < delta < 1:
            raise PrivacyError(f"delta must be in (0, 1) under DP, got {delta}; set privacy.delta")
    pac = 1 if dp else max(1, config.pac)
    if not dp and batch_size < pac:
        raise ModelError(f"batch size {batch_size} is smaller than pac {pac}")

    softmax_blocks = [b for b in blocks if b.kind == "softmax"]
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        history: list[tuple[float, float, int]] = []
        if dp:
            assert epsilon is not None and delta is not None
            freqs = dp_frequencies(data, softmax_blocks, noise_multiplier=config.count_noise_multiplier, generator=g)
            history.append((config.count_noise_multiplier, 1.0, 1))
        else:
            freqs = exact_frequencies(data, softmax_blocks)
        cond = CondSampler(softmax_blocks, freqs)

        generator = Generator(config.embedding_dim + cond.width, config.generator_dims, d).to(device)
        critic = make_discriminator(d * pac, config.discriminator_dims, config.dropout).to(device)
        # The twin evaluates the (DP) discriminator weights for generator steps without
        # any Opacus hooks attached: see the module docstring, point 2.
        twin = copy.deepcopy(critic)
        for p in twin.parameters():
            p.requires_grad_(False)
        g_opt = torch.optim.Adam(generator.parameters(), lr=config.generator_lr, betas=(0.5, 0.9), weight_decay=1e-6)
        d_opt: torch.optim.Optimizer = torch.optim.Adam(critic.parameters(), lr=config.discriminator_lr, betas=(0.5, 0.9))
        loader = DataLoader(
            TensorDataset(data),
            batch_size=batch_size,
            shuffle=True,
            drop_last=not dp,
            generator=torch.Generator().manual_seed(seed + 1),
        )
        # Opacus's DPDataLoader samples each row with probability 1/len(loader) and
        # yields len(loader) batches per epoch; calibrate on exactly those figures.
        steps_per_epoch = len(loader)
        sample_rate = 1 / steps_per_epoch if dp else batch_size / n
        noise_multiplier = 0.0
        engine: PrivacyEngine | None = None
        d_module: nn.Module = critic
        if dp:
            assert epsilon is not None and delta is not None
            noise_multiplier = calibrate_noise(
                target_epsilon=epsilon,
                delta=delta,
                sample_rate=sample_rate,
                steps=epochs * steps_per_epoch,
                prior=history,
                accountant=accountant,
            )
            engine = PrivacyEngine(accountant=accountant)
            # The criterion is unused: pair losses are built by hand below (see
            # _dp_discriminator_step), but make_private wants one for ghost mode.
            d_module, d_opt, _criterion, loader = engine.make_private(
                module=critic,
                optimizer=d_opt,
                criterion=nn.BCEWithLogitsLoss(),
                data_loader=loader,
                noise_multiplier=noise_multiplier,
                max_grad_norm=config.max_grad_norm,
                poisson_sampling=True,
                grad_sample_mode="ghost",
                noise_generator=torch.Generator(device=device).manual_seed(seed + 2),
            )
            engine.accountant.history = list(history)

        losses: list[dict[str, float]] = []
        for epoch in range(epochs):
            d_sum = g_sum = 0.0
            steps = 0
            for (real,) in loader:
                real = real.to(device)
                d_loss = _discriminator_step(
                    real, generator, d_module, d_opt, cond, blocks, config, pac=pac, dp=dp, device=device
                )
                for _ in range(config.generator_steps):
                    g_loss = _generator_step(
                        generator, g_opt, twin, _critic_params(d_module), cond, blocks, config, batch_size, pac, device
                    )
                d_sum += d_loss
                g_sum += g_loss
                steps += 1
            record = {
                "epoch": float(epoch + 1),
                "loss_d": d_sum / max(steps, 1),
                "loss_g": g_sum / max(steps, 1),
            }
            if engine is not None:
                assert delta is not None
                record["epsilon"] = spent_epsilon(list(engine.accountant.history), delta=delta, accountant=accountant)
            losses.append(record)
            if progress is not None:
                progress(record)

        eps_spent: float | None = None
        final_history = history
        if engine is not None:
            assert delta is not None
            final_history = [(float(z), float(q), int(s)) for z, q, s in engine.accountant.history]
            eps_spent = spent_epsilon(final_history, delta=delta, accountant=accountant)
            total_steps = sum(s for _, q, s in final_history if q < 1.0)
            assert epsilon is not None
            if eps_spent > epsilon:
                # Cannot happen when calibration and the loader agree; refuse to return
                # a model whose guarantee is weaker than promised if it ever does.
                raise PrivacyError(f"spent epsilon {eps_spent:.4f} exceeds the target {epsilon:g}; model discarded")
        else:
            total_steps = epochs * steps_per_epoch
        generator.eval()
    return TrainResult(
        generator=generator,
        cond=cond,
        dp=dp,
        pac=pac,
        noise_multiplier=noise_multiplier,
        epsilon_spent=eps_spent,
        delta=delta if dp else None,
        steps=total_steps,
        sample_rate=sample_rate,
        accountant=accountant if dp else None,
        history=final_history,
        losses=losses,
    )


def _critic_params(d_module: nn.Module) -> dict[str, Tensor]:
    """Current discriminator weights, detached, keyed as in the plain (unwrapped) critic."""
    inner = getattr(d_module, "_module", d_module)
    return {k: v.detach() for k, v in inner.named_parameters()}


def _fake(
    generator: Generator, cond: CondSampler, blocks: Sequence[Block], n: int, config: CTGANConfig, device: torch.device
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    c, which, cat = cond.sample(n)
    c = c.to(device)
    z = torch.randn(n, config.embedding_dim, device=device)
    raw = generator(torch.cat([z, c], dim=1))
    return activate(raw, blocks, tau=config.tau), raw, which.to(device), cat.to(device)


def _pairs(real: Tensor, fake: Tensor, pac: int) -> Tensor:
    """Stack real and fake rows into ``(B/pac, 2, pac*d)``: one Opacus sample per pair."""
    m = (real.shape[0] // pac) * pac
    return torch.stack([real[:m].reshape(m // pac, -1), fake[:m].reshape(m // pac, -1)], dim=1)


def _discriminator_step(
    real: Tensor,
    generator: Generator,
    d_module: nn.Module,
    d_opt: torch.optim.Optimizer,
    cond: CondSampler,
    blocks: Sequence[Block],
    config: CTGANConfig,
    *,
    pac: int,
    dp: bool,
    device: torch.device,
) -> float:
    """One discriminator update. Under DP, the only gradient it applies is Opacus's
    noised sum of per-pair clipped gradients (ghost clipping)."""
    b = real.shape[0]
    d_opt.zero_grad(set_to_none=True)
    if b == 0:
        # An empty Poisson batch still is a DP-SGD step (the accountant counts it):
        # release pure noise rather than skip, so that what happens does not depend
        # on the batch being empty.
        for p in d_module.parameters():
            if p.requires_grad:
                p.grad = torch.zeros_like(p)
        d_opt.step()
        return 0.0
    with torch.no_grad():
        fake, _, _, _ = _fake(generator, cond, blocks, b, config, device)
    logits = d_module(_pairs(real, fake, pac)).squeeze(-1)  # (B, 2)
    # Non-saturating GAN loss per pair; nothing else enters the discriminator's loss.
    loss_per_pair = F.softplus(-logits[:, 0]) + F.softplus(logits[:, 1])
    if dp:
        loss = DPTensorFastGradientClipping(d_module, d_opt, loss_per_pair, "mean")  # type: ignore[arg-type]
        loss.backward()
    else:
        loss_per_pair.mean().backward()
    d_opt.step()
    return float(loss_per_pair.mean().detach())


def _generator_step(
    generator: Generator,
    g_opt: torch.optim.Optimizer,
    twin: nn.Module,
    critic_params: dict[str, Tensor],
    cond: CondSampler,
    blocks: Sequence[Block],
    config: CTGANConfig,
    n: int,
    pac: int,
    device: torch.device,
) -> float:
    """One generator update from generated rows only (post-processing of the DP critic)."""
    g_opt.zero_grad(set_to_none=True)
    n = max(pac, (n // pac) * pac)
    fake, raw, which, cat = _fake(generator, cond, blocks, n, config, device)
    logits = functional_call(twin, critic_params, (fake.reshape(n // pac, -1),)).squeeze(-1)
    loss = F.softplus(-logits).mean() + _cond_loss(raw, cond, which, cat)
    loss.backward()
    g_opt.step()
    return float(loss.detach())


@torch.no_grad()
def generate(
    generator: Generator,
    cond: CondSampler,
    blocks: Sequence[Block],
    n: int,
    *,
    embedding_dim: int,
    device: torch.device,
    seed: int | None = None,
) -> Tensor:
    """Sample ``n`` encoded rows (hard one-hots, tanh scalars) on the CPU."""
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    generator.eval()
    c, _, _ = cond.sample(n, generator=g)
    z = torch.randn(n, embedding_dim, generator=g)
    raw = generator(torch.cat([z, c], dim=1).to(device))
    return activate(raw, blocks, tau=None).cpu()
