"""The try-on module: tiny configs only (the real model trains elsewhere; see fipviton.training.tryon).

The warping module's output is not available to these tests, so `_real_items` uses the in-shop garment
itself (and its mask) as a STAND-IN for the warped garment. This is a test fixture only: real training
runs the shipped warping module once over the dataset (`fipviton.tryon.cache`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pytest
import torch

import fipviton
from conftest import require
from fipviton.training.common import latest_checkpoint
from fipviton.tryon import TryOnConfig, TryOnInputs, TryOnModel, noise_condition_image
from fipviton.tryon.dataset import random_backdrop, replace_backdrop, shrink_warped
from fipviton.tryon.inputs import inputs_from_arrays, random_inputs

if TYPE_CHECKING:
    from fipviton.training.tryon import TryOnTrainArgs

SIZE = (64, 48)
ABLATIONS = ("use_agnostic", "use_agnostic_mask", "use_warped", "use_warped_mask", "use_body_parts")


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models gain nothing from a second thread, and on a busy CPU OpenMP spin-waiting costs 10-50x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _random_inputs(batch: int = 2, size: tuple[int, int] = SIZE, seed: int = 0) -> TryOnInputs:
    return random_inputs(size, batch, seed)


def _tiny(**overrides: Any) -> TryOnModel:
    torch.manual_seed(0)
    return TryOnModel(TryOnConfig.from_preset("tiny", **overrides)).eval()


@pytest.fixture(scope="module")
def real_items(data_dir: Path) -> list[dict[str, np.ndarray]]:
    """Eight VITON training pairs at 64x48 as uint8 arrays (garment = stand-in warped garment, see above)."""
    import cv2

    from fipviton.agnostic import build_agnostic
    from fipviton.analysis.body_parts import derive_body_parts
    from fipviton.data import open_dataset
    from fipviton.data.torch_dataset import resize_image, resize_nearest

    root = data_dir / "viton_resize"
    if not root.is_dir():
        pytest.skip(f"{root} not found (set FIPVITON_DATA)")
    reader = open_dataset(root)
    items = []
    for pair in reader.pairs("train")[:8]:
        sample = reader.load("train", pair)
        agnostic = build_agnostic(sample.person, sample.parsing, sample.keypoints, sample.category)
        parts = sample.body_parts
        if parts is None:
            parts = derive_body_parts(sample.parsing, sample.keypoints)
        garment_mask = sample.garment_mask if sample.garment_mask is not None else np.ones(sample.garment.shape[:2])
        stand_in = np.where(garment_mask[..., None] > 0, sample.garment, 255).astype(np.uint8)
        items.append(
            {
                "person": resize_image(sample.person, SIZE),
                "agnostic_mask": resize_nearest(agnostic.mask.astype(np.uint8), SIZE),
                "warped": resize_image(stand_in, SIZE),
                "warped_mask": cv2.resize(
                    garment_mask.astype(np.uint8) * 255, SIZE[::-1], interpolation=cv2.INTER_AREA
                ),
                "body_parts": resize_nearest(parts, SIZE),
                "garment": resize_image(sample.garment, SIZE),
            }
        )
    return items


def test_ssim_term_is_the_evaluation_ssim_inside_the_mask_and_pulls_towards_the_target() -> None:
    from fipviton.losses.ssim import masked_ssim
    from fipviton.tryon.evaluate import image_metrics
    from fipviton.tryon.losses import TryOnLoss

    generator = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, *SIZE, generator=generator) * 2 - 1
    noisy = (target + 0.4 * torch.randn(target.shape, generator=generator)).clamp(-1, 1)
    mask = torch.zeros(2, 1, *SIZE)
    mask[:, :, 10:40, 8:30] = 1
    # The same number as the evaluation's SSIM inside a region (what `eval tryon` reports per region).
    expected = image_metrics(noisy, target, regions={"region": mask.bool()})["region"].mean()
    assert float(masked_ssim(noisy, target, mask)) == pytest.approx(float(expected), abs=1e-5)
    assert float(masked_ssim(target, target, mask)) == pytest.approx(1.0, abs=1e-5)
    # Only the region counts: damage outside it leaves the term unchanged.
    outside = noisy.clone()
    outside[..., :5, :] = -1
    assert float(masked_ssim(outside, target, mask)) == pytest.approx(float(masked_ssim(noisy, target, mask)))

    loss_fn = TryOnLoss(l1_weight=0.0, ssim_weight=1.0)
    assert loss_fn.needs_image
    prediction = noisy.clone().requires_grad_(True)
    loss, parts = loss_fn(prediction, target, prediction, target, mask)
    loss.backward()
    assert parts["ssim"] == pytest.approx(float(expected), abs=1e-5)
    assert float(prediction.grad[..., :3, :].abs().max()) == 0.0  # far outside the region: no gradient
    stepped = (noisy - 0.5 * prediction.grad / prediction.grad.abs().max()).detach()
    assert float(masked_ssim(stepped, target, mask)) > float(masked_ssim(noisy, target, mask))


def test_noise_condition_image_pastes_the_warped_garment() -> None:
    inputs = _random_inputs()
    composite = inputs.noise_condition()
    inside = inputs.warped_mask.expand_as(composite) > 0.5
    assert torch.equal(composite[inside], inputs.warped[inside])
    assert torch.equal(composite[~inside], inputs.agnostic[~inside])
    soft = torch.full_like(inputs.warped_mask, 0.25)
    blended = noise_condition_image(inputs.agnostic, inputs.warped, soft)
    assert torch.allclose(blended, 0.75 * inputs.agnostic + 0.25 * inputs.warped)


def test_shrink_warped_erodes_and_cuts_the_hem() -> None:
    mask = np.zeros((64, 48), np.uint8)
    mask[10:50, 8:40] = 255  # a 40-row garment
    garment = np.random.default_rng(0).integers(0, 200, (64, 48, 3), dtype=np.uint8)
    garment[mask == 0] = 255
    shrunk, shrunk_mask = shrink_warped(garment, mask, erode_px=3, hem_fraction=0.25)
    rows = np.flatnonzero((shrunk_mask > 0).any(1))
    cols = np.flatnonzero((shrunk_mask > 0).any(0))
    assert (rows[0], cols[0], cols[-1]) == (13, 11, 36)  # eroded by 3 px on the top and the sides
    assert rows[-1] == 38  # the eroded garment spans rows 13-46: the lowest quarter (8 rows) is cut off
    kept = shrunk_mask > 0
    assert np.array_equal(shrunk[kept], garment[kept]) and (shrunk[~kept] == 255).all()
    unchanged, unchanged_mask = shrink_warped(garment, mask, erode_px=0, hem_fraction=0.0)
    assert np.array_equal(unchanged, garment) and np.array_equal(unchanged_mask, mask)


def test_refill_warped_swaps_the_white_around_the_garment_only() -> None:
    from fipviton.tryon.dataset import Augmentation, TryOnItems, refill_warped

    mask = np.zeros((64, 48), np.uint8)
    mask[10:50, 8:40] = 255
    mask[10:50, 8] = 128  # a soft edge column
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (64, 48, 3)).astype(np.float32)
    m = mask[..., None] / 255.0
    garment = np.round(colours * m + 255 * (1 - m)).astype(np.uint8)  # composited on white, as the warp does
    garment[20:30, 12:36] = 255  # a white band inside the garment: garment, not background
    fill = np.array([10, 200, 90])
    refilled = refill_warped(garment, mask, fill)
    assert (refilled[mask == 0] == fill).all()
    assert np.array_equal(refilled[mask == 255], garment[mask == 255]) and (refilled[20:30, 12:36] == 255).all()
    expected_edge = np.round(colours[10:50, 8] * (128 / 255) + fill * (1 - 128 / 255))
    assert np.abs(refilled[10:50, 8].astype(float) - expected_edge).max() <= 1

    class One(TryOnItems):
        def __len__(self) -> int:
            return 1

        def record(self, item: int) -> dict:
            parts = np.zeros((64, 48), np.uint8)
            return {"index": 0, "person": garment, "parsing": parts, "agnostic_mask": mask, "warped": garment,
                    "warped_mask": mask, "body_parts": parts, "garment": garment}  # fmt: skip

    filled = One(Augmentation(flip_prob=0.0, fill_prob=1.0)).item(0, np.random.default_rng(1))
    assert len(np.unique(filled["warped"][mask == 0], axis=0)) == 1 and not (filled["warped"][mask == 0] == 255).all()
    assert np.array_equal(filled["warped"][mask == 255], garment[mask == 255])


def test_replace_backdrop_keeps_the_person_and_swaps_the_backdrop() -> None:
    from fipviton.labels import Label

    person = np.full((*SIZE, 3), 245, np.uint8)  # VITON's near-white backdrop
    parsing = np.zeros(SIZE, np.uint8)
    parsing[10:54, 12:36] = Label.UPPER
    person[parsing == Label.UPPER] = (30, 40, 120)
    backdrops = [random_backdrop(*SIZE, np.random.default_rng(seed)) for seed in range(6)]
    assert all(b.shape == (*SIZE, 3) and b.dtype == np.uint8 for b in backdrops)
    assert len({b.tobytes() for b in backdrops}) == 6  # different seeds, different backdrops
    assert np.array_equal(random_backdrop(*SIZE, np.random.default_rng(3)), backdrops[3])  # seeded
    out = replace_backdrop(person, parsing, backdrops[0])
    inner = np.zeros(SIZE, bool)
    inner[11:53, 13:35] = True  # one pixel in from the person's edge, where the blend is softened
    assert np.array_equal(out[inner], person[inner])
    far = cv2.dilate((parsing > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    assert np.array_equal(out[far], backdrops[0][far])


def test_single_step_and_ddim_outputs() -> None:
    model = _tiny()
    inputs = _random_inputs()
    g = torch.Generator().manual_seed(1)
    for result in (
        model.generate(inputs, generator=g),
        model.generate(inputs, steps=3, generator=g),
        model.generate(inputs, steps=3, start="condition", strength=0.6, generator=g),
    ):
        assert result.shape == (2, 3, *SIZE)
        assert result.min() >= -1 and result.max() <= 1
        assert torch.isfinite(result).all()
    _, timesteps = model.diffusion.ddim_scheduler(5, t_start=500)
    assert len(timesteps) == 5 and int(timesteps[0]) <= 500
    _, full = model.diffusion.ddim_scheduler(50)
    assert len(full) == 50 and int(full[0]) == 999


def test_mirrored_inputs_are_the_training_flip() -> None:
    """`TryOnInputs.mirrored` flips every image left-right and swaps the body parts' sides, as the training flip
    (`flip_parts`) does; twice is the identity."""
    from fipviton.bodyparts import BodyPart, flip_parts

    inputs = _random_inputs()
    mirrored = inputs.mirrored()
    for name in ("agnostic", "agnostic_mask", "warped", "warped_mask", "garment", "person"):
        assert torch.equal(getattr(mirrored, name), getattr(inputs, name).flip(-1)), name
    assert mirrored.body_parts.dtype == inputs.body_parts.dtype
    assert np.array_equal(mirrored.body_parts.numpy(), flip_parts(inputs.body_parts.numpy().astype(np.uint8)))
    parts = torch.zeros(1, *SIZE, dtype=torch.long)
    parts[0, 10, 3] = BodyPart.LEFT_HAND
    parts[0, 20, 5] = BodyPart.TORSO
    flipped = replace(inputs, body_parts=parts.expand(2, -1, -1)).mirrored().body_parts[0]
    assert flipped[10, SIZE[1] - 4] == BodyPart.RIGHT_HAND and flipped[20, SIZE[1] - 6] == BodyPart.TORSO
    assert int((flipped > 0).sum()) == 2
    twice = mirrored.mirrored()
    assert all(torch.equal(getattr(twice, f), getattr(inputs, f)) for f in ("agnostic", "body_parts", "garment"))
    assert replace(inputs, person=None).mirrored().person is None


def test_mirror_average_is_the_mean_of_both_outputs() -> None:
    """`generate(mirror_average=True)`: the output on the inputs and the output on their mirror image, mirrored
    back, averaged (the second call draws the generator's next noise)."""
    model = _tiny()
    inputs = _random_inputs()
    averaged = model.generate(inputs, generator=torch.Generator().manual_seed(3), mirror_average=True)
    g = torch.Generator().manual_seed(3)
    direct = model.generate(inputs, generator=g)
    back = model.generate(inputs.mirrored(), generator=g).flip(-1)
    assert torch.allclose(averaged, (direct + back) / 2, atol=1e-6)
    assert (averaged - direct).abs().max() > 1e-3  # a different picture, not the direct one again
    ddim = model.generate(inputs, steps=2, generator=torch.Generator().manual_seed(3), mirror_average=True)
    assert ddim.shape == (2, 3, *SIZE) and torch.isfinite(ddim).all()


def test_timestep_sampling_and_training_sources() -> None:
    g = torch.Generator().manual_seed(0)
    for sampling, low, high in (("fixed", 500, 500), ("range", 400, 600), ("uniform", 0, 999), ("mixed", 0, 999)):
        model = _tiny(timestep_sampling=sampling, t_star=500, t_spread=100)
        t = model.diffusion.sample_timesteps(256, generator=g)
        assert t.dtype == torch.long and int(t.min()) >= low and int(t.max()) <= high
    inputs = _random_inputs()
    gt = _tiny(train_source="gt", timestep_sampling="fixed")
    x_t, t, target, from_composite = gt.diffusion.training_example(gt, inputs, generator=g)
    assert x_t.shape == target.shape == (2, 3, *SIZE) and not from_composite.any()
    assert torch.equal(target, inputs.person)
    composite = _tiny(train_source="composite")
    assert composite.diffusion.training_example(composite, inputs, generator=g)[3].all()


def test_inference_t_star_is_the_single_step_default() -> None:
    model = _tiny(t_star=500)
    inputs = _random_inputs()

    def run(**kwargs: int | None) -> torch.Tensor:
        return model.diffusion.single_step(model, inputs, generator=torch.Generator().manual_seed(4), **kwargs)

    assert model.config.sampling_t_star == 500
    at_500, at_300 = run(), run(t=300)
    assert not torch.equal(at_500, at_300)
    model.config.inference_t_star = 300  # inference only: training samples from t_star
    assert torch.equal(run(), at_300)
    with pytest.raises(ValueError, match="inference_t_star"):
        TryOnConfig.from_preset("cpu-256", inference_t_star=1000)
    # The CPU preset samples at the t* its card chose, so a run's final config needs no editing.
    assert TryOnConfig.from_preset("cpu-256").sampling_t_star == 100
    shipped = json.loads((Path(fipviton.__file__).parent / "weights" / "tryon" / "config.json").read_text())
    assert shipped["inference_t_star"] == TryOnConfig.from_preset("cpu-256").inference_t_star


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"attention_levels": (7,)}, "attention_levels"),
        ({"space": "latent"}, "needs vae_path"),
        ({"garment_encoder": "clip"}, "needs clip_path"),
        ({"image_size": (250, 192)}, "divisible"),
        ({"p_fixed": 2.0}, "probabilities"),
        ({"refine_channels": 8, "patch_size": 1}, "refine_channels needs pixel space"),
        ({"refine_channels": -1}, "refine_channels must be"),
    ],
)
def test_config_validation_refuses_what_cannot_work(override: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TryOnConfig.from_preset("cpu-256", **override)


def test_inputs_of_the_wrong_size_are_refused() -> None:
    model = _tiny()
    with pytest.raises(ValueError, match="agnostic"):
        model.generate(_random_inputs(size=(32, 24)))
    assert model.generate(_random_inputs(size=(128, 96)).resized(SIZE)).shape == (2, 3, *SIZE)


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = _tiny()
    inputs = _random_inputs()
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = TryOnModel.from_pretrained(tmp_path)
    a = model.generate(inputs, generator=torch.Generator().manual_seed(3))
    b = loaded.generate(inputs, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert loaded.config == model.config


def test_weights_stored_in_float16_load_as_float32(tmp_path: Path) -> None:
    """The shipped weights are stored in float16 (half the file): they load into the float32 network as the
    float16 values, and the network's output barely moves."""
    from safetensors.torch import load_file

    model = _tiny()
    model.save_pretrained(tmp_path / "fp32")
    model.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    stored = load_file(str(tmp_path / "fp16" / "model.safetensors"))
    assert {v.dtype for v in stored.values()} == {torch.float16}
    size = {name: (tmp_path / name / "model.safetensors").stat().st_size for name in ("fp16", "fp32")}
    assert size["fp16"] < 0.6 * size["fp32"]
    loaded = TryOnModel.from_pretrained(tmp_path / "fp16")
    state = loaded.trainable_state_dict()
    assert all(state[k].dtype == torch.float32 and torch.equal(state[k], v.float()) for k, v in stored.items())
    inputs = _random_inputs()
    a = model.generate(inputs, generator=torch.Generator().manual_seed(3))
    b = loaded.generate(inputs, generator=torch.Generator().manual_seed(3))
    assert not torch.equal(a, b) and (a - b).abs().max() < 0.02


def test_refine_head_warm_starts_from_weights_without_it(tmp_path: Path) -> None:
    base = _tiny(patch_size=2)
    base.save_pretrained(tmp_path / "base")
    refined = TryOnModel(replace(base.config, refine_channels=8)).eval()
    absent = refined.warm_start_from(tmp_path / "base")
    assert absent and all(name.startswith("refine.") for name in absent)
    # The head's last layer starts at zero: the warm-started network is exactly the one it started from.
    inputs = _random_inputs()
    a = base.generate(inputs, generator=torch.Generator().manual_seed(3))
    b = refined.generate(inputs, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # ...and it is a real correction once its weights move.
    torch.nn.init.normal_(refined.refine[-1].weight, std=0.1)
    assert not torch.allclose(refined.generate(inputs, generator=torch.Generator().manual_seed(3)), a)
    refined.save_pretrained(tmp_path / "refined")
    loaded = TryOnModel.from_pretrained(tmp_path / "refined")
    assert loaded.config.refine_channels == 8 and torch.equal(loaded.refine[-1].weight, refined.refine[-1].weight)
    # Weights of another network do not fit, head or not.
    other = TryOnModel(TryOnConfig.from_preset("tiny", patch_size=2, block_out_channels=(16, 16)))
    with pytest.raises(fipviton.errors.WeightsError, match="do not match"):
        other.warm_start_from(tmp_path / "base")
    with pytest.raises(fipviton.errors.WeightsError, match="no try-on weights"):
        refined.warm_start_from(tmp_path / "nowhere")


@pytest.mark.parametrize("mode", ["zeros", "drop"])
def test_ablation_switches_keep_output_shapes(mode: str) -> None:
    inputs = _random_inputs()
    full_channels = _tiny().unet.config.in_channels
    for switch in (*ABLATIONS, "use_garment_tokens"):
        model = _tiny(**{switch: False, "ablation_mode": mode})
        x_t, t, _, _ = model.diffusion.training_example(model, inputs)
        assert model(x_t, t, inputs).shape == (2, 3, *SIZE), switch
        assert model.generate(inputs).shape == (2, 3, *SIZE), switch
        if mode == "zeros":
            assert model.unet.config.in_channels == full_channels
        elif switch != "use_garment_tokens":
            assert model.unet.config.in_channels < full_channels
    # "zeros": a switched-off condition cannot influence the output.
    model = _tiny(use_body_parts=False)
    other = replace(inputs, body_parts=torch.zeros_like(inputs.body_parts))
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(model.generate(inputs, generator=g1), model.generate(other, generator=g2))


def test_clip_garment_encoder_from_local_folder(tmp_path: Path) -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    clip_dir = tmp_path / "clip"
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    )
    CLIPVisionModel(vision).save_pretrained(clip_dir)
    model = _tiny(garment_encoder="clip", clip_path=str(clip_dir))
    inputs = _random_inputs()
    tokens = model.garment_tokens(inputs)
    assert tokens.shape == (2, 1 + (32 // 8) ** 2, model.config.cross_attention_dim)
    assert model.generate(inputs).shape == (2, 3, *SIZE)
    model.save_pretrained(tmp_path / "model")
    loaded = TryOnModel.from_pretrained(tmp_path / "model")
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(model.generate(inputs, generator=g1), loaded.generate(inputs, generator=g2))


def test_latent_space_with_a_tiny_vae(tmp_path: Path) -> None:
    from diffusers import AutoencoderKL

    vae_dir = tmp_path / "vae"
    AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    ).save_pretrained(vae_dir)
    model = _tiny(space="latent", vae_path=str(vae_dir))
    assert model.model_size == (SIZE[0] // 2, SIZE[1] // 2)
    inputs = _random_inputs()
    x_t, t, target, _ = model.diffusion.training_example(model, inputs)
    assert x_t.shape == target.shape == (2, 4, SIZE[0] // 2, SIZE[1] // 2)
    assert model(x_t, t, inputs).shape == target.shape
    for result in (model.generate(inputs), model.generate(inputs, steps=2)):
        assert result.shape == (2, 3, *SIZE) and result.min() >= -1 and result.max() <= 1
    model.save_pretrained(tmp_path / "model")
    assert not any(k.startswith("vae.") for k in _safetensor_keys(tmp_path / "model" / "model.safetensors"))
    TryOnModel.from_pretrained(tmp_path / "model")

    # The sharp-garment mode at a latent preset: the UNet's grid is the latent's (no patches there), coarser than
    # the image, so the warped garment has detail above it, and the mode adds it inside the warped garment (the
    # blurred edge of its weight leaks a level or two of uint8 past it).
    from fipviton.tryon.evaluate import with_garment_detail

    assert model.grid_size == model.model_size == (SIZE[0] // 2, SIZE[1] // 2)
    inputs.warped_mask = torch.zeros_like(inputs.warped_mask)
    inputs.warped_mask[:, :, 8:56, 8:40] = 1
    result = model.generate(inputs)
    plain = with_garment_detail(result, inputs, SIZE)  # nothing above the image's own size: only quantised
    sharp = with_garment_detail(result, inputs, model.grid_size)
    change = (sharp - plain).abs().amax(dim=1)
    outside = inputs.warped_mask[:, 0] < 0.5
    assert change[~outside].max() > 0.1 and change[outside].max() < 0.05


def _safetensor_keys(path: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        return list(handle.keys())


def _tiny_train_args(out: Path, **options: Any) -> TryOnTrainArgs:
    """Options of a tiny-preset run on `real_items` (no data folder, fp32, one thread, no VGG term)."""
    from fipviton.training.tryon import TryOnTrainArgs

    # The VGG term is exercised in the perceptual module's own tests.
    defaults = {"perceptual_weight": 0.0, "mixed_precision": "no", "threads": 1}
    return TryOnTrainArgs(data=None, out=out, preset="tiny", **(defaults | options))


def test_tiny_training_on_real_samples_loss_falls_and_resumes(
    real_items: list[dict[str, np.ndarray]], tmp_path: Path
) -> None:
    from fipviton.training.tryon import train_tryon

    torch.manual_seed(0)
    args = _tiny_train_args(
        tmp_path / "run",
        overrides={"timestep_sampling": "fixed", "train_source": "mix"},
        steps=16,
        batch_size=4,
        lr=2e-3,
        warmup=5,
        log_every=1,
        sample_every=16,
        ckpt_every=8,
    )
    train_tryon(args, dataset=real_items, collate=inputs_from_arrays)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [x["total"] for x in lines]
    assert len(losses) == 16
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:3]), losses
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "samples" / "step_000016.png").is_file()
    model = TryOnModel.from_pretrained(tmp_path / "run" / "final")
    out = model.generate(inputs_from_arrays(real_items[:2]))
    assert out.shape == (2, 3, *SIZE)
    # Resume continues from the newest checkpoint (step 16) to step 18. The inference t* can still be set there;
    # a change to the network is ignored, and the log says so.
    overrides = args.overrides | {"inference_t_star": 40, "use_body_parts": False}
    resumed = replace(args, steps=18, resume=True, overrides=overrides)
    train_tryon(resumed, dataset=real_items, collate=inputs_from_arrays)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "resumed from" in log and "step_000016" in log
    assert "--set use_body_parts ignored" in log
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 18
    final = json.loads((tmp_path / "run" / "final" / "config.json").read_text())
    assert final["inference_t_star"] == 40 and final["use_body_parts"] is True


def test_training_starts_from_init_weights_with_a_new_head(
    real_items: list[dict[str, np.ndarray]], tmp_path: Path
) -> None:
    from fipviton.training.tryon import train_tryon

    base = _tiny(patch_size=2, t_star=40, train_source="composite")
    base.save_pretrained(tmp_path / "base")
    args = _tiny_train_args(
        tmp_path / "run",
        overrides={"refine_channels": 8},
        init_weights=tmp_path / "base",
        refine_lr_scale=10.0,
        steps=2,
        batch_size=2,
        lr=1e-3,
        warmup=1,
        sample_every=100,
        ckpt_every=100,
    )
    train_tryon(args, dataset=real_items, collate=inputs_from_arrays)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "6 new tensors keep their initialisation" in log
    assert "--preset unused" in log  # the network came from the starting weights, and the log says so
    final = TryOnModel.from_pretrained(tmp_path / "run" / "final")
    assert final.config.refine_channels == 8
    # The rest of the config is the starting weights' (their t* and training source), not the preset's.
    assert (final.config.patch_size, final.config.t_star, final.config.train_source) == (2, 40, "composite")
    # The new head learns at 10x the rate of the warm-started network.
    optimizer = torch.load(latest_checkpoint(tmp_path / "run") / "optimizer.pt", weights_only=True)
    groups = {group["lr_scale"]: len(group["params"]) for group in optimizer["param_groups"]}
    assert groups[10.0] == 6 and groups[1.0] > 6
    # Two small AdamW steps (EMA-averaged) from the base weights, not a fresh random network.
    start, end = base.unet.conv_in.weight, final.unet.conv_in.weight
    assert (end - start).abs().max() < 0.01 < (TryOnModel(final.config).unet.conv_in.weight - start).abs().max()


def test_cli_builds_the_caches_and_trains(data_dir: Path, tmp_path: Path) -> None:
    """`fipviton train tryon` end to end on 6 pairs: warp cache, try-on cache (a tiny random WarpNet as the
    warper: the real code path, meaningless warps), 2 training steps, final weights."""
    from fipviton.cli import main
    from fipviton.warp import WarpConfig, WarpNet

    root = require(data_dir / "viton_resize")
    torch.manual_seed(0)
    WarpNet(WarpConfig.preset("tiny")).save_pretrained(tmp_path / "warp")
    common = ["--data", str(root), "--config", "tiny", "--limit", "6", "--cache-root", str(tmp_path / "cache")]
    common += ["--warp-weights", str(tmp_path / "warp"), "--threads", "1", "--perceptual-weight", "0"]
    run = ["train", "tryon", *common, "--out", str(tmp_path / "run"), "--steps", "2", "--batch-size", "2"]
    assert main([*run, "--ssim-weight", "0.5", "--log-every", "1"]) == 0
    logged = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # the term (1 - SSIM) was on: logged, non-zero, in its range (float32 SSIM may exceed 1 by a hair)
    assert len(logged) == 2 and all(x["ssim"] != 0.0 and -0.01 < x["ssim"] <= 2.0 for x in logged), logged
    caches = list((tmp_path / "cache" / "tryon").iterdir())
    assert len(caches) == 1
    warped = np.load(caches[0] / "warped.npy")
    assert warped.shape == (6, *SIZE, 3) and warped.dtype == np.uint8
    assert np.load(caches[0] / "agnostic_mask.npy").any()
    assert TryOnModel.from_pretrained(tmp_path / "run" / "final").config.preset == "tiny"

    # The shrink augmentation (drawn per item) only ever removes warped-garment pixels, and removes some.
    from fipviton.tryon.dataset import Augmentation, TryOnCacheDataset

    warp_cache = json.loads((caches[0] / "meta.json").read_text())["warp_cache"]
    plain = TryOnCacheDataset(warp_cache, caches[0])
    shrunk = TryOnCacheDataset(warp_cache, caches[0], Augmentation(flip_prob=0.0, shrink_prob=1.0, shrink_max_erode=2))
    torch.manual_seed(0)
    pairs = [(plain[i]["warped_mask"], shrunk[i]["warped_mask"]) for i in range(len(plain))]
    assert all((after <= before).all() for before, after in pairs)
    assert sum(int((after > 0).sum()) for _, after in pairs) < sum(int((before > 0).sum()) for before, _ in pairs)

    # Backdrops: fixed ones are the same in every run and change only the background; drawn ones vary.
    fixed = [
        TryOnCacheDataset(warp_cache, caches[0], Augmentation(flip_prob=0.0, fixed_backdrops=seed))
        for seed in (0, 0, 1)
    ]
    people = [[d[i]["person"] for i in range(3)] for d in fixed]
    assert all(np.array_equal(a, b) for a, b in zip(people[0], people[1], strict=True))
    assert not any(np.array_equal(a, b) for a, b in zip(people[0], people[2], strict=True))
    for i, swapped in enumerate(people[0]):
        record = plain.source[i]
        on_person = cv2.erode((np.asarray(record["parsing"]) > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert np.array_equal(swapped[on_person], plain[i]["person"][on_person])
        assert not np.array_equal(swapped, plain[i]["person"])
    drawn = TryOnCacheDataset(warp_cache, caches[0], Augmentation(flip_prob=0.0, backdrop_prob=1.0))
    assert not np.array_equal(drawn[0]["person"], drawn[0]["person"])

    # The flip mirrors every input once: the body-part map stays on the mirrored body (left/right swapped).
    # (Until 2026-11-27 it was mirrored twice, so it lay where the body was before the flip.)
    from fipviton.bodyparts import flip_parts

    mirrored = TryOnCacheDataset(warp_cache, caches[0], Augmentation(flip_prob=1.0))
    for i in range(3):
        direct, flipped = plain[i], mirrored[i]
        for key in ("person", "agnostic_mask", "warped", "warped_mask", "garment"):
            assert np.array_equal(flipped[key], direct[key][:, ::-1]), key
        assert np.array_equal(flipped["body_parts"], flip_parts(direct["body_parts"]))
        on_body = flipped["body_parts"] > 0
        assert on_body.any() and not np.array_equal(flipped["body_parts"], direct["body_parts"])


def test_cache_progress_goes_to_stderr(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`eval tryon --json` prints its result on stdout: the caches it builds first must report on stderr."""
    from fipviton.tryon.cache import build_tryon_cache, warpnet_warper
    from fipviton.warp import WarpConfig, WarpNet
    from fipviton.warp.cache import build_cache

    root = require(data_dir / "viton_resize")
    torch.manual_seed(0)
    WarpNet(WarpConfig.preset("tiny")).save_pretrained(tmp_path / "warpnet")
    warper, tag = warpnet_warper(tmp_path / "warpnet")
    warp_cache = build_cache(root, "test", size=SIZE, cache_root=tmp_path / "warp", limit=4, log_every=2)
    build_tryon_cache(warp_cache, warper, tag, cache_root=tmp_path, batch_size=2, log_every=2)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "cache test: 4/4" in captured.err and "try-on cache: 4/4" in captured.err


def test_cli_registers_train_tryon() -> None:
    from fipviton.cli import build_parser

    args = build_parser().parse_args(
        ["train", "tryon", "--data", ".", "--out", "x", "--config", "tiny", "--set", "use_body_parts=false"]
    )
    assert args.config == "tiny" and args.overrides == [("use_body_parts", False)]


def test_cli_refuses_a_shrink_probability_outside_0_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fipviton.cli import main

    args = ["train", "tryon", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--shrink-prob", "1.5"]
    assert main(args) == 2
    assert "shrink_prob must be in [0, 1], got 1.5" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("field", ["shrink_prob", "flip_prob", "backdrop_prob"])
def test_train_args_refuse_probabilities_outside_0_1(field: str, tmp_path: Path) -> None:
    from fipviton.training.tryon import TryOnTrainArgs

    with pytest.raises(ValueError, match=f"{field} must be in"):
        TryOnTrainArgs(data=tmp_path, out=tmp_path / "run", **{field: -0.1})
    assert getattr(TryOnTrainArgs(data=tmp_path, out=tmp_path / "run", **{field: 1.0}), field) == 1.0


def test_cli_refuses_a_negative_loss_weight(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fipviton.cli import main

    args = ["train", "tryon", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--ssim-weight", "-1"]
    assert main(args) == 2
    assert "ssim_weight must be >= 0, got -1.0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_tryon_average_is_the_weighted_mean_of_the_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fipviton.cli import main

    for seed, name in ((0, "a"), (1, "b")):
        torch.manual_seed(seed)
        TryOnModel(TryOnConfig.from_preset("tiny")).save_pretrained(tmp_path / name)
    folders = [str(tmp_path / "a"), str(tmp_path / "b")]
    assert main(["train", "tryon-average", *folders, "--weights", "0.75,0.25", "--out", str(tmp_path / "soup")]) == 0
    a, b, soup = (TryOnModel.from_pretrained(tmp_path / n).trainable_state_dict() for n in ("a", "b", "soup"))
    differs = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k])]
    assert differs
    for key in differs:
        torch.testing.assert_close(soup[key], 0.75 * a[key] + 0.25 * b[key])
    assert main(["train", "tryon-average", *folders, "--out", str(tmp_path / "half")]) == 0
    half = TryOnModel.from_pretrained(tmp_path / "half").trainable_state_dict()
    torch.testing.assert_close(half[differs[0]], (a[differs[0]] + b[differs[0]]) / 2)
    capsys.readouterr()
    # Refused, with nothing written: weights that do not sum to 1 and another network (weight errors, exit 1), a
    # folder that exists (exit 2).
    assert main(["train", "tryon-average", *folders, "--weights", "0.5,0.6", "--out", str(tmp_path / "bad")]) == 1
    assert "sum to 1" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main(["train", "tryon-average", *folders, "--out", str(tmp_path / "soup")]) == 2
    TryOnModel(TryOnConfig.from_preset("tiny", patch_size=2)).save_pretrained(tmp_path / "other")
    assert main(["train", "tryon-average", folders[0], str(tmp_path / "other"), "--out", str(tmp_path / "x")]) == 1
    assert "another network" in capsys.readouterr().err and not (tmp_path / "x").exists()
