"""Person analysis: everything the later stages need to know about the person photo, in one dataclass.

`analyze_person(image)` estimates every field from the photo alone (MediaPipe pose and person mask, our
human parser, the derived body-part map); `analysis_from_sample(sample)` takes a dataset sample's own maps
where it has them and estimates only the rest, so that training and evaluation use the dataset's maps while
the demo and the CLI use the estimators, through the same type. `cut_analysis` and `reanalyze_window` give
the analysis of a window of an analysed photo (the pipeline's person crop, `fipviton.framing`).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fipviton.analysis.body_parts import derive_body_parts
from fipviton.analysis.pose import estimate_pose
from fipviton.data.sample import Category, TryOnSample
from fipviton.framing import Window, crop, shift_box, shift_keypoints
from fipviton.keypoints import Keypoint
from fipviton.labels import Label

if TYPE_CHECKING:
    from fipviton.analysis.parser import HumanParser

Box = tuple[int, int, int, int]


@dataclass
class PersonAnalysis:
    """What we know about the person in a photo of size (H, W). All maps are at the photo's resolution.

    keypoints:   (18, 3) float32, COCO-18 order (`fipviton.keypoints.Keypoint`), x/y in photo pixels,
                 confidence in [0, 1], 0 = missing. Source: MediaPipe Pose, or the dataset's keypoints.
    parsing:     (H, W) uint8 internal labels (`fipviton.labels.Label`). Source: our human parser
                 (`fipviton.analysis.parser`), or the dataset's parsing mapped to internal labels.
    body_parts:  (H, W) uint8 `fipviton.bodyparts.BodyPart`. Source: derived from parsing + keypoints
                 (`fipviton.analysis.body_parts`), or the dataset's DensePose (`fipviton.analysis.densepose`).
    person_mask: (H, W) bool, True on the person. Source: MediaPipe's body segmentation, or for dataset samples
                 the non-background parsing.
    face_box:    (x0, y0, x1, y1) int pixels, x1/y1 exclusive, or None when no face is visible. Source:
                 MediaPipe face detection, else the bounding box of the parsing's face label.
    warnings:    human-readable notes for the user (several people, parts outside the photo, ...).
    sources:     for each field name above, where its value came from (e.g. "mediapipe", "parser",
                 "derived", "dataset").
    """

    keypoints: np.ndarray
    parsing: np.ndarray
    body_parts: np.ndarray
    person_mask: np.ndarray
    face_box: Box | None
    warnings: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the photo the maps belong to."""
        return self.parsing.shape[0], self.parsing.shape[1]


_PARSER_LOCK = threading.Lock()
_PARSERS: dict[str, HumanParser] = {}


def load_parser(weights: str | Path | None = None) -> HumanParser:
    """The human parser from `weights` (a folder), or the shipped weights, for inference (BatchNorm fused into
    the convolutions: `HumanParser.fuse_batchnorm`); loaded once per folder.

    Raises `fipviton.errors.WeightsError` when the weights are missing.
    """
    from fipviton.analysis.parser import HumanParser

    key = str(weights) if weights is not None else ""
    with _PARSER_LOCK:
        if key not in _PARSERS:
            _PARSERS[key] = HumanParser.from_pretrained(weights).fuse_batchnorm()
        return _PARSERS[key]


def parse_photo(parser: HumanParser, image: np.ndarray) -> np.ndarray:
    """Internal labels (H, W) uint8 of an RGB photo (H, W, 3) of any size, at full resolution.

    The parser sees its input size (256x192) whatever the photo. Its own `parse` resizes the 13-channel
    logits to the photo's size in torch and takes the argmax over channels there, which costs ~0.5 s for a
    1024x768 photo on this CPU. Here the photo is shrunk to fit the input size first, and the argmax of the
    bilinearly upsampled logits is taken without upsampling them everywhere (`upsampled_argmax`).
    """
    h, w = image.shape[:2]
    th, tw = parser.config.input_size
    scale = min(th / h, tw / w)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    else:
        small = image
    logits = parser.predict_logits([small])[0]  # (labels, h', w') at the small image's size
    channels_last = np.ascontiguousarray(logits.numpy().transpose(1, 2, 0), dtype=np.float32)
    return upsampled_argmax(channels_last, (h, w))


