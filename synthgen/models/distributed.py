"""Data-parallel DP-SGD over several processes: torch.distributed with Opacus's DPDDP.

What stays the same as one process (P3), and why:

- **Sampling.** Rank ``r`` of ``N`` holds rows ``r, r+N, r+2N, ...`` (a partition fixed by
  position, not by any value) and includes each of them in a step's local batch with
  probability ``q``, independently. The union of the local batches is one Poisson sample of
  all rows at rate ``q``: the sampled Gaussian mechanism the accountant charges.
- **Clipping.** Every rank clips its own rows' gradients at ``max_grad_norm``; Opacus's
  ``DistributedDPOptimizer`` all-reduces (sums) the clipped sums, so the step sees the
  clipped sum over the global batch.
- **Noise, once.** Only rank 0 adds Gaussian noise of standard deviation
  ``sigma * max_grad_norm`` (Opacus 1.6, ``DistributedDPOptimizer.add_noise``); the other
  ranks add none. The reduced gradient is ``(clipped sum + one noise draw) / expected batch``,
  the single-process step. Every rank applies that same reduced gradient, so the weights stay
  identical on all ranks; rank 0's copy is returned.
- **Accounting.** The noise multiplier is calibrated once, before the ranks start, for the
  global rate ``1/int(1/q)`` and the planned steps; rank 0's accountant history is returned
  and checked against that plan.

Every rank takes exactly the planned number of steps, an empty local batch included (it adds
a zero clipped sum): Opacus's ``DistributedUniformWithReplacementSampler`` skips a rank's
empty batch, which would leave the ranks waiting on different all-reduces, so this module
samples with :class:`RankPoissonSampler` instead.

The guarantee stops holding if a rank trains on rows outside its share, if the ranks use
different noise multipliers or sampling rates, or if the returned weights are combined with
anything trained on the same rows outside the ledger.
"""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from synthgen.errors import ModelError, SpecError
from synthgen.models.dp_sgd import DPSGDPlan, _Codes, _collate_gathered, dp_sgd_epoch, make_dp_sgd
from synthgen.models.tvae_net import AutoregressiveVAE

T = TypeVar("T")


@dataclass
class RankResult:
    """What rank 0 hands back: the weights, the accountant history, loss per epoch (all ranks)."""

    state: dict[str, torch.Tensor]
    history: list[tuple[float, float, int]]
    epoch_losses: list[float]


class RankPoissonSampler(torch.utils.data.Sampler[list[int]]):
    """Poisson sampling of one rank's share: ``steps`` batches, each row kept with probability ``q``.

    Indices are local to the rank's share. Unlike Opacus's distributed sampler, an empty batch
    is yielded (not skipped), so all ranks take the same number of steps.
    """

    def __init__(self, *, num_samples: int, sample_rate: float, steps: int, generator: torch.Generator):
        self.num_samples = num_samples
        self.sample_rate = sample_rate
        self.steps = steps
        self.generator = generator

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.steps):
            mask = torch.rand(self.num_samples, generator=self.generator) < self.sample_rate
            yield mask.nonzero(as_tuple=False).reshape(-1).tolist()


