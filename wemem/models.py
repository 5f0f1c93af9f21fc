"""The four architectures of the paper, built the way the official code builds them.

Spec §6.1 (CONFIRMED from the official ``get_model`` and its CIFAR model zoo):

- ``resnet18``: the CIFAR variant of torchvision's ResNet18 (3×3 stride-1 stem, the 3×3/2 max-pool
  kept), BasicBlock [2, 2, 2, 2], widths 64–512, global average pool, Linear to C.
- ``vgg16bn``: VGG16 config D with BatchNorm, AdaptiveAvgPool to 1×1, classifier
  512→4096→4096→C with ReLU and Dropout(0.5).
- ``densenet121``: DenseNet-BC, growth 32, blocks (6, 12, 24, 16), 64 initial features, bn_size 4,
  no dropout, 3×3 stride-1 stem plus the 3×3/2 max-pool.
- ``fc`` (the official ``columnfc``): tabular MLP in→256→128→C, ReLU and Dropout(0.1) after each
  hidden layer; the layers are named ``fc1``, ``fc2``, ``fc3`` because pruning targets only
  ``fc1`` and ``fc2`` (spec §4.2).

Every model is re-initialized with :func:`xavier_init` after construction (spec §4.1). Two
deviations that change no result at 32×32 inputs: the pools of VGG and DenseNet use
``ceil_mode=True`` so that 8×8 inputs (the digits data) keep a 1×1 map instead of shrinking to
nothing, and every ReLU is out-of-place because Opacus (DP-SGD) rejects in-place ReLU inside
residual blocks. ``width`` scales every channel and hidden count, so tests and the CPU profile can
use tiny versions of the same shapes.

``norm="group"`` (this project's option, for DP-SGD) builds the CNNs with every BatchNorm replaced
by GroupNorm with gcd(32, C) groups (:func:`to_group_norm`, the replacement Opacus'
``ModuleValidator.fix`` makes): per-example gradients do not exist through BatchNorm, which mixes
the samples of a batch. The paper ran DP-SGD on its BatchNorm models without saying how (its
pyvacy code put them in eval mode after epoch 0, spec §9.11); GroupNorm is this project's
deviation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from wemem.errors import ParamsError
from wemem.names import ARCH_NAMES, NORMS
from wemem.training.dropout import Dropout

ARCHITECTURES: tuple[str, ...] = ARCH_NAMES
#: normalization layers of the CNNs: the paper's BatchNorm, or GroupNorm for DP-SGD

_VGG16_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip
_RESNET18_BLOCKS: tuple[int, ...] = (2, 2, 2, 2)
_DENSENET121_BLOCKS: tuple[int, ...] = (6, 12, 24, 16)


def _scaled(channels: int, width: float) -> int:
    """Channel or hidden count ``channels`` scaled by ``width``, never below one."""
    return max(1, int(round(channels * width)))


def _stem_pool(stem_maxpool: bool) -> nn.Module:
    return nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if stem_maxpool else nn.Identity()


# --- ResNet18 -----------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity (or 1×1 conv-BN) shortcut (He et al., 2016)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """CIFAR ResNet18. Input ``(n, in_channels, h, w)``, output logits ``(n, num_classes)``."""

    def __init__(
        self, *, num_classes: int, in_channels: int, width: float, stem_maxpool: bool
    ) -> None:
        super().__init__()
        planes = [_scaled(c, width) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_channels, planes[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU(inplace=False)
        self.maxpool = _stem_pool(stem_maxpool)
        in_planes = planes[0]
        stages = []
        for index, (out_planes, blocks) in enumerate(zip(planes, _RESNET18_BLOCKS, strict=True)):
            stride = 1 if index == 0 else 2
            layers = [BasicBlock(in_planes, out_planes, stride)]
            layers += [BasicBlock(out_planes, out_planes) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
            in_planes = out_planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# --- VGG16-BN -----------------------------------------------------------------------------------


class VGG16BN(nn.Module):
    """VGG16 (config D) with BatchNorm. Input ``(n, in_channels, h, w)``, logits ``(n, C)``."""

    def __init__(self, *, num_classes: int, in_channels: int, width: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in _VGG16_CONFIG:
            if item == "M":
                # ceil_mode keeps a 1×1 map at 1×1 (8×8 inputs); identical on even sizes (32×32).
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
            else:
                out = _scaled(int(item), width)
                layers += [
                    nn.Conv2d(channels, out, 3, padding=1),
                    nn.BatchNorm2d(out),
                    nn.ReLU(inplace=False),
                ]
                channels = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        hidden = _scaled(4096, width)
        self.classifier = nn.Sequential(
            nn.Linear(channels, hidden),
            nn.ReLU(inplace=False),
            Dropout(0.5),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=False),
            Dropout(0.5),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


# --- DenseNet121 --------------------------------------------------------------------------------


class DenseLayer(nn.Module):
    """BN-ReLU-conv1×1 (bn_size·growth) then BN-ReLU-conv3×3 (growth); output is the new maps."""

    def __init__(self, in_features: int, growth: int, bn_size: int) -> None:
        super().__init__()
        inner = bn_size * growth
        self.norm1 = nn.BatchNorm2d(in_features)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(in_features, inner, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(inner)
        self.relu2 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(inner, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(out)))


class DenseBlock(nn.Module):
    """``num_layers`` dense layers; each sees the concatenation of all earlier feature maps."""

    def __init__(self, num_layers: int, in_features: int, growth: int, bn_size: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DenseLayer(in_features + i * growth, growth, bn_size) for i in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-conv1×1 to ``out_features`` channels, then 2×2 average pool."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(
            nn.BatchNorm2d(in_features),
            nn.ReLU(inplace=False),
            nn.Conv2d(in_features, out_features, 1, bias=False),
            # ceil_mode keeps a 1×1 map at 1×1 (8×8 inputs); identical on even sizes (32×32).
            nn.AvgPool2d(kernel_size=2, stride=2, ceil_mode=True),
        )


class DenseNet121(nn.Module):
    """CIFAR DenseNet-BC-121 (Huang et al., 2017). Input ``(n, in_channels, h, w)``, logits."""

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        width: float,
        stem_maxpool: bool,
        bn_size: int = 4,
    ) -> None:
        super().__init__()
        growth = _scaled(32, width)
        channels = _scaled(64, width)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, channels, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=False),
            _stem_pool(stem_maxpool),
        ]
        for index, num_layers in enumerate(_DENSENET121_BLOCKS):
            layers.append(DenseBlock(num_layers, channels, growth, bn_size))
            channels += num_layers * growth
            if index < len(_DENSENET121_BLOCKS) - 1:
                layers.append(Transition(channels, channels // 2))
                channels //= 2
        layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=False), nn.AdaptiveAvgPool2d(1)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


# --- FC (tabular) -------------------------------------------------------------------------------


class ColumnFC(nn.Module):
    """Tabular MLP. Input ``(n, in_features)`` float, output logits ``(n, num_classes)``."""

    def __init__(self, *, in_features: int, num_classes: int, width: float) -> None:
        super().__init__()
        hidden1, hidden2 = _scaled(256, width), _scaled(128, width)
        self.fc1 = nn.Linear(in_features, hidden1)
        self.fc2 = nn.Linear(hidden1, hidden2)
        self.fc3 = nn.Linear(hidden2, num_classes)
        self.relu = nn.ReLU(inplace=False)
        self.dropout = Dropout(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.relu(self.fc1(torch.flatten(x, 1))))
        x = self.dropout(self.relu(self.fc2(x)))
        return self.fc3(x)


# --- public API ---------------------------------------------------------------------------------


def _check_arch(arch: str) -> None:
    if arch not in ARCHITECTURES:
        raise ParamsError(f"arch: got {arch!r}; allowed values are {', '.join(ARCHITECTURES)}")


def _check_positive_int(field: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ParamsError(f"{field}: got {value!r}; allowed values are integers >= {minimum}")


def build_model(
    arch: str,
    *,
    num_classes: int,
    in_channels: int = 3,
    in_features: int | None = None,
    width: float = 1.0,
    stem_maxpool: bool = True,
    norm: str = "batch",
    seed: int | None = None,
) -> nn.Module:
    """Build ``arch`` (one of :data:`ARCHITECTURES`) and Xavier re-initialize it (spec §4.1, §6.1).

    ``in_channels`` applies to the image architectures (1 for digits), ``in_features`` to ``fc``
    only, where it is required; ``stem_maxpool`` applies to ``resnet18`` and ``densenet121``.
    ``width`` multiplies every channel and hidden count (``max(1, round(c · width))``). ``norm``
    (one of :data:`NORMS`): ``"group"`` replaces every BatchNorm by GroupNorm
    (:func:`to_group_norm`, before initialisation, so the weights equal the BatchNorm model's at
    the same seed); ``fc`` has no normalization layer and ignores it. With
    ``seed`` the weights depend only on the seed (the global RNG state is restored afterwards);
    without it they come from the global torch RNG.
    """
    _check_arch(arch)
    _check_positive_int("num_classes", num_classes, 2)
    _check_positive_int("in_channels", in_channels, 1)
    if (
        isinstance(width, bool)
        or not isinstance(width, (int, float))
        or not (width > 0 and math.isfinite(width))
    ):
        raise ParamsError(f"width: got {width!r}; allowed values are finite numbers > 0")
    if arch == "fc":
        if in_features is None:
            raise ParamsError("in_features: got None; arch 'fc' needs an integer >= 1")
        _check_positive_int("in_features", in_features, 1)
    if norm not in NORMS:
        raise ParamsError(f"norm: got {norm!r}; allowed values are {', '.join(NORMS)}")
    if seed is not None:
        _check_positive_int("seed", seed, 0)

    def construct() -> nn.Module:
        if arch == "resnet18":
            model: nn.Module = ResNet18(
                num_classes=num_classes,
                in_channels=in_channels,
                width=width,
                stem_maxpool=stem_maxpool,
            )
        elif arch == "vgg16bn":
            model = VGG16BN(num_classes=num_classes, in_channels=in_channels, width=width)
        elif arch == "densenet121":
            model = DenseNet121(
                num_classes=num_classes,
                in_channels=in_channels,
                width=width,
                stem_maxpool=stem_maxpool,
            )
        else:
            model = ColumnFC(in_features=int(in_features), num_classes=num_classes, width=width)
        return xavier_init(to_group_norm(model) if norm == "group" else model)

    if seed is None:
        return construct()
    # fork_rng restores the caller's RNG state, so seeding here has no effect outside.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return construct()


def to_group_norm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm of ``module`` in place by ``GroupNorm(gcd(32, C), C)``; returns it.

    32 groups (Wu & He, 2018) whenever C is a multiple of 32 (every layer at ``width`` 1), fewer at
    small widths so the groups always divide C; the same layer as Opacus' ``ModuleValidator.fix``.
    GroupNorm normalizes each sample on its own, so per-example gradients exist (DP-SGD). Layer
    names are kept (``bn1`` stays ``bn1``); running statistics are gone.
    """
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            c = child.num_features
            setattr(module, name, nn.GroupNorm(math.gcd(32, c), c, affine=child.affine))
        else:
            to_group_norm(child)
    return module


def xavier_init(model: nn.Module) -> nn.Module:
    """Re-initialize ``model`` in place as the official ``weight_init`` does (spec §4.1).

    Conv*/Linear weights: Xavier-normal (Glorot & Bengio, 2010), biases 0; normalization layers
    (BatchNorm, GroupNorm, LayerNorm, InstanceNorm): weight 1, bias 0. Returns ``model``.
    """
    norm_types = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
                nn.init.xavier_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, norm_types):
                if getattr(module, "weight", None) is not None:
                    nn.init.ones_(module.weight)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters of ``model`` (each shared tensor counted once)."""
    return sum(p.numel() for p in model.parameters())


def norm_key_part(arch: str, norm: str) -> dict[str, str]:
    """``{"norm": norm}`` when the normalization changes the model, else ``{}``.

    Recorded only when it is not BatchNorm (so every entry made before keeps its key) and the
    architecture is not the FC model (it has no normalization layer: one model either way).
    """
    if norm != "batch" and arch != "fc":
        return {"norm": norm}
    return {}
