"""Person and garment analysis: the human parser, pose, body-part maps, garment masks."""
