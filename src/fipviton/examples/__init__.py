"""The bundled example pairs (VITON-HD test samples, CC BY-NC 4.0; see NOTICE.md in this folder)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fipviton.data.sample import Category

EXAMPLES_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ExamplePair:
    person: Path
    garment: Path
    category: Category

    @property
    def name(self) -> str:
        return f"{self.person.stem}__{self.garment.stem}"


def example_pairs() -> list[ExamplePair]:
    """The demo pairs listed in `pairs.txt` (a photo folder's list: `person/NAME garment/NAME category`, the form
    `fipviton try-on --data DIR --pairs pairs.txt` and `fipviton eval tryon --pairs unpaired --data DIR` read)."""
    from fipviton.data.pairs import read_photo_pairs

    pairs = read_photo_pairs(EXAMPLES_DIR / "pairs.txt", Category.UPPER_BODY, allow_subfolders=True)
    return [ExamplePair(EXAMPLES_DIR / pair.person, EXAMPLES_DIR / pair.garment, pair.category) for pair in pairs]
