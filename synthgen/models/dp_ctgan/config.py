"""DP-CTGAN's configuration and the one-hot blocks it generates (public facts only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from synthgen.errors import ModelError
from synthgen.models.encoding import Span
from synthgen.models.settings import ModelSettings

#: Default half-width of the generator and discriminator layers (``model.hidden_dim`` unset).
HIDDEN_DIM = 128

BlockKind = Literal["softmax", "sigmoid"]

#: Noise multiplier (sigma / L2 sensitivity) of the one-shot Gaussian release of the
#: category counts behind the conditional vectors. Large on purpose: a single
#: full-data release at this multiplier adds little to the epsilon of training
#: (measured: 3.430 -> 3.444 on Adult-sized runs), and the counts of a 30k-row table
#: keep an error of a few tens of rows.
DEFAULT_COUNT_NOISE_MULTIPLIER = 15.0


@dataclass(frozen=True)
class Block:
    """Columns ``[start, start + width)`` of the encoded matrix that the generator emits together.

    ``softmax``: a one-hot token group (category, quantile bin, null);
    ``sigmoid``: one within-bin offset in [0, 1].
    """

    start: int
    width: int
    kind: BlockKind

    def __post_init__(self) -> None:
        if self.width < 1 or self.start < 0:
            raise ModelError(f"invalid block {self}: width must be >= 1 and start >= 0")
        if self.kind == "sigmoid" and self.width != 1:
            raise ModelError(f"invalid block {self}: a sigmoid block has width 1")


def blocks_from_spans(spans: Sequence[Span]) -> list[Block]:
    """The generator's output blocks for an encoder's float-matrix layout."""
    return [Block(s.start, s.end - s.start, s.activation) for s in spans]


@dataclass
class CTGANConfig:
    """Hyperparameters of DP-CTGAN (configuration, not learned state)."""

    embedding_dim: int = 128
    generator_dims: tuple[int, ...] = (256, 256)
    discriminator_dims: tuple[int, ...] = (256, 256)
    #: Far larger than CTGAN's 2e-4: under DP the step count is small (30 epochs of
    #: ~32 steps on Adult). Measured on Adult (eps 3, batch 1024, 30 epochs): TSTR AUC
    #: 0.85 at 1e-3, 0.87-0.88 at 3e-3 and 5e-3; 2e-4 left the generator untrained.
    generator_lr: float = 3e-3
    discriminator_lr: float = 3e-3
    #: Per-sample (per real/fake pair) clipping norm of the discriminator gradient.
    max_grad_norm: float = 1.0
    #: Rows packed into one discriminator input. Forced to 1 under DP (P4).
    pac: int = 1
    #: Gumbel-softmax temperature for one-hot blocks during training.
    tau: float = 0.2
    #: Generator updates per discriminator update.
    generator_steps: int = 1
    count_noise_multiplier: float = DEFAULT_COUNT_NOISE_MULTIPLIER
    #: Discriminator dropout (no parameters, so compatible with ghost clipping).
    dropout: float = 0.5
    #: Weight of the generator's marginal loss: KL from the (DP) category frequencies to
    #: the batch's mean generated distribution, per one-hot block. Generated rows and
    #: DP outputs only, so it is post-processing and costs no budget.
    marginal_weight: float = 1.0
    #: ghost (fast, Linear layers only) | hooks (Opacus per-sample gradients).
    grad_sample_mode: Literal["ghost", "hooks"] = "ghost"

    @classmethod
    def from_settings(cls, model: ModelSettings) -> CTGANConfig:
        """Defaults, with the spec's network width, learning rate, clipping norm and gradient mode."""
        width = 2 * (model.hidden_dim or HIDDEN_DIM)
        return cls(
            generator_lr=model.learning_rate,
            discriminator_lr=model.learning_rate,
            generator_dims=(width, width),
            discriminator_dims=(width, width),
            max_grad_norm=model.max_grad_norm,
            grad_sample_mode=model.grad_sample_mode,
            pac=model.pac,
        )

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
