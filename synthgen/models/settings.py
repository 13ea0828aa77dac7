"""Model section of the pipeline spec (owned by :mod:`synthgen.models`)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from synthgen.models.text.settings import TextModelSettings
from synthgen.spec_section import SpecSection


class DistributedSettings(SpecSection):
    """Data-parallel DP-SGD over several processes on one machine (DP-TVAE)."""

    model_config = ConfigDict(extra="forbid")

    #: Training processes. 1 trains in the calling process; N > 1 spawns N ranks that each
    #: Poisson-sample their share of the rows (the union is one Poisson sample of all rows), so
    #: the accountant, the noise and the spent epsilon are those of one process. On CUDA rank r
    #: uses cuda:r (the machine needs N GPUs); on CPU the cores are split between the ranks.
    world_size: int = Field(default=1, ge=1, le=64)
    #: auto (nccl on CUDA, gloo on CPU) | gloo | nccl: the torch.distributed backend.
    backend: Literal["auto", "gloo", "nccl"] = "auto"


ModelKind = Literal["auto", "dp_tvae", "dp_ctgan", "dp_mst", "sdv_gaussian_copula", "sdv_ctgan", "sdv_tvae"]


class ModelSettings(SpecSection):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    #: auto (chosen from the DP row count, the column count and epsilon; the run summary says
    #: which and why) | dp_tvae | dp_ctgan (DP-SGD with Opacus) | dp_mst (noisy marginals on a DP
    #: maximum spanning tree, zCDP), or the non-DP SDV kinds (outputs carry dp: false).
    kind: ModelKind = "auto"
    #: Passes over the data. Under DP fewer, larger steps pay: the defaults are tuned on Adult.
    epochs: int = Field(default=30, ge=1, le=10_000)
    #: Expected batch size (under DP: Poisson sampling rate = batch_size / DP row count).
    #: Unset: 1024, or a quarter of the rows (the DP row count under DP) on smaller data;
    #: 500 for the SDV kinds (their default).
    batch_size: int | None = Field(default=None, ge=2, le=1_000_000)
    #: auto | cpu | cuda | cuda:N
    device: str = "auto"
    #: Seed of weight initialisation and sampling (never of DP noise, which uses OS entropy).
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    #: Drop exact duplicate rows before training (counted in the report either way).
    drop_duplicates: bool = False
    #: The DP language model for text columns.
    text: TextModelSettings = TextModelSettings()
    #: Hidden units of each per-column head (DP-TVAE; default 64) / half the width of the
    #: networks (DP-CTGAN; default 128). Unset: the model kind's default.
    hidden_dim: int | None = Field(default=None, ge=4, le=4096)
    #: Latent dimension of DP-TVAE's encoder (0 = no latent: a purely autoregressive decoder).
    latent_dim: int = Field(default=8, ge=0, le=1024)
    #: Weight of the KL term of DP-TVAE's per-sample loss.
    kl_weight: float = Field(default=1.0, ge=0, le=1000)
    #: Adam learning rate.
    learning_rate: float = Field(default=3e-3, gt=0, le=10)
    #: Per-sample gradient clipping norm of DP-SGD (the sensitivity of each step).
    max_grad_norm: float = Field(default=1.0, gt=0, le=1000)
    #: ghost (fast, Linear layers) | hooks (per-sample gradients, any Opacus-supported layer).
    grad_sample_mode: Literal["ghost", "hooks"] = "ghost"
    #: Quantile bins per numeric/datetime column.
    numeric_bins: int = Field(default=20, ge=2, le=1000)
    #: Most categories a categorical column may have (more is refused: declare it id or text).
    max_categories: int = Field(default=1000, ge=2, le=1_000_000)
    #: DP-CTGAN: rows packed per discriminator sample. Forced to 1 under DP (a packed row
    #: would let one person change several clipped terms); larger values only without DP.
    pac: int = Field(default=1, ge=1, le=64)
    #: SDV kinds only: allow loading their pickled model files (SDV saves with pickle). An SDV
    #: kind needs it (generate loads the model train saved): the spec is refused without it.
    sdv_allow_pickle: bool = False
    #: dp_mst: most cells one measured marginal may have (memory: 8 bytes a cell, a few copies).
    #: A pair of columns whose public domain bound is larger is refused before any DP mechanism.
    max_marginal_cells: int = Field(default=2_000_000, ge=4, le=1_000_000_000)
    #: Multi-process DP-SGD (DP-TVAE only; other kinds refuse world_size > 1).
    distributed: DistributedSettings = DistributedSettings()
