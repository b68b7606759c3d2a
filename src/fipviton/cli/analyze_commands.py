"""`fipviton analyze PERSON [GARMENT] -o DIR [--category upper_body|lower_body|dresses]`.

Writes, for a person photo `NAME.ext` (and optionally a garment photo `GNAME.ext`), into DIR:

- `NAME_keypoints.json`: OpenPose-style JSON, one person, COCO-18 `pose_keypoints_2d` (x, y, confidence);
- `NAME_parsing.png` (colour picture) and `NAME_parsing_labels.png` (raw internal labels, 8-bit grey);
- `NAME_body_parts.png` (rendered like VITON-HD `image-densepose`) and `NAME_body_parts_labels.png` (raw);
- `NAME_person_mask.png`; `NAME_agnostic_mask.png` and `NAME_agnostic.png` for the category;
- `GNAME_garment_mask.png` when GARMENT is given;
- `NAME_overlay.png`: one grid picture that shows all of them.

It never writes next to its inputs: DIR must not be the folder of PERSON or GARMENT, and no output may
replace an input file. Exit codes: 0 done, 1 bad images, no usable person, missing parser weights or an
unsafe output folder, 2 usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fipviton.data.sample import Category
from fipviton.errors import OutputPathError, WeightsError


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    parser = groups[""].add_parser(
        "analyze",
        help="analyse a person photo (and a garment photo): keypoints, parsing, body parts, masks, overlay",
        description=(
            "Estimate keypoints, human parsing, the dense body-part map, the person mask, the agnostic mask for "
            "the garment category and (with GARMENT) the garment mask, and write them with one overlay picture."
        ),
    )
    parser.add_argument("person", type=Path, metavar="PERSON", help="photo of a person")
    parser.add_argument("garment", type=Path, nargs="?", metavar="GARMENT", help="product photo of a garment")
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--category",
        default=Category.UPPER_BODY.value,
        choices=[c.value for c in Category],
        help="garment category (default: upper_body)",
    )
    parser.add_argument(
        "--parser-weights", type=Path, default=None, metavar="DIR", help="human parser weights (default: shipped)"
    )
    parser.set_defaults(func=run_analyze)


def run_analyze(args: argparse.Namespace) -> int:
    import numpy as np

    from fipviton.agnostic import build_agnostic
    from fipviton.analysis.densepose import render_parts
    from fipviton.analysis.garment import analyze_garment
    from fipviton.analysis.overlay import analysis_grid
    from fipviton.analysis.person import analyze_person, keypoints_to_openpose, load_parser
    from fipviton.imageio import check_output_folder, load_image, save_image
    from fipviton.labels import colorize_labels

    inputs = [args.person] + ([args.garment] if args.garment is not None else [])
    check_output_folder(args.out, inputs, allow_inside=True)
    person = load_image(args.person, name=str(args.person))
    garment = load_image(args.garment, name=str(args.garment)) if args.garment is not None else None
    try:
        parser = load_parser(args.parser_weights)  # before any slow work
    except WeightsError as exc:
        hint = "pass --parser-weights DIR" if args.parser_weights is None else "check --parser-weights"
        raise WeightsError(f"the human parser's weights are not available: {exc}; {hint}") from exc

    analysis = analyze_person(person, parser=parser, category=args.category)
    agnostic = build_agnostic(person, analysis.parsing, analysis.keypoints, args.category)
    garment_result = analyze_garment(garment, args.category, parser=parser) if garment is not None else None

    stem = args.person.stem
    outputs: dict[str, np.ndarray] = {
        f"{stem}_parsing.png": colorize_labels(analysis.parsing),
        f"{stem}_parsing_labels.png": analysis.parsing,
        f"{stem}_body_parts.png": render_parts(analysis.body_parts),
        f"{stem}_body_parts_labels.png": analysis.body_parts,
        f"{stem}_person_mask.png": analysis.person_mask.astype(np.uint8) * 255,
        f"{stem}_agnostic_mask.png": agnostic.mask.astype(np.uint8) * 255,
        f"{stem}_agnostic.png": agnostic.image,
    }
    if garment_result is not None and args.garment is not None:
        outputs[f"{args.garment.stem}_garment_mask.png"] = garment_result.mask.astype(np.uint8) * 255
    outputs[f"{stem}_overlay.png"] = analysis_grid(
        person,
        analysis,
        agnostic_image=agnostic.image,
        garment=garment,
        garment_mask=garment_result.mask if garment_result is not None else None,
    )
    warnings = list(analysis.warnings) + (list(garment_result.warnings) if garment_result is not None else [])
    keypoints_name = f"{stem}_keypoints.json"

    resolved_inputs = {p.resolve() for p in inputs}
    for name in [keypoints_name, *outputs]:
        if (args.out / name).resolve() in resolved_inputs:
            raise OutputPathError(f"refusing to overwrite the input {name}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, array in outputs.items():
        save_image(array, args.out / name)
    payload = keypoints_to_openpose(analysis.keypoints, warnings)
    payload["image_size"] = {"width": person.shape[1], "height": person.shape[0]}
    payload["category"] = args.category
    tmp = args.out / f".{keypoints_name}.tmp"
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(args.out / keypoints_name)

    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {len(outputs) + 1} files to {args.out} (overlay: {args.out / f'{stem}_overlay.png'})")
    return 0
