"""The small ResNet of the LPLR paper's CNN experiment (Sec. 6.3, Fig. 3).

The paper trains "a ResNet-style CNN" on a 5-class subset of CIFAR-10 and
does not give its architecture; this is ours (THEORY.md §1: "choose, write
the choice into the config").  It follows the CIFAR ResNets of He et al.
(2016, Sec. 4.2) -- a 3×3 stem, three stages of widths 16-32-64 halving the
image, global average pooling, one dense layer -- with projection shortcuts
(their option B) where the shape changes, and ``blocks_per_stage`` blocks per
stage (He et al. use ``n = 3 … 18``; 1 or 2 keep a CPU run short).  Built from
the layers of :mod:`minilplr.nn.conv`, :mod:`minilplr.nn.batchnorm` and
:mod:`minilplr.nn.residual`.

Architecture (defaults ``widths=(16, 32, 64)``, ``blocks_per_stage=1``, 32×32×3 input)::

    input                      (N,  3, 32, 32)
    stem:   conv 3×3 (3->16), BN, ReLU                          (N, 16, 32, 32)
    stage1: blocks_per_stage × ResidualBlock(16->16, stride 1)  (N, 16, 32, 32)
    stage2: ResidualBlock(16->32, stride 2, projection)         (N, 32, 16, 16)
            + (blocks_per_stage − 1) × ResidualBlock(32->32)
    stage3: ResidualBlock(32->64, stride 2, projection)         (N, 64,  8,  8)
            + (blocks_per_stage − 1) × ResidualBlock(64->64)
    pool:   global average pooling                              (N, 64)
    head:   dense 64 -> 5                                       (N, 5) logits

Every convolution is 3×3 with padding 1 and no bias (the batch norm after it
has the shift ``β``), except the projection shortcuts, which are 1×1 with
stride 2 followed by batch norm.  A residual block is
``ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x))``
(:class:`~minilplr.nn.residual.ResidualBlock`).  The network is trained with softmax
cross-entropy (:func:`minilplr.nn.losses.softmax_cross_entropy`) on its logits.

With ``blocks_per_stage = 1`` the network has 8 weight layers on the main
path (stem, 2 per block, head; "ResNet-8"), with 2 "ResNet-14", and
``P = 77 717`` resp. ``174 933`` parameters at the default widths.

Initialisation: He normal, :math:`W \\sim \\mathcal N(0, 2/D)` with fan-in
``D = k·k·C_in`` for a convolution (:func:`minilplr.nn.init.he_normal`), drawn on
the host from ``np.random.default_rng(seed)`` in the order the layers are
built; batch norm ``γ = 1``, ``β = 0``, running mean 0 and variance 1; the
head's bias 0.
"""
from __future__ import annotations

import numpy as np

from . import init as _init
from ..backend import get_backend, resolve_dtype, to_device
from .batchnorm import BatchNorm2D
from .conv import Conv2D
from .layers import Dense, ReLU, Sequential
from .state import named_buffers
from .models import Model
from .residual import GlobalAvgPool, ResidualBlock
from ..validate import check_int, check_positive

__all__ = ["ImageModel", "resnet"]


class ImageModel(Model):
    """A :class:`~minilplr.nn.models.Model` fed images ``X (N, C, H, W)``.

    The only changes from :class:`Model`: ``input_shape`` is ``(C, H, W)``, so
    :meth:`~minilplr.nn.models.Model.check_input` asks for 4-D ``X``, and the
    running statistics of batch norm are listed in :attr:`buffers`.  ``d_in`` is ``D = C·H·W``, the
    number of input features, so code that reads ``d_in`` / ``d_out`` works
    unchanged.

    Attributes
    ----------
    input_shape : (C, H, W)
    buffers : OrderedDict
        Batch norm's running statistics by name (state that is not a
        parameter: it has no gradient, is not in the flat ``θ``, and must be
        saved beside the parameters to resume a run or evaluate in eval mode).
    """

    def __init__(self, layers, *, input_shape, d_out, dtype, backend, config=None):
        c, h, w = (int(v) for v in input_shape)
        super().__init__(layers, d_in=c * h * w, d_out=d_out, dtype=dtype, backend=backend, config=config,
                         input_shape=(c, h, w))

    @property
    def buffers(self):
        return named_buffers(self)

    def __repr__(self):
        mode = "train" if self.training else "eval"
        arch = self.config.get("arch", "cnn")
        if arch == "resnet":
            arch += f" widths {tuple(self.config['widths'])} x {self.config['blocks_per_stage']} block(s)"
        return (f"ImageModel[{arch}: {' -> '.join(self.layers)}; input {self.input_shape} -> "
                f"{self.d_out}; {self.dtype}, {self.backend.name}, {mode} mode]")


