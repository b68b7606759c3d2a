"""Writing a network's weights file: one safetensors writer for every learned module (no pickle)."""

from __future__ import annotations

from pathlib import Path

import torch


def write_weights(state: dict[str, torch.Tensor], path: str | Path, dtype: torch.dtype | None = None) -> None:
    """Write `state` to the safetensors file `path`, atomically (a temporary file renamed over it, so a reader
    never sees half a file and a crash leaves the old weights).

    dtype: store the floating-point tensors in this type (torch.float16: half the file; loading casts them back
    to the model's type); integer tensors (counters, indices) keep theirs. None keeps every tensor's own.
    The same tensors give the same bytes: the metadata holds one key, because safetensors writes its metadata map
    in an order that changes from call to call (a second key, such as the model's class name, made files of
    identical weights differ).
    """
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {}
    for key, value in state.items():
        value = value.detach().to("cpu")
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        tensors[key] = value.contiguous()
    metadata = {"format": "pt"}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)
