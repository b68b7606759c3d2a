"""A pretrained VGG16 feature network and the perceptual (VGG) loss built on it, with no torchvision.

The only pretrained perceptual network available offline ships inside the PyPI package `stlpips-pytorch`
(0.0.2, BSD-2-Clause, no declared dependencies): `stlpips_pytorch/weights/vST0.0/vgg_shift_tolerant.pth` is
a complete shift-tolerant LPIPS model, i.e. all 13 VGG16 convolution layers (`net.sliceK.N.weight/bias`),
the fixed blur filters of its anti-aliased downsampling (`net.sliceK.N.filt`), the five LPIPS linear heads
(`linK.model.1.weight`) and a scaling layer. The package itself imports torchvision, so we never import
it: we locate the weight file through the installed distribution's metadata and load the tensors into our
own module, which rebuilds the shift-tolerant VGG16 layer by layer (same indices, so the keys match).

The shift-tolerant VGG16 differs from torchvision's in its pooling: each `MaxPool2d(2, 2)` is a
`MaxPool2d(2, stride=1)` followed by a binomial [1, 2, 1] blur with reflect padding 2 and stride 2. Release
vST0.0 was trained on inputs in [-1, 1] without the scaling layer (the package's own note), so the features
here take images in [-1, 1] as they are.

The `.pth` file is a pickle: it is read with `torch.load(weights_only=True)`, PyTorch's restricted unpickler
that only rebuilds tensors and plain containers.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fipviton.errors import WeightsError

STLPIPS_PACKAGE = "stlpips_pytorch"
STLPIPS_FILES = {
    "vgg": "weights/vST0.0/vgg_shift_tolerant.pth",
    "alex": "weights/vST0.0/alex_shift_tolerant.pth",
}
# Output channels of the VGG16 convolutions, 'M' = (shift-tolerant) pooling; torchvision's config "D".
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
# Layer indices where each slice ends (exclusive): relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
_SLICE_ENDS = (4, 10, 18, 26, 34)
VGG_LAYER_NAMES = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
VGG_LAYER_CHANNELS = (64, 128, 256, 512, 512)
VGG_WEIGHTS_ENV = "FIPVITON_STLPIPS_VGG"  # a VGG weight file to use instead of the installed package's


def stlpips_weight_path(net: str = "vgg") -> Path:
    """Path of a weight file inside the installed `stlpips-pytorch` package, found without importing it; for the
    VGG file, `$FIPVITON_STLPIPS_VGG` (e.g. a `save_stlpips_vgg_subset` file carried to a machine without the
    package) comes first.

    Raises `WeightsError` when the package or the file is missing.
    """
    if net not in STLPIPS_FILES:
        raise ValueError(f"unknown ST-LPIPS network {net!r}; expected one of {sorted(STLPIPS_FILES)}")
    override = os.environ.get(VGG_WEIGHTS_ENV) if net == "vgg" else None
    if override:
        if not Path(override).is_file():
            raise WeightsError(f"${VGG_WEIGHTS_ENV}: no such file {override}")
        return Path(override)
    spec = importlib.util.find_spec(STLPIPS_PACKAGE)  # a top-level package: found, not executed
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "the pretrained VGG16 of the perceptual loss comes from the package stlpips-pytorch, which is not "
            "installed (pip install stlpips-pytorch==0.0.2)"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / STLPIPS_FILES[net]
        if path.is_file():
            return path
    raise WeightsError(f"stlpips-pytorch is installed but has no {STLPIPS_FILES[net]}")


def load_stlpips_state_dict(net: str = "vgg", path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Every tensor of an ST-LPIPS weight file (`net.*`, `lin*.*`, `scaling_layer.*`), as float32 CPU tensors."""
    path = Path(path) if path is not None else stlpips_weight_path(net)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a broken or foreign file
        raise WeightsError(f"cannot read ST-LPIPS weights {path}: {exc}") from exc
    return {key: value.float() for key, value in state.items()}


def save_stlpips_vgg_subset(path: str | Path, num_layers: int, dtype: torch.dtype = torch.float16) -> int:
    """Write the tensors of the first `num_layers` VGG slices and LPIPS heads of the installed VGG file to `path`
    (a `.pth` that `load_stlpips_state_dict` reads, e.g. through `$FIPVITON_STLPIPS_VGG`), in `dtype`: what a
    perceptual loss of that many layers needs, on a machine without stlpips-pytorch (3 layers in float16: 3.4 MB
    instead of 58 MB). Returns the bytes written."""
    if not 1 <= num_layers <= 5:
        raise ValueError("num_layers must be in 1..5")
    state = load_stlpips_state_dict("vgg")
    prefixes = tuple(f"net.slice{k + 1}." for k in range(num_layers)) + tuple(f"lin{k}." for k in range(num_layers))
    kept = {key: value.to(dtype) for key, value in state.items() if key.startswith(prefixes)}
    torch.save(kept, Path(path))
    return Path(path).stat().st_size