def _source_cells(source: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each of `target` output positions: the two source positions and the weight of the second, as
    `cv2.resize(..., INTER_LINEAR)` samples them (pixel centres aligned, edges clamped)."""
    position = (np.arange(target, dtype=np.float64) + 0.5) * (source / target) - 0.5
    first = np.floor(position)
    weight = (position - first).astype(np.float32)
    first = first.astype(np.intp)
    clamped = (first < 0) | (first >= source - 1)
    weight[clamped] = 0.0
    first = np.clip(first, 0, source - 1)
    return first, np.minimum(first + 1, source - 1), weight


def upsampled_argmax(scores: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The argmax over channels (H, W) uint8 of `scores` (h, w, C) float32 bilinearly resized to `size` (H, W).

    The same labels as `cv2.resize(scores, (W, H), interpolation=cv2.INTER_LINEAR).argmax(axis=2)`, 2-3x
    faster at 4x upsampling: a bilinear value is a convex combination of its four source corners, so where
    the corners share their argmax the result has it too. Only the pixels between corners that disagree
    (the label borders) are interpolated. C <= 255.
    """
    h, w, _ = scores.shape
    out_h, out_w = size
    labels = scores.argmax(axis=2).astype(np.uint8)
    right = np.concatenate([labels[:, 1:], labels[:, -1:]], axis=1)
    below = np.concatenate([labels[1:], labels[-1:]], axis=0)
    below_right = np.concatenate([right[1:], right[-1:]], axis=0)
    mixed = np.uint8(255)
    cell = np.where((labels == right) & (labels == below) & (labels == below_right), labels, mixed)
    top, bottom, weight_y = _source_cells(h, out_h)
    left, right_col, weight_x = _source_cells(w, out_w)
    out = np.take(cell[top], left, axis=1)
    ys, xs = np.nonzero(out == mixed)
    if ys.size:
        wy, wx = weight_y[ys, None], weight_x[xs, None]
        t, b, lc, rc = top[ys], bottom[ys], left[xs], right_col[xs]
        upper = scores[t, lc] * (1.0 - wx) + scores[t, rc] * wx
        lower = scores[b, lc] * (1.0 - wx) + scores[b, rc] * wx
        out[ys, xs] = (upper * (1.0 - wy) + lower * wy).argmax(axis=1)
    return out


def face_box_from_parsing(parsing: np.ndarray) -> Box | None:
    """Bounding box (x0, y0, x1, y1) of the largest face-labelled region of a parsing (H, W), or None."""
    face = (parsing == Label.FACE).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(face, connectivity=8)
    if count <= 1:
        return None
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[i, cv2.CC_STAT_AREA] < 16:
        return None
    x, y, w, h = (int(v) for v in stats[i, :4])
    return (x, y, x + w, y + h)


def restrict_to_person(parsing: np.ndarray, person_mask: np.ndarray) -> np.ndarray:
    """Parsing (H, W) with labels farther than 2 % of the image size from the person mask set to background.

    parsing (H, W) uint8 internal labels; person_mask (H, W) bool. The distance is Euclidean (an exact
    distance transform: 8 ms at 1024x768, where a dilation by a disc of that radius takes 20-30 ms).
    """
    h, w = person_mask.shape
    radius = max(3, round(0.02 * max(h, w)))
    outside = np.logical_not(person_mask).view(np.uint8)
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    near = cv2.compare(distance, float(radius), cv2.CMP_LE)  # 255 within the radius, else 0
    restricted = np.full_like(parsing, Label.BACKGROUND)
    cv2.copyTo(parsing, near, restricted)
    return restricted


_POSE_WORKER: ThreadPoolExecutor | None = None
_POSE_WORKER_LOCK = threading.Lock()


def _pose_worker() -> ThreadPoolExecutor:
    """One thread for pose estimation (MediaPipe's graphs serve one call at a time anyway)."""
    global _POSE_WORKER
    with _POSE_WORKER_LOCK:
        if _POSE_WORKER is None:
            _POSE_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fipviton-pose")
        return _POSE_WORKER


def analyze_person(
    image: np.ndarray,
    parser: HumanParser | None = None,
    category: Category | str | None = Category.UPPER_BODY,
) -> PersonAnalysis:
    """Analyse a person photo: RGB uint8 (H, W, 3), any size.

    parser:   a loaded `HumanParser`; None loads the shipped weights (`WeightsError` when they are absent).
    category: the garment category to be tried on; it decides which body parts must be visible (see
              `fipviton.analysis.pose`); None only requires a large enough person.
    Raises `NoPersonError` when there is no usable person.
    """
    if parser is None:
        parser = load_parser()
    # Pose (MediaPipe's native graph) and parser (torch) release the GIL: run them side by side. 1024x768
    # photo, 2-core CPU: 95 instead of 135 ms with one torch thread, 133 instead of 139 with two.
    pose_result = _pose_worker().submit(estimate_pose, image, category)
    try:
        parsing = parse_photo(parser, image)
    except BaseException:
        pose_result.result()  # a NoPersonError says more than a parser failure on the same photo
        raise
    pose = pose_result.result()
    # Labels far from MediaPipe's silhouette are parser mistakes on the background, or other people.
    parsing = restrict_to_person(parsing, pose.person_mask)
    body_parts = derive_body_parts(parsing, pose.keypoints, pose.person_mask)
    face_box = pose.face_box
    face_source = "mediapipe"
    if face_box is None:
        face_box, face_source = face_box_from_parsing(parsing), "parser"
    return PersonAnalysis(
        keypoints=pose.keypoints,
        parsing=parsing,
        body_parts=body_parts,
        person_mask=pose.person_mask,
        face_box=face_box,
        warnings=list(pose.warnings),
        sources={
            "keypoints": "mediapipe",
            "parsing": "parser",
            "body_parts": "derived",
            "person_mask": "mediapipe",
            "face_box": face_source if face_box is not None else "none",
        },
    )


def analysis_from_sample(
    sample: TryOnSample,
    parser: HumanParser | None = None,
    body_parts: np.ndarray | None = None,
) -> PersonAnalysis:
    """A `PersonAnalysis` of a dataset sample's person: its own maps where present, estimates elsewhere.

    body_parts: an explicit body-part map (H, W), e.g. `fipviton.analysis.densepose.read_dataset_body_parts`
                (which also decodes VITON-HD `image-densepose`); otherwise the sample's own (DressCode `dense`),
                or derived from parsing and keypoints.
    The parser (loaded when needed and `parser` is None) is only used for samples without a parsing; pose is
    only estimated for samples without keypoints.
    """
    image = sample.person
    warnings: list[str] = []
    sources: dict[str, str] = {}
    pose = None
    if sample.keypoints is not None and (sample.keypoints[:, 2] > 0).any():
        keypoints = sample.keypoints.astype(np.float32)
        sources["keypoints"] = "dataset"
    else:
        pose = estimate_pose(image, category=None)
        keypoints = pose.keypoints
        warnings.extend(pose.warnings)
        sources["keypoints"] = "mediapipe"
    if sample.parsing is not None:
        parsing = sample.parsing
        sources["parsing"] = "dataset"
    else:
        parsing = parse_photo(parser or load_parser(), image)
        sources["parsing"] = "parser"
    if body_parts is not None:
        parts, sources["body_parts"] = body_parts, "dataset"
    elif sample.body_parts is not None:
        parts, sources["body_parts"] = sample.body_parts, "dataset"
    else:
        parts = derive_body_parts(parsing, keypoints, pose.person_mask if pose is not None else None)
        sources["body_parts"] = "derived"
    if sample.parsing is not None:
        person_mask = parsing != Label.BACKGROUND
        sources["person_mask"] = "dataset"
    else:
        if pose is None:
            pose = estimate_pose(image, category=None)
        person_mask = pose.person_mask
        sources["person_mask"] = "mediapipe"
    face_box = face_box_from_parsing(parsing)
    sources["face_box"] = "parsing" if face_box is not None else "none"
    if face_box is None and pose is not None and pose.face_box is not None:
        face_box, sources["face_box"] = pose.face_box, "mediapipe"
    return PersonAnalysis(
        keypoints=keypoints,
        parsing=parsing,
        body_parts=parts,
        person_mask=person_mask,
        face_box=face_box,
        warnings=warnings,
        sources=sources,
    )


def keypoints_to_openpose(keypoints: np.ndarray, warnings: list[str] | None = None) -> dict:
    """An OpenPose-style JSON object for COCO-18 keypoints (18, 3): one person, `pose_keypoints_2d` flat."""
    flat = [round(float(v), 3) for v in keypoints.reshape(-1)]
    out: dict = {
        "version": 1.3,
        "keypoint_format": "COCO-18",
        "keypoint_names": [k.name.lower() for k in Keypoint],
        "people": [{"person_id": [-1], "pose_keypoints_2d": flat}],
    }
    if warnings:
        out["warnings"] = list(warnings)
    return out


def cut_analysis(analysis: PersonAnalysis, window: Window) -> PersonAnalysis:
    """The analysis of a window (top, left, height, width) of the analysed photo, cut from the whole photo's:
    maps cropped, keypoints and face box moved into the window's pixels (points outside it become missing)."""
    top, left, height, width = window
    return PersonAnalysis(
        keypoints=shift_keypoints(analysis.keypoints, -left, -top, (height, width)),
        parsing=crop(analysis.parsing, window).copy(),
        body_parts=crop(analysis.body_parts, window).copy(),
        person_mask=crop(analysis.person_mask, window).copy(),
        face_box=shift_box(analysis.face_box, -left, -top, (height, width)),
        warnings=list(analysis.warnings),
        sources=dict(analysis.sources),
    )


def reanalyze_window(
    analysis: PersonAnalysis, image: np.ndarray, window: Window, parser: HumanParser | None = None
) -> PersonAnalysis:
    """The analysis of a window of a photo that `analyze_person` analysed, with the parser run again on it.

    image: the analysed RGB uint8 (H, W, 3) photo; window: (top, left, height, width) inside it. The parser
    sees the photo at its input size (256x192), so on a window several times smaller than the photo it sees
    the person several times larger; pose, person mask and face box are the whole photo's, cut to the window
    (MediaPipe found them on the whole photo already: running it again would cost ~65 ms for the same points).
    The body-part map is derived again from the new parsing.
    """
    cut = cut_analysis(analysis, window)
    parsing = restrict_to_person(parse_photo(parser or load_parser(), crop(image, window)), cut.person_mask)
    cut.parsing = parsing
    cut.body_parts = derive_body_parts(parsing, cut.keypoints, cut.person_mask)
    if analysis.sources.get("face_box") == "parser":
        cut.face_box = face_box_from_parsing(parsing)
    return cut