def resnet(
    in_channels: int = 3,
    num_classes: int = 5,
    widths=(16, 32, 64),
    blocks_per_stage: int = 1,
    image_size: int = 32,
    seed: int = 0,
    dtype=None,
    backend=None,
    *,
    bn_momentum: float = 0.1,
    bn_eps: float = 1e-5,
) -> ImageModel:
    """The small ResNet described in this module's docstring.

    Parameters
    ----------
    in_channels : int
        ``C`` of the input images (3 for CIFAR-10, 1 for MNIST).
    num_classes : int
        ``K``, the logits per sample.
    widths : sequence of int
        Channels of each stage; the stem has ``widths[0]``.  Every stage after
        the first starts with a stride-2 block (three stages by default).
    blocks_per_stage : int
        Residual blocks per stage (1: "ResNet-8", 2: "ResNet-14").
    image_size : int
        ``H = W`` of the input images; the model checks it.
    seed : int
        Seed of the host generator that draws every weight.
    dtype : "float32" (default) or "float64"
    backend : "numpy", "cupy", "strict" or None (the current default)
    bn_momentum, bn_eps : float
        Batch norm's running-statistics momentum and ``ε`` (PyTorch's defaults).

    Returns
    -------
    ImageModel
        Parameters named ``"stem.conv.W"``, ``"stem.bn.gamma"``,
        ``"stage2.block1.conv1.W"``, ``"stage2.block1.bn1.gamma"``,
        ``"stage2.block1.shortcut.conv.W"``, …, ``"head.W"``, ``"head.b"``.
        In training mode after construction; ``.eval()`` switches batch norm
        to its running statistics.
    """
    in_channels, num_classes, blocks_per_stage, image_size = (
        check_int(name, v, 1) for name, v in (("in_channels", in_channels), ("num_classes", num_classes),
                                              ("blocks_per_stage", blocks_per_stage), ("image_size", image_size)))
    seed = check_int("seed", seed, 0)
    bn_eps = check_positive("bn_eps", bn_eps)
    if not 0 < check_positive("bn_momentum", bn_momentum) <= 1:
        raise ValueError(f"bn_momentum: expected a number in (0, 1], got {bn_momentum!r}")
    widths = tuple(widths)
    if not widths or any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1 for w in widths):
        raise ValueError(f"widths: expected a non-empty sequence of positive integers, got {widths!r}")
    dt = resolve_dtype(dtype)
    be = get_backend(backend)
    rng = np.random.default_rng(seed)

    def conv(c_in, c_out, k, stride):
        W = _init.he_normal(k * k * c_in, c_out, rng).reshape(k, k, c_in, c_out)  # N(0, 2/(k²C_in))
        return Conv2D(to_device(W, be, dt), None, stride=stride, padding=(k - 1) // 2)

    def bn(c):
        return BatchNorm2D(to_device(np.ones(c), be, dt), to_device(np.zeros(c), be, dt),
                           momentum=bn_momentum, eps=bn_eps)

    def block(c_in, c_out, stride):
        c1, b1, c2, b2 = conv(c_in, c_out, 3, stride), bn(c_out), conv(c_out, c_out, 3, 1), bn(c_out)
        short = (conv(c_in, c_out, 1, stride), bn(c_out)) if (stride != 1 or c_in != c_out) else None
        return ResidualBlock(c1, b1, c2, b2, short)

    layers = [("stem", Sequential([("conv", conv(in_channels, widths[0], 3, 1)), ("bn", bn(widths[0])),
                                   ("relu", ReLU())]))]
    c = widths[0]
    for s, width in enumerate(widths, start=1):
        blocks = []
        for b in range(1, blocks_per_stage + 1):
            stride = 2 if (s > 1 and b == 1) else 1
            blocks.append((f"block{b}", block(c, width, stride)))
            c = width
        layers.append((f"stage{s}", Sequential(blocks)))
    layers.append(("pool", GlobalAvgPool()))
    W = _init.he_normal(c, num_classes, rng)
    layers.append(("head", Dense(to_device(W, be, dt), to_device(np.zeros(num_classes), be, dt))))
    cfg = dict(arch="resnet", in_channels=in_channels, num_classes=num_classes, widths=list(widths),
               blocks_per_stage=blocks_per_stage, image_size=image_size, seed=seed, dtype=str(dt),
               backend=be.name, bn_momentum=bn_momentum, bn_eps=bn_eps)
    model = ImageModel(layers, input_shape=(in_channels, image_size, image_size), d_out=num_classes,
                       dtype=dt, backend=be, config=cfg)
    return model.train()