def shard(codes: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank ``rank``'s share of the rows: positions ``rank, rank + world_size, ...``."""
    return codes[rank::world_size].contiguous()


@dataclass(frozen=True)
class LaunchedRank:
    """This process's place in a world started by ``torchrun`` (its environment variables)."""

    rank: int
    world_size: int
    local_rank: int


def launched_rank() -> LaunchedRank | None:
    """The torchrun rank of this process, or None when it was not launched with several ranks.

    torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``
    (the ``env://`` rendezvous); a world of one is a single process.
    """
    env = os.environ
    if "RANK" not in env or "MASTER_ADDR" not in env or int(env.get("WORLD_SIZE", "1")) < 2:
        return None
    return LaunchedRank(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", env["RANK"])))


def join_launched_group(device: str, requested_backend: str) -> None:
    """Initialise the default process group from torchrun's environment (once per process)."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    backend = backend_for(device, requested_backend)
    dist.init_process_group(backend, init_method="env://", timeout=timedelta(minutes=10))


def check_single_host(launched: LaunchedRank) -> None:
    """Refuse a torchrun world spread over several hosts.

    Rank 0 hands the encoded training rows to the other ranks over the process group
    (unencrypted): acceptable between processes of one host, not across a network.
    """
    local = int(os.environ.get("LOCAL_WORLD_SIZE", launched.world_size))
    if local != launched.world_size:
        raise SpecError(
            f"torchrun world of {launched.world_size} ranks spans several hosts ({local} on this one): "
            "rank 0 would send encoded real rows to other hosts unencrypted; run all ranks on one host"
        )


def check_same_settings(blob: str) -> None:
    """Every rank must train with rank 0's settings: a rank with its own clipping norm or noise
    would break the sensitivity that rank 0's noise covers. All ranks raise together."""
    import hashlib

    import torch.distributed as dist

    mine = hashlib.sha256(blob.encode()).hexdigest()
    seen: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(seen, mine)
    if len(set(seen)) != 1:
        differ = [r for r, h in enumerate(seen) if h != seen[0]]
        raise ModelError(
            f"torchrun ranks {differ} were started with model/privacy settings that differ from "
            "rank 0's: every rank must run the same spec"
        )


def from_rank_zero(make: Callable[[], T], rank: int) -> T:
    """``make()`` on rank 0 only, its result handed to every rank (an error on rank 0 too).

    Used for the DP preprocessing: run once, its result (the encoded rows too) shared, so the ranks train on
    one encoding and the ledger is charged once.
    """
    import torch.distributed as dist

    payload: list[Any] = [None]
    if rank == 0:
        try:
            payload = [("ok", make())]
        except Exception as exc:
            payload = [("error", f"{type(exc).__name__}: {exc}")]
            dist.broadcast_object_list(payload, src=0)
            raise
    dist.broadcast_object_list(payload, src=0)
    status, value = payload[0]
    if status == "error":
        raise ModelError(f"rank 0 failed before training: {value}")
    return value  # type: ignore[no-any-return]


def free_port() -> int:
    """A free TCP port on loopback (for the ranks' rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def backend_for(device: str, requested: str) -> str:
    """``auto``: nccl on CUDA, gloo on CPU. NCCL cannot run on CPU tensors."""
    backend = ("nccl" if device.startswith("cuda") else "gloo") if requested == "auto" else requested
    if backend == "nccl" and not device.startswith("cuda"):
        raise ModelError("model.distributed.backend nccl needs model.device cuda: use gloo on CPU")
    return backend


def rank_device(device: str, local_rank: int) -> str:
    return f"cuda:{local_rank}" if device.startswith("cuda") else "cpu"


def check_world(device: str, world_size: int) -> None:
    """Refuse a world the machine cannot hold, before any DP mechanism runs."""
    if device.startswith("cuda") and world_size > torch.cuda.device_count():
        raise ModelError(
            f"model.distributed.world_size={world_size} needs {world_size} GPUs, "
            f"{torch.cuda.device_count()} found: lower world_size"
        )


def train_data_parallel(
    net: AutoregressiveVAE,
    codes: torch.Tensor,
    plan: DPSGDPlan,
    *,
    world_size: int,
    device: str,
    backend: str = "auto",
) -> RankResult:
    """Train ``net`` with DP-SGD on ``world_size`` spawned processes; return rank 0's result.

    ``codes`` are raw-derived training rows: each rank's share reaches it as a shared-memory
    tensor, never through a file. Rank 0 writes only the trained weights (a DP output) and its
    accountant history into a private temporary directory (mode 0700), removed on return.
    """
    import torch.multiprocessing as mp

    check_world(device, world_size)
    backend = backend_for(device, backend)
    with tempfile.TemporaryDirectory(prefix="synthgen-ddp-") as tmp:
        work = Path(tmp)
        # The shares travel as shared-memory tensors (torch.multiprocessing), never through a
        # file: the training rows stay off disk outside the REAL zone.
        shares = [shard(codes, rank, world_size).share_memory_() for rank in range(world_size)]
        state = {k: v.detach().cpu().clone().share_memory_() for k, v in net.state_dict().items()}
        init = {
            "cardinalities": net.cardinalities,
            "latent_dim": net.latent_dim,
            "hidden_dim": _hidden_dim(net),
        }
        try:
            mp.spawn(
                _rank_main,
                args=(world_size, free_port(), backend, device, asdict(plan), init, shares, state, str(work)),
                nprocs=world_size,
                join=True,
            )
        except mp.ProcessRaisedException as exc:
            last = str(exc).strip().splitlines()[-1]
            raise ModelError(f"distributed DP-SGD failed on a rank: {last}") from None
        except mp.ProcessExitedException as exc:
            raise ModelError(f"distributed DP-SGD: a rank exited ({exc})") from None
        out = torch.load(work / "rank0.pt", weights_only=True)
    history = [(float(s), float(r), int(n)) for s, r, n in out["history"]]
    return RankResult(state=out["state"], history=history, epoch_losses=list(out["losses"]))


def _hidden_dim(net: AutoregressiveVAE) -> int:
    first = net.heads[0][0]  # type: ignore[index]
    assert isinstance(first, nn.Linear)
    return int(first.out_features)


def _rank_main(
    rank: int,
    world_size: int,
    port: int,
    backend: str,
    device: str,
    plan_fields: dict[str, Any],
    init: dict[str, Any],
    shares: list[torch.Tensor],
    state: dict[str, torch.Tensor],
    work: str,
) -> None:
    import torch.distributed as dist

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    # The ranks share the cores; one thread each beats oversubscription (measured in the test).
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timedelta(minutes=10))
    try:
        dev = rank_device(device, rank)
        if dev.startswith("cuda"):
            torch.cuda.set_device(dev)
        net = AutoregressiveVAE(
            init["cardinalities"], latent_dim=init["latent_dim"], hidden_dim=init["hidden_dim"]
        )
        net.load_state_dict(state)
        local = shares[rank]
        del shares  # this rank reads only its own share
        result = run_rank(net.to(dev), local, DPSGDPlan(**plan_fields), dev)
        if rank == 0:
            torch.save(
                {"state": result.state, "history": result.history, "losses": result.epoch_losses},
                Path(work) / "rank0.pt",
            )
    finally:
        dist.destroy_process_group()


def run_rank(net: nn.Module, local_codes: torch.Tensor, plan: DPSGDPlan, device: str) -> RankResult:
    """One rank's DP-SGD loop (the process group is initialised). Also the torchrun entry."""
    import torch.distributed as dist
    from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP

    world_size = dist.get_world_size()
    module = DPDDP(net)  # broadcasts rank 0's weights
    sampler = RankPoissonSampler(
        num_samples=int(local_codes.shape[0]),
        sample_rate=plan.sample_rate,
        steps=plan.steps_per_epoch,
        generator=torch.Generator().manual_seed(secrets.randbits(63)),
    )
    loader = torch.utils.data.DataLoader(
        _Codes(local_codes), batch_sampler=sampler, collate_fn=_collate_gathered
    )
    dp = make_dp_sgd(module, loader=loader, plan=plan, device=device, world_size=world_size)
    kl_weight = torch.tensor(plan.kl_weight, device=device)
    losses: list[float] = []
    for _ in range(plan.epochs):
        total, seen = dp_sgd_epoch(dp, loader, kl_weight=kl_weight, device=device)
        sums = torch.tensor([total, float(seen)], dtype=torch.float64)
        dist.all_reduce(sums)
        losses.append(float(sums[0] / max(float(sums[1]), 1.0)))
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    history = [(float(s), float(r), int(n)) for s, r, n in dp.engine.accountant.history]
    return RankResult(state=state, history=history, epoch_losses=losses)
