"""DP-CTGAN's networks: the residual generator and the discriminator (critic)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _Residual(nn.Module):
    """Linear + BatchNorm + ReLU, concatenated to its input.

    BatchNorm is fine here: the generator never sees real data.
    """

    def __init__(self, i: int, o: int) -> None:
        super().__init__()
        self.fc = nn.Linear(i, o)
        self.bn = nn.BatchNorm1d(o)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class Generator(nn.Module):
    """Maps ``[noise, conditional vector]`` to raw (pre-activation) encoded rows."""

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
        out: Tensor = self.net(x)
        return out

    @torch.no_grad()
    def infer(self, inputs: Sequence[Tensor], *, chunk_rows: int = 4096) -> Tensor:
        """``forward(cat(inputs, dim=1))`` in eval mode, cheaper for sampling.

        Each BatchNorm (running statistics) is folded into its Linear, and instead of
        concatenating ``[h, x]`` before the next layer, that layer's weight is split by input
        block and the blocks are multiplied in place (no copies of the growing input); rows
        go in chunks that stay in cache.
        """
        *residuals, last = list(self.net)
        folded: list[tuple[Tensor, Tensor]] = []
        for layer in residuals:
            assert isinstance(layer, _Residual)
            fc, bn = layer.fc, layer.bn
            assert bn.running_var is not None and bn.running_mean is not None
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            folded.append(((fc.weight * scale[:, None]).T, (fc.bias - bn.running_mean) * scale + bn.bias))
        assert isinstance(last, nn.Linear)
        folded.append((last.weight.T, last.bias))
        n = inputs[0].shape[0]
        out = inputs[0].new_empty(n, last.out_features)
        for start in range(0, n, chunk_rows):
            # Newest block first: _Residual outputs cat([h, input]).
            blocks = [x[start : start + chunk_rows] for x in inputs]
            for i, (weight, bias) in enumerate(folded):
                acc = bias.expand(blocks[0].shape[0], -1).clone()
                row = 0
                for block in blocks:
                    acc.addmm_(block, weight[row : row + block.shape[1]])
                    row += block.shape[1]
                if i == len(folded) - 1:
                    out[start : start + chunk_rows] = acc
                else:
                    blocks.insert(0, acc.relu_())
        return out


def make_discriminator(in_dim: int, dims: Sequence[int], dropout: float) -> nn.Sequential:
    """An MLP critic whose only parametrised layers are ``nn.Linear`` (ghost clipping supports them).

    It maps ``(..., in_dim)`` to ``(..., 1)``: a ``(B, 2, d)`` pair tensor gives one
    logit per row while Opacus sees ``B`` samples.
    """
    layers: list[nn.Module] = []
    d = in_dim
    for h in dims:
        layers += [nn.Linear(d, h), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
        d = h
    layers.append(nn.Linear(d, 1))
    return nn.Sequential(*layers)
