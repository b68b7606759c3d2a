"""The one safetensors writer of every learned module."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from fipviton.weights_file import write_weights


def test_write_weights_casts_floats_keeps_integers_and_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"old weights")
    state = {"weight": torch.randn(3, 4, requires_grad=True), "steps": torch.tensor(7), "view": torch.ones(4, 4).t()}
    write_weights(state, path, torch.float16)

    stored = load_file(str(path))
    assert stored["weight"].dtype == torch.float16 and stored["steps"].dtype == torch.int64
    assert torch.equal(stored["weight"], state["weight"].detach().half()) and int(stored["steps"]) == 7
    assert torch.equal(stored["view"], torch.ones(4, 4).half())  # a non-contiguous view is written, not refused
    with safe_open(str(path), "pt") as handle:
        assert handle.metadata() == {"format": "pt"}
    # The same tensors, the same bytes (a file re-saved unchanged is not a change).
    first = path.read_bytes()
    for _ in range(8):
        write_weights(state, path, torch.float16)
        assert path.read_bytes() == first
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temporary file left behind

    write_weights(state, path)  # no dtype: every tensor keeps its own
    assert load_file(str(path))["weight"].dtype == torch.float32
