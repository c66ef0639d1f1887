"""PyTorch modules: the tutorial's MLP (net1) and CNN (net2 ... net7); net8's BNCNN.

Weights start as PyTorch initialises them (``init="torch"``); ``init="glorot"`` gives
Lasagne's Glorot-uniform with zero bias instead. On faces15, net1 with PyTorch's smaller
initial weights reached a valid RMSE of 3.02 px in 400 epochs against 3.42 px with Glorot
(same lr 0.01, momentum 0.9, seed 0), so PyTorch's is the default.
Inputs are flat (n, 9216) pixel rows scaled to [0, 1].
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..keypoints import CENTER, DEFAULT_PIXEL_ORIGIN, IMAGE_SIDE, N_PIXELS, N_TARGETS, SCALE


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
    def output(self) -> nn.Module:
        return self.head[-1]   # a Linear, or a SoftArgmax (its heatmaps are the output layer)

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

    ``head="softargmax"`` replaces the flattened map and linear head with one heatmap per
    keypoint (a 1x1 convolution of the last map), whose softmax's centre of mass is the
    keypoint (``SoftArgmax``); ``hidden`` is unused there and ``dropout`` drops channels.
    """

    LAYERS = ((1, 2), (2, 2), (3, 1), (4, 2), (6, 1), (8, 2))
    LAYERS_V1 = ((1, 2), (2, 1), (4, 2), (4, 1), (8, 2), (8, 1), (8, 2))
    # for the soft-argmax head: the last layer keeps 12x12, a heatmap cell per 8x8 pixels
    LAYERS_12 = ((1, 2), (2, 2), (3, 1), (4, 2), (6, 1), (8, 1))
    HEADS = ("dense", "softargmax")
    HEAD_LAYERS = {"dense": LAYERS, "softargmax": LAYERS_12}   # each head's own layers

    def __init__(self, width: int = 16, dropout: float = 0.0, layers=LAYERS, hidden: int = 0,
                 n_outputs: int = N_TARGETS, channels_last: bool = False, head: str = "dense"):
        super().__init__()
        if head not in self.HEADS:
            raise ValueError(f"head must be one of {', '.join(self.HEADS)}, got {head!r}")
        self.channels_last = channels_last
        convs, channels, side = [], 1, IMAGE_SIDE
        for multiple, stride in layers:
            out = int(multiple * width)
            convs += [nn.Conv2d(channels, out, 3, stride=stride, padding=1, bias=False),
                      nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels, side = out, (side - 1) // stride + 1
        self.features = nn.Sequential(*convs)
        if head == "softargmax":
            ends = [nn.Dropout2d(dropout)] if dropout else []
            ends.append(SoftArgmax(channels, side, n_outputs))
        else:
            ends, features = [nn.Flatten()], channels * side * side
            if dropout:
                ends.append(nn.Dropout(dropout))
            if hidden:
                ends += [nn.Linear(features, hidden), nn.ReLU(inplace=True)]
                features = hidden
            ends.append(nn.Linear(features, n_outputs))
        self.head = nn.Sequential(*ends)
        if channels_last:
            self.to(memory_format=torch.channels_last)


class SoftArgmax(nn.Module):
    """(n, channels, side, side) maps -> (n, n_outputs) keypoints as (x, y) pairs, in the
    targets' scale: a 1x1 convolution gives one heatmap per keypoint, its softmax over the
    cells a distribution, and the keypoint is that distribution's mean over the cells'
    centres (integral regression, "soft-argmax"). Few weights (a heatmap does not care
    where in the image it fires) and sub-cell positions. A per-output scale and offset,
    starting at 1 and 0, absorb a labelling convention's shift and the cells' finite extent.
    The cells' centres are in the labels' coordinates of pixel origin ``origin``
    (keypoints.py); a KeypointNet sets its own (``set_origin``) when it builds the module.
    """

    def __init__(self, channels: int, side: int, n_outputs: int = N_TARGETS):
        super().__init__()
        if n_outputs % 2:
            raise ValueError(f"a soft-argmax head predicts (x, y) pairs; n_outputs={n_outputs}")
        self.side = side
        self.heatmaps = nn.Conv2d(channels, n_outputs // 2, 1)
        self.register_buffer("centres", torch.zeros(side))
        self.set_origin(DEFAULT_PIXEL_ORIGIN)
        # logits x sharpness (from 4): a flat softmax puts every keypoint at the centre and
        # moves slowly; on synthetic faces x4 learned twice as fast as x1 in 12 epochs
        self.log_sharpness = nn.Parameter(torch.tensor(math.log(4.0)))
        # the scale as 1 + stretch, so that weight decay pulls it to 1, not to 0
        self.stretch = nn.Parameter(torch.zeros(n_outputs))
        self.offset = nn.Parameter(torch.zeros(n_outputs))

    def set_origin(self, origin):
        """Put the cells' centres in labels of pixel origin ``origin`` (a buffer, so a saved
        net keeps the grid it was trained with)."""
        cell = IMAGE_SIDE / self.side      # pixels per cell; column i's centre is x = i + origin
        centres = torch.arange(self.side) * cell + (cell - 1) / 2 + float(origin)
        self.centres.copy_((centres - CENTER) / SCALE)

    def forward(self, maps):
        n = maps.shape[0]
        logits = self.heatmaps(maps).float().reshape(n, -1, self.side * self.side)
        logits = logits * self.log_sharpness.exp()
        weights = logits.softmax(-1).reshape(n, -1, self.side, self.side)
        x = (weights.sum(2) * self.centres).sum(-1)       # columns' marginal . centres
        y = (weights.sum(3) * self.centres).sum(-1)
        points = torch.stack([x, y], dim=-1).reshape(n, -1)   # x0, y0, x1, y1, ...
        return points * (1 + self.stretch) + self.offset


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
