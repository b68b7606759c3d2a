"""The end-to-end try-on: analyse -> agnostic -> warp -> try-on -> post-process.

`TryOnPipeline` only wires the stages; each stage is its own module with typed inputs and outputs:

1. `fipviton.analysis`: person analysis (MediaPipe pose + person mask, our human parser, derived body-part
   map) and garment analysis (weight-free garment mask), at the photo's own resolution;
2. `fipviton.agnostic`: the region to repaint for the garment category;
3. `fipviton.warp`: the warping module runs at its training size; its flow is upsampled so that the
   full-resolution garment photo is warped for the full-resolution person;
4. `fipviton.tryon`: the single-step try-on network at its image size (256x192 for the shipped `cpu-256`
   model), its output resized to the photo's resolution, with the full-resolution warped garment's fine
   detail added where the garment lies (`add_garment_detail`);
5. `fipviton.postprocess`: original pixels outside the repainted region pasted back at full resolution, then
   the identity pixels (skin, tattoos, accessories, the other half's clothes) that the new garment does not
   cover restored inside it.

Any person-photo aspect ratio works: the network's frame is 4:3 (H:W), so the photo is padded (edge pixels
repeated) to that aspect before the analysis, and the result is cropped back to the photo's own size.

Any framing works too (`fipviton.framing`): for an upper-body garment, a photo that shows more of the person
than VITON's head-to-thighs frame (a full-body shot) is tried on in a crop framed like VITON, parsed again
at that crop's resolution, and the result is pasted back into the photo; the garment photo is re-framed like
VITON's garment photos (centred, filling the width, 3:4) before the warp and the garment encoder see it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from fipviton.data.sample import Category, TryOnSample
from fipviton.framing import Window, crop, frame_garment, paste, person_frame, shift_box, shift_keypoints
from fipviton.imageio import ImageSource, load_image
from fipviton.regions import mask_box

if TYPE_CHECKING:
    from fipviton.agnostic import Agnostic
    from fipviton.analysis.garment import GarmentAnalysis
    from fipviton.analysis.parser import HumanParser
    from fipviton.analysis.person import PersonAnalysis
    from fipviton.postprocess import PostProcessConfig
    from fipviton.tryon import TryOnModel
    from fipviton.warp import WarpNet

STAGES = ("analysis", "agnostic", "warp", "tryon", "postprocess")
Pad = tuple[int, int, int, int]  # top, bottom, left, right pixels added to reach the network's aspect


@dataclass
class TryOnResult:
    """The try-on of one pair, with every intermediate map (for debugging, plots and the web page).

    Every map is at the person photo's resolution (H, W) unless stated.

    image:            (H, W, 3) uint8 RGB, the final try-on.
    generated:        (H, W, 3) uint8 RGB, the try-on network's output resized to (H, W) (plus the garment's fine
                      detail, `add_garment_detail`), before post-processing.
    person:           (H, W, 3) uint8 RGB, the input person photo.
    garment:          (h, w, 3) uint8 RGB, the input garment photo.
    category:         the garment category.
    analysis:         `PersonAnalysis` of the person (keypoints, parsing, body parts, person mask, face box).
    garment_analysis: `GarmentAnalysis` of the garment photo (mask at (h, w)).
    agnostic:         `Agnostic` (mask, image, parsing) for the category.
    warped:           (H, W, 3) uint8 RGB, the warped garment (white where it is absent).
    warped_mask:      (H, W) float32 in [0, 1], where the warped garment lies.
    noise_condition:  (H, W, 3) uint8 RGB, the coarse composite the try-on starts from (built at the network's
                      size, resized).
    restored_mask:    (H, W) bool, identity pixels the conditional post-processing restored.
    steps:            try-on network calls (1 = the single-step method; N = N-step DDIM).
    frame:            (top, left, height, width) of the crop of the photo that the try-on ran on
                      (`fipviton.framing.person_frame`; the maps outside it are the whole photo's analysis,
                      the original photo, or empty), or None when it ran on the whole photo.
    warnings:         notes for the user (several people found, odd garment photo, ...).
    timings:          seconds per stage (`STAGES`) and "total".
    """

    image: np.ndarray
    generated: np.ndarray
    person: np.ndarray
    garment: np.ndarray
    category: Category
    analysis: PersonAnalysis
    garment_analysis: GarmentAnalysis
    agnostic: Agnostic
    warped: np.ndarray
    warped_mask: np.ndarray
    noise_condition: np.ndarray
    restored_mask: np.ndarray
    steps: int = 1
    frame: Window | None = None
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def maps(self) -> dict[str, np.ndarray]:
        """Name -> (H, W, 3) uint8 RGB picture of each intermediate map, in the order of the data flow."""
        from fipviton.analysis.densepose import render_parts
        from fipviton.analysis.overlay import draw_pose, mask_picture
        from fipviton.labels import colorize_labels

        height, width = self.person.shape[:2]
        garment_mask = cv2.resize(
            self.garment_analysis.mask.astype(np.uint8) * 255, (width, height), interpolation=cv2.INTER_NEAREST
        )
        garment = cv2.resize(self.garment, (width, height), interpolation=cv2.INTER_AREA)
        return {
            "pose": draw_pose(self.person, self.analysis.keypoints),
            "parsing": colorize_labels(self.analysis.parsing),
            "body_parts": render_parts(self.analysis.body_parts),
            "person_mask": mask_picture(self.person, self.analysis.person_mask),
            "garment_mask": mask_picture(garment, garment_mask > 127),
            "agnostic": self.agnostic.image,
            "warped": self.warped,
            "noise_condition": self.noise_condition,
            "generated": self.generated,
            "restored": mask_picture(self.image, self.restored_mask),
        }


def pad_to_aspect(height: int, width: int, aspect: float) -> Pad:
    """Padding (top, bottom, left, right) that brings an (height, width) image to height / width == aspect."""
    if height / width > aspect:  # too tall: widen
        extra = round(height / aspect) - width
        return 0, 0, extra // 2, extra - extra // 2
    extra = round(width * aspect) - height
    return extra // 2, extra - extra // 2, 0, 0


def apply_pad(image: np.ndarray, pad: Pad) -> np.ndarray:
    """Pad an (H, W[, C]) array by repeating its edge pixels."""
    if not any(pad):
        return image
    top, bottom, left, right = pad
    return cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_REPLICATE)


def remove_pad(image: np.ndarray, pad: Pad) -> np.ndarray:
    top, bottom, left, right = pad
    height, width = image.shape[:2]
    return np.ascontiguousarray(image[top : height - bottom, left : width - right])


def _resize(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize (H, W[, C]) to size = (h, w): nearest for label maps, area when shrinking, cubic when enlarging."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    if nearest:
        mode = cv2.INTER_NEAREST
    elif h * w < image.shape[0] * image.shape[1]:
        mode = cv2.INTER_AREA
    else:
        mode = cv2.INTER_CUBIC
    return cv2.resize(image, (w, h), interpolation=mode)


class TryOnPipeline:
    """Person photo + garment photo -> `TryOnResult`. Build it with `from_pretrained`; call it per pair.

    parser:      the human parser (`fipviton.analysis.parser.HumanParser`).
    warp:        the warping module (`fipviton.warp.WarpNet`).
    tryon:       the try-on module (`fipviton.tryon.TryOnModel`).
    postprocess: `fipviton.postprocess.PostProcessConfig` (None: its defaults; both blocks on).
    steps:       try-on network calls per image: 1 (the single-step method) or N for an N-step DDIM run.
    garment_detail: add the full-resolution warped garment's fine detail to the upsampled try-on output
                 (`add_garment_detail`); only matters when the photo is larger than the network's size.
    sharp_garment: add the warped garment's detail from the network's own grid up (`TryOnModel.grid_size`,
                 128x96 at cpu-256: the UNet predicts one position per 2x2 patch) instead of from its output
                 size: stripes and prints stay crisp where the network alone blurs or checkers them. Off by
                 default: on paired test photos it lowers SSIM (the warp is a few pixels off) while it
                 improves ST-LPIPS (try-on model card, "Sharp garment").
    framing:     frame the person and the garment like the training photos (`fipviton.framing`); False runs
                 the networks on the photos as they are (the behaviour before 2026-11-27).
    mirror_average: run the try-on network on the photo and on its mirror image and average the two
                 (`TryOnModel.generate`): twice the try-on module's time.
    """

    def __init__(
        self,
        parser: HumanParser,
        warp: WarpNet,
        tryon: TryOnModel,
        postprocess: PostProcessConfig | None = None,
        steps: int = 1,
        garment_detail: bool = True,
        framing: bool = True,
        sharp_garment: bool = False,
        mirror_average: bool = False,
    ) -> None:
        from fipviton.postprocess import PostProcessConfig

        self.parser = parser.eval()
        self.warp = warp.eval()
        self.tryon = tryon.eval()
        self.postprocess = postprocess or PostProcessConfig()
        self.steps = steps
        self.garment_detail = garment_detail
        self.sharp_garment = sharp_garment
        self.mirror_average = mirror_average
        self.framing = framing
        image_h, image_w = tryon.config.image_size
        self.aspect = image_h / image_w

    @classmethod
    def from_pretrained(
        cls,
        parser: str | Path | None = None,
        warp: str | Path | None = None,
        tryon: str | Path | None = None,
        device: str | torch.device = "cpu",
        **kwargs: Any,
    ) -> TryOnPipeline:
        """Load the three networks (None: the weights shipped in the package; no network access).

        Raises `fipviton.errors.WeightsError` when a weights folder is missing or does not match.
        Extra keyword arguments go to the constructor (`postprocess`, `steps`, `garment_detail`, `framing`,
        `sharp_garment`, `mirror_average`).
        """
        from fipviton.analysis.person import load_parser
        from fipviton.tryon import TryOnModel
        from fipviton.warp import WarpNet

        return cls(
            load_parser(parser),
            WarpNet.from_pretrained(warp).to(device),
            TryOnModel.from_pretrained(tryon, device=device),
            **kwargs,
        )

    @property
    def device(self) -> torch.device:
        return self.tryon.device

    def __call__(
        self,
        person: ImageSource,
        garment: ImageSource,
        category: Category | str = Category.UPPER_BODY,
        garment_mask: np.ndarray | None = None,
        seed: int = 0,
        sharp_garment: bool | None = None,
        mirror_average: bool | None = None,
    ) -> TryOnResult:
        """Try `garment` on `person`: paths, encoded bytes, PIL images or uint8 arrays, any resolution.

        garment_mask: (h, w) bool for the garment photo; None estimates it (`fipviton.analysis.garment`).
        seed:         seed of the noise added to the noise condition image (the result is deterministic).
        sharp_garment: this call's sharp-garment mode (see the class); None: the pipeline's own setting.
        mirror_average: this call's mirror averaging (see the class); None: the pipeline's own setting.
        Raises `ImageInputError` for unusable images and `NoPersonError` when no usable person is found.
        """
        from fipviton.analysis.garment import analyze_garment
        from fipviton.analysis.person import analyze_person, reanalyze_window

        category = Category(category)
        start = time.perf_counter()
        person_rgb = load_image(person, "person")
        garment_rgb = load_image(garment, "garment")
        pad = pad_to_aspect(*person_rgb.shape[:2], self.aspect)
        framed = apply_pad(person_rgb, pad)
        analysis = analyze_person(framed, parser=self.parser, category=category)
        garment_analysis = analyze_garment(garment_rgb, category, parser=self.parser)
        if garment_mask is not None:
            garment_mask = np.asarray(garment_mask).astype(bool)
            if garment_mask.shape != garment_rgb.shape[:2]:
                raise ValueError(f"garment_mask must be {garment_rgb.shape[:2]}, got {garment_mask.shape}")
            garment_analysis.mask = garment_mask
        window = self.person_window(analysis, framed.shape, category)
        whole = analysis
        if window is not None:  # parsed again at the crop's resolution: the parser sees the torso larger
            analysis = reanalyze_window(whole, framed, window, self.parser)
        timings = {"analysis": time.perf_counter() - start}
        sharp = self.sharp_garment if sharp_garment is None else sharp_garment
        mirror = self.mirror_average if mirror_average is None else mirror_average
        cropped = framed if window is None else crop(framed, window)
        result = self._run(cropped, garment_rgb, garment_analysis, analysis, category, seed, timings, sharp, mirror)
        if window is not None:
            result = _place_result(result, window, framed, whole)
        result = _crop_result(result, pad, person_rgb)
        result.timings["total"] = time.perf_counter() - start
        return result

    def run_sample(self, sample: TryOnSample, seed: int = 0) -> TryOnResult:
        """Try-on of a dataset sample, using its own maps (parsing, keypoints, garment mask) where it has them.

        The evaluation path: the same stages as `__call__`, with the dataset's annotations in place of the
        estimators (`fipviton.analysis.person.analysis_from_sample`).
        """
        from fipviton.analysis.garment import GarmentAnalysis, analyze_garment
        from fipviton.analysis.person import analysis_from_sample, cut_analysis

        start = time.perf_counter()
        if sample.person.shape[0] / sample.person.shape[1] != self.aspect:
            raise ValueError(f"{sample.person_id}: dataset samples must have the network's aspect (H/W {self.aspect})")
        analysis = analysis_from_sample(sample, parser=self.parser)
        if sample.garment_mask is not None:
            background = np.full(3, 255, np.uint8)
            garment_analysis = GarmentAnalysis(sample.garment_mask.astype(bool), sample.category, background)
        else:
            garment_analysis = analyze_garment(sample.garment, sample.category, parser=self.parser)
        timings = {"analysis": time.perf_counter() - start}
        category = sample.category
        window = self.person_window(analysis, sample.person.shape, category)
        person, maps = sample.person, analysis
        if window is not None:  # the dataset's maps are cropped (they are at the photo's resolution already)
            person, maps = crop(sample.person, window), cut_analysis(analysis, window)
        result = self._run(
            person, sample.garment, garment_analysis, maps, category, seed, timings, self.sharp_garment,
            self.mirror_average,
        )  # fmt: skip
        if window is not None:
            result = _place_result(result, window, sample.person, analysis)
        result.timings["total"] = time.perf_counter() - start
        return result

    def person_window(self, analysis: PersonAnalysis, shape: tuple[int, ...], category: Category) -> Window | None:
        """The crop of the person photo (of `shape`) to try on in (`fipviton.framing.person_frame`), or None."""
        if not self.framing:
            return None
        return person_frame(analysis.keypoints, shape, tuple(self.tryon.config.image_size), category)

    @torch.no_grad()
    def _run(
        self,
        person: np.ndarray,
        garment: np.ndarray,
        garment_analysis: GarmentAnalysis,
        analysis: PersonAnalysis,
        category: Category,
        seed: int,
        timings: dict[str, float],
        sharp_garment: bool,
        mirror_average: bool,
    ) -> TryOnResult:
        from fipviton.agnostic import build_agnostic
        from fipviton.postprocess import postprocess
        from fipviton.tryon.inputs import inputs_from_arrays
        from fipviton.warp.conditioning import image_to_tensor, mask_to_tensor, person_input_from_maps

        height, width = person.shape[:2]
        tick = time.perf_counter()
        agnostic = build_agnostic(person, analysis.parsing, analysis.keypoints, category)
        timings["agnostic"] = time.perf_counter() - tick

        tick = time.perf_counter()
        device = self.device
        warp_input = person_input_from_maps(
            analysis.body_parts, agnostic.parsing, analysis.keypoints, tuple(self.warp.config.size)
        )
        size = tuple(self.tryon.config.image_size)
        # What the networks see of the garment: framed like the training garments (unchanged when it already is).
        net_garment, net_garment_mask = garment, garment_analysis.mask
        if self.framing:
            net_garment, net_garment_mask = frame_garment(garment, garment_analysis.mask, size)
        warp_out = self.warp(
            image_to_tensor(net_garment)[None].to(device),
            mask_to_tensor(net_garment_mask)[None].to(device),
            warp_input.to(device),
            size=(height, width),
        )
        warped = ((warp_out.garment[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
        warped_mask = warp_out.mask[0, 0].clamp(0, 1).float().cpu().numpy()
        timings["warp"] = time.perf_counter() - tick

        tick = time.perf_counter()
        item = {
            "person": _resize(person, size),
            "agnostic_mask": (_resize(agnostic.mask.astype(np.float32), size) > 0.5).astype(np.uint8),
            "warped": _resize(warped, size),
            "warped_mask": np.round(_resize(warped_mask, size).clip(0, 1) * 255).astype(np.uint8),
            "body_parts": _resize(analysis.body_parts, size, nearest=True),
            "garment": net_garment,
        }
        inputs = inputs_from_arrays([item], device)
        inputs.person = None  # inference never sees the ground truth
        generator = torch.Generator(device=device).manual_seed(seed)
        output = self.tryon.generate(inputs, steps=self.steps, generator=generator, mirror_average=mirror_average)
        generated = _resize(_to_uint8(output), (height, width))
        if self.garment_detail:
            detail_above = self.tryon.grid_size if sharp_garment else size
            generated = add_garment_detail(generated, warped, warped_mask, detail_above)
        noise_condition = _to_uint8(inputs.noise_condition())
        timings["tryon"] = time.perf_counter() - tick

        tick = time.perf_counter()
        post = postprocess(
            generated, person, agnostic.mask, agnostic.person_parsing, warped_mask, category, self.postprocess,
            analysis.person_mask,
        )  # fmt: skip
        timings["postprocess"] = time.perf_counter() - tick
        return TryOnResult(
            image=post.image,
            generated=generated,
            person=person,
            garment=garment,
            category=category,
            analysis=analysis,
            garment_analysis=garment_analysis,
            agnostic=agnostic,
            warped=warped,
            warped_mask=warped_mask,
            noise_condition=_resize(noise_condition, (height, width)),
            restored_mask=post.restored_mask,
            steps=self.steps,
            warnings=list(analysis.warnings) + list(garment_analysis.warnings),
            timings=timings,
        )


def add_garment_detail(
    generated: np.ndarray, warped: np.ndarray, warped_mask: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """The upsampled try-on output with the warped garment's detail finer than the network's size added back.

    generated: (H, W, 3) uint8, the network's output resized from `size` = (h, w) to (H, W); warped (H, W, 3)
    uint8 and warped_mask (H, W) float32 in [0, 1]: the full-resolution warped garment. The network sees and
    paints the garment at (h, w), so a 1024x768 result would be a blurred 256x192 one; the band of the warped
    garment above that resolution (warped minus its own round trip through (h, w)) carries the weave, print
    edges and lettering. It is added where the garment surely lies (the mask eroded by two network pixels,
    so no garment edge is drawn where the network moved the outline). Returns (H, W, 3) uint8.
    """
    height, width = generated.shape[:2]
    if (height, width) == tuple(size) or height * width < size[0] * size[1]:
        return generated
    solid = warped_mask >= 0.5
    radius = max(1, round(2 * height / size[0]))
    sigma = radius / 2
    # Work on the garment's box grown by the erosion and blur reach (OpenCV's float kernel: 4 sigma): the
    # weight is exactly 0 beyond it, and the box's own border sees zeros as the whole picture would.
    box = mask_box(solid, radius + int(np.ceil(4 * sigma)) + 2)
    if box is None:
        return generated
    low = _resize(_resize(warped, size), (height, width))[box].astype(np.float32)
    detail = warped[box].astype(np.float32) - low
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    inside = cv2.erode(solid[box].view(np.uint8), kernel).astype(np.float32)
    weight = cv2.GaussianBlur(inside, (0, 0), sigma)[..., None]
    out = generated.copy()
    out[box] = np.clip(generated[box].astype(np.float32) + detail * weight, 0, 255).round()
    return out


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((image[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def _crop_result(result: TryOnResult, pad: Pad, person: np.ndarray) -> TryOnResult:
    """Bring every person-frame map of `result` back from the padded frame to the photo's own size."""
    from dataclasses import replace

    from fipviton.agnostic import Agnostic
    from fipviton.analysis.person import PersonAnalysis

    if not any(pad):
        return result
    top, _, left, _ = pad
    height, width = person.shape[:2]
    frame = result.frame
    if frame is not None:  # the part of the person crop that lies in the photo
        y0, x0 = max(frame[0] - top, 0), max(frame[1] - left, 0)
        y1, x1 = min(frame[0] - top + frame[2], height), min(frame[1] - left + frame[3], width)
        frame = (y0, x0, y1 - y0, x1 - x0)
    analysis = PersonAnalysis(
        keypoints=shift_keypoints(result.analysis.keypoints, -left, -top),
        parsing=remove_pad(result.analysis.parsing, pad),
        body_parts=remove_pad(result.analysis.body_parts, pad),
        person_mask=remove_pad(result.analysis.person_mask, pad),
        face_box=shift_box(result.analysis.face_box, -left, -top, (height, width)),
        warnings=result.analysis.warnings,
        sources=result.analysis.sources,
    )
    agnostic = Agnostic(
        mask=remove_pad(result.agnostic.mask, pad),
        image=remove_pad(result.agnostic.image, pad),
        parsing=remove_pad(result.agnostic.parsing, pad),
        category=result.agnostic.category,
        person_parsing=remove_pad(result.agnostic.person_parsing, pad),
    )
    return replace(
        result,
        image=remove_pad(result.image, pad),
        generated=remove_pad(result.generated, pad),
        person=person,
        analysis=analysis,
        agnostic=agnostic,
        warped=remove_pad(result.warped, pad),
        warped_mask=remove_pad(result.warped_mask, pad),
        noise_condition=remove_pad(result.noise_condition, pad),
        restored_mask=remove_pad(result.restored_mask, pad),
        frame=frame,
    )


