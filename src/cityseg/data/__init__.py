"""Data layer: Cityscapes reader, labels, splits, synthetic cities, generator, augmentation."""
