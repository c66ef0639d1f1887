"""PyTorch modules: the tutorial's MLP (net1) and CNN (net2 ... net7); net8's BNCNN.

Weights start as PyTorch initialises them (``init="torch"``); ``init="glorot"`` gives
Lasagne's Glorot-uniform with zero bias instead. On faces15, net1 with PyTorch's smaller
initial weights reached a valid RMSE of 3.02 px in 400 epochs against 3.42 px with Glorot
(same lr 0.01, momentum 0.9, seed 0), so PyTorch's is the default.
Inputs are flat (n, 9216) pixel rows scaled to [0, 1].
"""
from __future__ import annotations

import torch
from torch import nn

from .keypoints import IMAGE_SIDE, N_PIXELS, N_TARGETS


def _initialise(module: nn.Module, init: str) -> None:
    if init == "torch":
        return  # layers are already initialised by their constructors
    if init != "glorot":
        raise ValueError(f"init must be 'torch' or 'glorot', got {init!r}")
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)


class MLP(nn.Module):
    """net1: 9216 -> hidden (ReLU) -> 30, as in the tutorial."""

    def __init__(self, n_hidden: int = 100, n_outputs: int = N_TARGETS, init: str = "torch"):
        super().__init__()
        self.hidden = nn.Linear(N_PIXELS, n_hidden)
        self.output = nn.Linear(n_hidden, n_outputs)
        _initialise(self, init)

    def forward(self, X):
        return self.output(torch.relu(self.hidden(X.reshape(X.shape[0], N_PIXELS))))


class _ConvNet(nn.Module):
    """Flat (n, 9216) images -> ``features`` -> ``head``; ``channels_last`` stores the
    activations NHWC, which is faster for these convolutions on CPU."""

    channels_last = False

    @property
    def output(self) -> nn.Linear:
        return self.head[-1]

    def forward(self, X):
        X = X.reshape(X.shape[0], 1, IMAGE_SIDE, IMAGE_SIDE)  # shape[0]: a dynamic batch in ONNX
        if self.channels_last:
            X = X.contiguous(memory_format=torch.channels_last)
        return self.head(self.features(X))


class CNN(_ConvNet):
    """The tutorial's CNN: three conv + 2x2 max-pool blocks, two dense layers, linear output.

    ``dropout`` gives the drop probability after each pool and after the first dense layer
    (four values; zeros for net2-net5, the tutorial's 0.1/0.2/0.3/0.5 for net6/net7).
    ``channels_last`` stores activations NHWC, which is faster for these convs on CPU.
    Each block pools before its ReLU: max-pooling and ReLU commute (ReLU is monotonic), so
    the function and its gradients are the tutorial's, but the ReLU and its backward run
    on a quarter of the values (on CPU the largest activation is 145 MB per batch of 128).
    """

    def __init__(self, filters=(32, 64, 128), kernels=(3, 2, 2), dense=(500, 500),
                 dropout=(0.0, 0.0, 0.0, 0.0), n_outputs: int = N_TARGETS,
                 channels_last: bool = False, init: str = "torch"):
        super().__init__()
        if len(dropout) != 4:
            raise ValueError(f"dropout needs 4 values (3 pools + first dense), got {dropout!r}")
        self.channels_last = channels_last
        blocks, channels, side = [], 1, IMAGE_SIDE
        for n_filters, kernel, p in zip(filters, kernels, dropout[:3]):
            blocks += [nn.Conv2d(channels, n_filters, kernel), nn.MaxPool2d(2), nn.ReLU()]
            if p:
                blocks.append(nn.Dropout(p))
            channels, side = n_filters, (side - kernel + 1) // 2
        self.features = nn.Sequential(*blocks)
        head = [nn.Flatten(), nn.Linear(channels * side * side, dense[0]), nn.ReLU()]
        if dropout[3]:
            head.append(nn.Dropout(dropout[3]))
        for n_in, n_out in zip(dense[:-1], dense[1:]):
            head += [nn.Linear(n_in, n_out), nn.ReLU()]
        head.append(nn.Linear(dense[-1], n_outputs))
        self.head = nn.Sequential(*head)
        _initialise(self, init)
        if channels_last:
            self.to(memory_format=torch.channels_last)


class BNCNN(_ConvNet):
    """net8: a small batch-norm CNN of 3x3 convolutions, quick to train on a CPU.

    ``layers`` lists each conv-BN-ReLU layer as (output channels / ``width``, stride). The
    default halves the side at once and again in the next layer, 96 -> 48 -> 24, then to
    12 and 6, while the channels grow from width to 8 x width (16, 32, 48, 64, 96, 128):
    six layers, 27 M multiply-adds per image at width 16. Starting at stride 2 skips the
    full-size 96x96 activations, whose batch-norm and ReLU cost about a third of a step on
    a CPU; going on to 24x24 at once skips the 48x48 stride-1 layer of the first net8
    (``LAYERS_V1``, 80 M multiply-adds), which took over half of a step. Without bf16 (an
    AVX2-only CPU) a step takes about 0.4 of the first net8's, and on real faces the same
    minutes buy a better model (docs/RESULTS.md). The 6x6 map is
    flattened (keypoints are positions, so global pooling would throw away what the head
    needs), dropped out with ``dropout``, and mapped linearly to the outputs (through a
    ``hidden``-unit ReLU layer where ``hidden`` > 0).
    """

    LAYERS = ((1, 2), (2, 2), (3, 1), (4, 2), (6, 1), (8, 2))
    LAYERS_V1 = ((1, 2), (2, 1), (4, 2), (4, 1), (8, 2), (8, 1), (8, 2))

    def __init__(self, width: int = 16, dropout: float = 0.0, layers=LAYERS, hidden: int = 0,
                 n_outputs: int = N_TARGETS, channels_last: bool = False):
        super().__init__()
        self.channels_last = channels_last
        convs, channels, side = [], 1, IMAGE_SIDE
        for multiple, stride in layers:
            out = int(multiple * width)
            convs += [nn.Conv2d(channels, out, 3, stride=stride, padding=1, bias=False),
                      nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels, side = out, (side - 1) // stride + 1
        self.features = nn.Sequential(*convs)
        head, features = [nn.Flatten()], channels * side * side
        if dropout:
            head.append(nn.Dropout(dropout))
        if hidden:
            head += [nn.Linear(features, hidden), nn.ReLU(inplace=True)]
            features = hidden
        head.append(nn.Linear(features, n_outputs))
        self.head = nn.Sequential(*head)
        if channels_last:
            self.to(memory_format=torch.channels_last)


def transfer_weights(source_module, target_module) -> list[str]:
    """Copy every parameter and buffer of ``source_module`` into ``target_module`` except
    the output layer's (whose width may differ). Returns the names copied."""
    output_ids = {id(p) for p in target_module.output.parameters()}
    skip = {name for name, p in target_module.named_parameters() if id(p) in output_ids}
    source = source_module.state_dict()
    target = target_module.state_dict()
    copied = [name for name in target if name not in skip and name in source
              and source[name].shape == target[name].shape]
    missing = [name for name in target if name not in skip and name not in copied]
    if missing:
        raise ValueError(f"the pre-trained net does not match this net's layers: {missing[:3]}")
    target_module.load_state_dict({**target, **{n: source[n] for n in copied}})
    return copied