class BlurDownsample(nn.Module):
    """Anti-aliased stride-2 downsampling: reflect padding 2, depthwise 3x3 binomial blur, stride 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("filt", (kernel / kernel.sum())[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt.to(x.dtype), stride=2, groups=x.shape[1])


class VGG16Features(nn.Module):
    """The shift-tolerant VGG16 of ST-LPIPS, cut into the five LPIPS slices.

    forward(x): x (B, 3, H, W) float in [-1, 1] -> list of the first `num_layers` feature maps
    (relu1_2 (B, 64, H, W), relu2_2 (B, 128, ~H/2, ~W/2), relu3_3, relu4_3, relu5_3). The parameters are
    frozen (requires_grad False); gradients still flow to the input.
    """

    def __init__(self, num_layers: int = 5) -> None:
        super().__init__()
        if not 1 <= num_layers <= 5:
            raise ValueError("num_layers must be in 1..5")
        self.num_layers = num_layers
        layers: list[tuple[int, nn.Module]] = []
        channels = 3
        index = 0
        for item in _VGG16:
            if item == "M":
                layers += [(index, nn.MaxPool2d(kernel_size=2, stride=1)), (index + 1, BlurDownsample(channels))]
                index += 2
            else:
                layers += [(index, nn.Conv2d(channels, int(item), 3, padding=1)), (index + 1, nn.ReLU())]
                channels = int(item)
                index += 2
        slices = []
        start = 0
        for end in _SLICE_ENDS[:num_layers]:
            block = nn.Sequential()
            for layer_index, layer in layers:
                if start <= layer_index < end:
                    block.add_module(str(layer_index), layer)
            slices.append(block)
            start = end
        self.slices = nn.ModuleList(slices)
        self.requires_grad_(False)

    @classmethod
    def from_stlpips(cls, num_layers: int = 5, path: str | Path | None = None) -> VGG16Features:
        """The network with the pretrained ST-LPIPS VGG16 weights (from the installed stlpips-pytorch)."""
        model = cls(num_layers)
        state = load_stlpips_state_dict("vgg", path)
        own = model.state_dict()
        mapped: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            if not key.startswith("net.slice"):
                continue
            slice_number, rest = key[len("net.slice") :].split(".", 1)
            target = f"slices.{int(slice_number) - 1}.{rest}"
            if int(slice_number) <= num_layers:
                mapped[target] = value
        missing = sorted(set(own) - set(mapped))
        if missing:
            raise WeightsError(f"ST-LPIPS VGG16 weights lack {missing[:4]}")
        for key, value in mapped.items():
            if own[key].shape != value.shape:
                raise WeightsError(f"ST-LPIPS VGG16 tensor {key} has shape {tuple(value.shape)}")
        model.load_state_dict(mapped)
        return model.eval()

    def train(self, mode: bool = True) -> VGG16Features:
        # A frozen feature extractor: it has no dropout/batch-norm, but keep it in eval mode regardless.
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in self.slices:
            x = block(x)
            features.append(x)
        return features


def _unit(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Normalise each pixel's feature vector to unit length (LPIPS does this before comparing)."""
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class STLPIPS(nn.Module):
    """The shift-tolerant LPIPS distance (VGG16 variant), built from the `stlpips-pytorch` weight file.

    forward(a, b): images (B, 3, H, W) in [-1, 1] -> (B,) distances: for each VGG slice, the per-pixel
    feature vectors are normalised to unit length, their squared difference is weighted per channel by the
    learned linear head and summed over channels, averaged over pixels; the slices' values are added.
    With `num_layers=5` this is the full ST-LPIPS(VGG) of the package (release vST0.0); fewer layers give a
    cheaper truncated distance for use as a training loss.
    """

    def __init__(self, num_layers: int = 5, path: str | Path | None = None) -> None:
        super().__init__()
        state = load_stlpips_state_dict("vgg", path)
        self.features = VGG16Features.from_stlpips(num_layers, path)
        heads = []
        for k in range(num_layers):
            key = f"lin{k}.model.1.weight"
            if key not in state:
                raise WeightsError(f"ST-LPIPS VGG16 weights lack {key}")
            heads.append(state[key].reshape(1, -1, 1, 1))
        for k, head in enumerate(heads):
            self.register_buffer(f"head{k}", head)
        self.num_layers = num_layers

    def train(self, mode: bool = True) -> STLPIPS:
        return super().train(False)

    def distance(self, features_a: list[torch.Tensor], features_b: list[torch.Tensor]) -> torch.Tensor:
        total = None
        for k, (a, b) in enumerate(zip(features_a, features_b, strict=False)):
            diff = (_unit(a.float()) - _unit(b.float())).pow(2)
            value = (diff * getattr(self, f"head{k}")).sum(dim=1).mean(dim=(1, 2))
            total = value if total is None else total + value
        return total

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.distance(self.features(a), self.features(b))


class PerceptualLoss(nn.Module):
    """Perceptual loss: the (truncated) ST-LPIPS distance between prediction and target, averaged over the batch.

    forward(prediction, target): both (B, 3, H, W) in [-1, 1] -> scalar. The raw VGG activations of this
    network are tiny (mean |x| ~ 0.01), so a plain L1 on them would be a negligible loss; the LPIPS
    normalisation and learned heads give it a useful scale (about 0.1-0.5 for a misaligned garment).
    `num_layers` < 5 skips the deep, costly layers. The target's features are computed without gradient.
    """

    def __init__(self, num_layers: int = 5, metric: STLPIPS | None = None) -> None:
        super().__init__()
        self.metric = metric if metric is not None else STLPIPS(num_layers)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        predicted = self.metric.features(prediction)
        with torch.no_grad():
            wanted = self.metric.features(target)
        return self.metric.distance(predicted, wanted).mean()
