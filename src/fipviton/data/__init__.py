"""Dataset layer: readers for VITON 256x192, VITON-HD and DressCode, yielding one common sample type."""
