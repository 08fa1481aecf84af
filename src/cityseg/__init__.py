"""cityseg: semantic segmentation of street scenes into the 8 Cityscapes categories."""

__version__ = "0.1.0"
