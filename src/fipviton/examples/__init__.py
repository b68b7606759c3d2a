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
    """The demo pairs listed in `pairs.txt` (tab-separated: person, garment, category)."""
    pairs = []
    for line in (EXAMPLES_DIR / "pairs.txt").read_text().splitlines():
        if not line.strip():
            continue
        person, garment, category = line.split("\t")
        pairs.append(
            ExamplePair(EXAMPLES_DIR / "person" / person, EXAMPLES_DIR / "garment" / garment, Category(category))
        )
    return pairs
