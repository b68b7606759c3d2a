"""Dataset layer: readers for VITON 256x192, VITON-HD and DressCode, yielding one common sample type.

`open_dataset(root)` picks the reader for a folder's layout (`detect_layout`); `default_data_root()` is
`$FIPVITON_DATA` or `../shared/data` next to the checkout. The torch `TryOnDataset` lives in
`fipviton.data.torch_dataset` (imported on demand, so that this package does not import torch).
"""

from fipviton.data.pairs import PairList, read_pair_list, unsafe_name_reason
from fipviton.data.readers import (
    LAYOUTS,
    DatasetReader,
    DressCodeReader,
    VitonHDReader,
    VitonReader,
    default_data_root,
    detect_layout,
    open_dataset,
)
from fipviton.data.sample import Category, PairEntry, TryOnSample

__all__ = [
    "LAYOUTS",
    "Category",
    "DatasetReader",
    "DressCodeReader",
    "PairEntry",
    "PairList",
    "TryOnSample",
    "VitonHDReader",
    "VitonReader",
    "default_data_root",
    "detect_layout",
    "open_dataset",
    "read_pair_list",
    "unsafe_name_reason",
]