def _place_result(result: TryOnResult, window: Window, photo: np.ndarray, whole: PersonAnalysis) -> TryOnResult:
    """Bring a try-on made in `window` of `photo` (H, W, 3) back to the whole photo.

    The images outside the window are the photo (its pixels are not repainted), the analysis maps there are
    `whole` (the whole photo's analysis), and the warped garment and the masks are empty there.
    """
    from dataclasses import replace

    from fipviton.agnostic import Agnostic
    from fipviton.analysis.person import PersonAnalysis

    top, left = window[0], window[1]
    shape = photo.shape[:2]

    def empty(part: np.ndarray, value: float = 0) -> np.ndarray:
        return np.full(shape + part.shape[2:], value, part.dtype)

    inner = result.analysis
    keypoints = shift_keypoints(inner.keypoints, left, top)
    missing = keypoints[:, 2] <= 0  # e.g. knees and ankles below the window: the whole photo's estimate
    keypoints[missing] = whole.keypoints[missing]
    face_box = shift_box(inner.face_box, left, top, shape) if inner.face_box is not None else whole.face_box
    analysis = PersonAnalysis(
        keypoints=keypoints,
        parsing=paste(whole.parsing, inner.parsing, window),
        body_parts=paste(whole.body_parts, inner.body_parts, window),
        person_mask=paste(whole.person_mask, inner.person_mask, window),
        face_box=face_box,
        warnings=inner.warnings,
        sources=inner.sources,
    )
    agnostic = Agnostic(
        mask=paste(empty(result.agnostic.mask), result.agnostic.mask, window),
        image=paste(photo, result.agnostic.image, window),
        parsing=paste(whole.parsing, result.agnostic.parsing, window),
        category=result.agnostic.category,
        person_parsing=paste(whole.parsing, result.agnostic.person_parsing, window),
    )
    return replace(
        result,
        image=paste(photo, result.image, window),
        generated=paste(photo, result.generated, window),
        person=photo,
        analysis=analysis,
        agnostic=agnostic,
        warped=paste(empty(result.warped, 255), result.warped, window),
        warped_mask=paste(empty(result.warped_mask), result.warped_mask, window),
        noise_condition=paste(photo, result.noise_condition, window),
        restored_mask=paste(empty(result.restored_mask), result.restored_mask, window),
        frame=window,
    )
