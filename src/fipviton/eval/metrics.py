"""Standard image-set metrics that need third-party weights: LPIPS (AlexNet, SqueezeNet), FID and KID.

None of these weights can be downloaded here, and none ship with fipviton. They are computed only when the
user passes the standard files on local disk; otherwise the evaluation reports them as not computed (never
a substitute number under these names). The files, and where they come from:

LPIPS (the `lpips` package, v0.1; Zhang et al. 2018): the learned linear heads plus an ImageNet backbone.

- `--lpips-alex alex.pth`: https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth
  (also inside the `lpips` wheel: `lpips/weights/v0.1/alex.pth`); keys `lin0.model.1.weight` ..
  `lin4.model.1.weight`, shapes (1, C, 1, 1) with C = 64, 192, 384, 256, 256.
- `--alexnet alexnet-owt-7be5be79.pth`: torchvision's ImageNet AlexNet,
  https://download.pytorch.org/models/alexnet-owt-7be5be79.pth (only its `features.*` tensors are used).
- `--lpips-squeeze squeeze.pth`:
  https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/squeeze.pth; keys
  `lin0.model.1.weight` .. `lin6.model.1.weight`, C = 64, 128, 256, 384, 384, 512, 512.
- `--squeezenet squeezenet1_1-b8a52dc0.pth`: torchvision's SqueezeNet 1.1,
  https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth (`features.*` tensors).

FID / KID (clean-fid conventions; Parmar et al. 2022):

- `--inception inception-2015-12-05.pt`: the TorchScript port of the TensorFlow FID Inception network,
  https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt (what
  clean-fid downloads). Its `layers` sub-module maps a (B, 3, 299, 299) image scaled to [-1, 1] to the
  2048-d pool features.

We have no torchvision (it does not work with our torch), so the AlexNet and SqueezeNet 1.1 feature
extractors are rebuilt here as modules whose state-dict keys and shapes are torchvision's (`features.0.weight`,
`features.3.squeeze.weight`, ...), and torchvision's files load into them as they are. The `.pth` files are
pickles: they are read with `torch.load(weights_only=True)`, which only rebuilds tensors and containers.
The Inception file is a TorchScript archive (`torch.jit.load`): TorchScript code, not arbitrary Python.

Definitions:

- LPIPS(a, b), images in [-1, 1]: each image goes through the scaling layer ((x - shift) / scale with the
  lpips constants), the backbone's ReLU outputs at the LPIPS taps are unit-normalised over channels per
  pixel, their squared difference is weighted per channel by the linear head and summed over channels,
  averaged over pixels; the taps' values are added. 0 for identical images; lower is better.
- Inception features (clean-fid "clean" mode): the uint8 RGB image, each channel resized as float32 to
  299x299 by PIL's bicubic filter, clipped to [0, 255], scaled by (x - 128) / 128, through `layers`: (2048,).
- FID: |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)) over the feature means and covariances
  (unbiased, float64); the trace of the matrix square root comes from a symmetric eigen-decomposition
  (tr((S_a S_b)^(1/2)) = sum of the square roots of the eigenvalues of S_a^(1/2) S_b S_a^(1/2)), no scipy.
- KID: the unbiased estimate of the squared MMD with the polynomial kernel k(x, y) = (x.y / d + 1)^3,
  d = 2048, averaged over random subsets of m = min(n_a, n_b, 1000) features from each set (100 subsets);
  mean and standard deviation over the subsets. Reports multiply both by 1000.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fipviton.errors import WeightsError

# The lpips package's ScalingLayer: inputs in [-1, 1] are brought to ImageNet statistics by (x - shift) / scale.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
INCEPTION_SIZE = 299
INCEPTION_DIM = 2048

LPIPS_NETS = ("alex", "squeeze")
# Channels of each LPIPS tap (the heads' input widths).
LPIPS_CHANNELS = {"alex": (64, 192, 384, 256, 256), "squeeze": (64, 128, 256, 384, 384, 512, 512)}


class AlexNetFeatures(nn.Module):
    """torchvision's AlexNet `features` (same indices and shapes), cut at the five LPIPS taps.

    forward(x): x (B, 3, H, W) already scaled to ImageNet statistics -> list of 5 ReLU outputs
    (B, 64, ~H/4, ~W/4), (B, 192, ~H/8, ~W/8), (B, 384, ~H/16, ~W/16), (B, 256, ...), (B, 256, ...).
    """

    # LPIPS taps: after these layer indices (the ReLUs of the five convolutions).
    TAPS = (1, 4, 7, 9, 11)

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return _tapped(self.features, x, self.TAPS)


class Fire(nn.Module):
    """SqueezeNet's Fire block (torchvision's attribute names): 1x1 squeeze, then 1x1 and 3x3 expands concatenated.

    forward(x): (B, inplanes, H, W) -> (B, expand1x1 + expand3x3, H, W).
    """

    def __init__(self, inplanes: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze, kernel_size=1)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, kernel_size=1)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.expand1x1(x)), F.relu(self.expand3x3(x))], dim=1)


class SqueezeNetFeatures(nn.Module):
    """torchvision's SqueezeNet 1.1 `features` (same indices and shapes), cut at the seven LPIPS taps.

    forward(x): x (B, 3, H, W) already scaled to ImageNet statistics -> list of 7 feature maps with
    64, 128, 256, 384, 384, 512, 512 channels (strides 2, 4, 8, 16, 16, 16, 16).
    """

    TAPS = (1, 4, 7, 9, 10, 11, 12)

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=3, stride=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(64, 16, 64, 64),
            Fire(128, 16, 64, 64),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(128, 32, 128, 128),
            Fire(256, 32, 128, 128),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(256, 48, 192, 192),
            Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256),
            Fire(512, 64, 256, 256),
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return _tapped(self.features, x, self.TAPS)


def _tapped(layers: nn.Sequential, x: torch.Tensor, taps: Sequence[int]) -> list[torch.Tensor]:
    """Run `layers` up to the last tap, keeping the outputs of the layers whose indices are in `taps`."""
    outputs = []
    for index, layer in enumerate(layers):
        x = layer(x)
        if index in taps:
            outputs.append(x)
        if index == taps[-1]:
            break
    return outputs


def load_weight_file(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """The tensors of a `.pth` state dict (restricted unpickler), as float32 CPU tensors.

    Raises `WeightsError` naming `what` (e.g. "--alexnet") when the file is missing, unreadable or not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what} {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a broken or foreign file
        raise WeightsError(f"{what} {path}: not a PyTorch weight file ({exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{what} {path}: not a state dict of tensors")
    return {str(key): value.float() for key, value in state.items()}


def _load_backbone(module: nn.Module, state: dict[str, torch.Tensor], what: str, path: Path) -> None:
    """Load torchvision's `features.*` tensors of `state` into `module`, checking every key and shape."""
    own = module.state_dict()
    features = {key: value for key, value in state.items() if key.startswith("features.")}
    missing = sorted(set(own) - set(features))
    unexpected = sorted(set(features) - set(own))
    if missing or unexpected:
        detail = f"lacks {missing[:3]}" if missing else f"has unexpected {unexpected[:3]}"
        raise WeightsError(f"{what} {path}: not the expected torchvision network ({detail})")
    for key, value in features.items():
        if value.shape != own[key].shape:
            raise WeightsError(f"{what} {path}: {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}")
    module.load_state_dict(features)


def _unit(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Each pixel's feature vector divided by its length (the lpips normalisation, same epsilon)."""
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """The standard LPIPS distance (lpips v0.1, `net="alex"` or `net="squeeze"`), with frozen weights.

    forward(a, b): images (B, 3, H, W) in [-1, 1] -> (B,) distances (0 for identical images).
    `features(x)` and `distance(fa, fb)` split the work so that a target's features can be reused.
    Build it with `from_files`; a bare constructor gives random backbone weights and unit heads (tests only).
    """

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in LPIPS_NETS:
            raise ValueError(f"unknown LPIPS network {net!r}; expected one of {LPIPS_NETS}")
        self.net_name = net
        self.net: nn.Module = AlexNetFeatures() if net == "alex" else SqueezeNetFeatures()
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).reshape(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).reshape(1, 3, 1, 1))
        self.heads = nn.ParameterList(
            [nn.Parameter(torch.ones(1, c, 1, 1), requires_grad=False) for c in LPIPS_CHANNELS[net]]
        )
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_files(cls, net: str, heads: str | Path, backbone: str | Path) -> LPIPS:
        """LPIPS with the lpips heads file (`alex.pth` / `squeeze.pth`) and torchvision's backbone file.

        Raises `WeightsError` for a missing file, a file that is not a state dict, or wrong keys or shapes.
        """
        flags = {"alex": ("--lpips-alex", "--alexnet"), "squeeze": ("--lpips-squeeze", "--squeezenet")}[net]
        model = cls(net)
        _load_backbone(model.net, load_weight_file(backbone, flags[1]), flags[1], Path(backbone))
        state = load_weight_file(heads, flags[0])
        for k, channels in enumerate(LPIPS_CHANNELS[net]):
            key = f"lin{k}.model.1.weight"
            if key not in state:
                raise WeightsError(f"{flags[0]} {heads}: lacks {key} (not the lpips {net}.pth file)")
            if tuple(state[key].shape) != (1, channels, 1, 1):
                raise WeightsError(
                    f"{flags[0]} {heads}: {key} has shape {tuple(state[key].shape)}, expected (1, {channels}, 1, 1)"
                )
            model.heads[k].data.copy_(state[key])
        return model

    def train(self, mode: bool = True) -> LPIPS:
        # A fixed metric: always in eval mode.
        return super().train(False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised tap features of images (B, 3, H, W) in [-1, 1]."""
        return [_unit(f) for f in self.net((x.float() - self.shift) / self.scale)]

    def distance(self, features_a: list[torch.Tensor], features_b: list[torch.Tensor]) -> torch.Tensor:
        """(B,) LPIPS from two lists of `features` outputs."""
        total = torch.zeros(features_a[0].shape[0], device=features_a[0].device)
        for head, a, b in zip(self.heads, features_a, features_b, strict=True):
            total = total + ((a - b).pow(2) * head).sum(dim=1).mean(dim=(1, 2))
        return total

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.distance(self.features(a), self.features(b))


def clean_resize(image: np.ndarray, size: int = INCEPTION_SIZE) -> np.ndarray:
    """clean-fid's "clean" resize: (H, W, 3) uint8 RGB -> (size, size, 3) float32 in [0, 255].

    Each channel is resized as a float32 image with PIL's bicubic filter (no quantisation to uint8 between
    the resize and the network), then clipped to [0, 255].
    """
    from PIL import Image

    channels = []
    for c in range(3):
        plane = Image.fromarray(np.ascontiguousarray(image[:, :, c]).astype(np.float32), mode="F")
        channels.append(np.asarray(plane.resize((size, size), resample=Image.BICUBIC)))
    return np.stack(channels, axis=2).clip(0, 255).astype(np.float32)


class InceptionFeatures:
    """The FID Inception network (clean-fid's TorchScript file): uint8 images -> (B, 2048) pool features.

    Build it with `from_file`. `__call__(images)`: a sequence of (H, W, 3) uint8 RGB images (any size) ->
    (B, 2048) float64 numpy features, following clean-fid's "clean" mode (see the module docstring).
    """

    def __init__(self, layers: torch.nn.Module, device: str | torch.device = "cpu") -> None:
        self.layers = layers
        self.device = torch.device(device)

    @classmethod
    def from_file(cls, path: str | Path, device: str | torch.device = "cpu") -> InceptionFeatures:
        """Load `inception-2015-12-05.pt` and check that it gives 2048 features for a 299x299 image.

        Raises `WeightsError` for a missing file, a file that is not that TorchScript archive, or other outputs.
        """
        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"--inception {path}: no such file")
        try:
            with warnings.catch_warnings():
                # clean-fid's file is TorchScript, which only torch.jit reads; its deprecation notice is noise here.
                warnings.simplefilter("ignore", DeprecationWarning)
                base = torch.jit.load(str(path), map_location=device).eval()
        except Exception as exc:  # not a TorchScript archive
            raise WeightsError(f"--inception {path}: not a TorchScript archive ({exc})") from exc
        layers = getattr(base, "layers", None)
        if layers is None:
            raise WeightsError(f"--inception {path}: has no `layers` module (not clean-fid's inception-2015-12-05.pt)")
        try:
            with torch.no_grad():
                probe = layers(torch.zeros(1, 3, INCEPTION_SIZE, INCEPTION_SIZE, device=device))
        except Exception as exc:  # a network that does not take a 299x299 RGB batch
            raise WeightsError(f"--inception {path}: does not run on a 299x299 image ({exc})") from exc
        if not isinstance(probe, torch.Tensor) or probe.numel() != INCEPTION_DIM:
            shape = tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe).__name__
            raise WeightsError(f"--inception {path}: gives {shape} for one image, expected {INCEPTION_DIM} features")
        return cls(layers, device)

    @torch.no_grad()
    def forward_resized(self, batch: torch.Tensor) -> np.ndarray:
        """(B, 3, 299, 299) float in [0, 255] -> (B, 2048) float64."""
        out = self.layers((batch.to(self.device).float() - 128.0) / 128.0)
        if out.numel() != batch.shape[0] * INCEPTION_DIM:
            raise WeightsError(f"the Inception network gives {tuple(out.shape)}, expected {INCEPTION_DIM} per image")
        return out.reshape(batch.shape[0], INCEPTION_DIM).double().cpu().numpy()

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        batch = np.stack([clean_resize(image) for image in images]).transpose(0, 3, 1, 2)
        return self.forward_resized(torch.from_numpy(np.ascontiguousarray(batch)))


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and unbiased covariance (d, d), float64, of features (n, d) with n >= 2."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative rounding-error eigenvalues -> 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(values.clip(min=0))) @ vectors.T


def trace_sqrt_product(sigma_a: np.ndarray, sigma_b: np.ndarray) -> float:
    """tr((S_a S_b)^(1/2)) for covariance matrices (d, d).

    S_a S_b is similar to the symmetric PSD matrix S_a^(1/2) S_b S_a^(1/2), so both have the same eigenvalues,
    all >= 0: the trace of the square root is the sum of their square roots.
    """
    root = _sqrt_psd(np.asarray(sigma_a, dtype=np.float64))
    inner = root @ np.asarray(sigma_b, dtype=np.float64) @ root
    values = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(values.clip(min=0)).sum())


def frechet_distance(mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray, sigma_b: np.ndarray) -> float:
    """Fréchet distance between the Gaussians N(mu_a, S_a) and N(mu_b, S_b) (means (d,), covariances (d, d))."""
    diff = np.asarray(mu_a, dtype=np.float64) - np.asarray(mu_b, dtype=np.float64)
    value = diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * trace_sqrt_product(sigma_a, sigma_b)
    return float(max(value, 0.0))  # tiny negative values are rounding error


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets (n_a, d) and (n_b, d), each with at least 2 rows (lower is better)."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / d + 1)^3 for all row pairs: (n, d), (m, d) -> (n, m)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kid(
    features_a: np.ndarray,
    features_b: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (mean, std over subsets) between feature sets (n_a, d) and (n_b, d); not scaled by 1000.

    Each subset draws m = min(n_a, n_b, subset_size) rows from each set without replacement and computes the
    unbiased squared MMD: the off-diagonal means of k over a-a and b-b pairs, minus twice the mean over a-b
    pairs. Needs m >= 2. Lower is better; it can be slightly negative for sets from the same distribution.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    m = min(a.shape[0], b.shape[0], subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 feature vectors per set, got {a.shape[0]} and {b.shape[0]}")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = a[rng.choice(a.shape[0], m, replace=False)]
        y = b[rng.choice(b.shape[0], m, replace=False)]
        kxx = _polynomial_kernel(x, x)
        kyy = _polynomial_kernel(y, y)
        kxy = _polynomial_kernel(x, y)
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values.append(within - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))
