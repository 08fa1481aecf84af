"""`CityscapesSequence`: the Keras `PyDataset` that feeds training and evaluation.

Each sample is decoded (or read from the on-disk cache), letterboxed to the input size
(image bilinear, mask nearest, void padding), augmented when `augment` names techniques,
and batched as `x float32 (B, H, W, 3)` raw 0..255 (or `preprocess(x)`) and
`y uint8 (B, H, W)` category ids. The order and every augmentation are derived from
`(seed, epoch, sample index)` only, so batches are identical for any number of workers.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cityseg.data import labels
from cityseg.data.augment import build_augmentation
from cityseg.data.cache import SampleCache, build_cache, load_resized
from cityseg.data.cityscapes import Sample

_PASTE_STREAM = 0x5A57E  # a draw stream of its own: pasting never shifts the augmentation's


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of sample `index` in `epoch` (independent of worker and order)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class CityscapesSequence(keras.utils.PyDataset):
    """Batches of (image, category mask) from a list of `Sample`.

    Args:
        samples: labelled samples (e.g. `manifest.train`).
        size: model input `(width, height)`.
        batch_size: samples per batch; the last partial batch is kept.
        augment: technique names from `cityseg.data.augment` (training only).
        preprocess: optional function applied to each float32 batch `x`.
        shuffle: reshuffle the order every epoch (seeded).
        seed: seeds the order and the augmentation.
        cache_dir: if given, decode + resize once into a memory-mapped cache there.
        workers, use_multiprocessing, max_queue_size: passed to `keras.utils.PyDataset`.
        paste: categories copied, pixels and labels, from another sample onto this one
            (copy-paste, as DACS's cross-domain ClassMix): with probability `paste_p` a
            target sample receives every pixel of these categories of a source sample drawn
            for it, each augmented on its own first.
        paste_sources, paste_targets: indices into `samples` that give and that receive
            pasted pixels (default: all); e.g. synthetic frames onto pseudo-labelled real ones.

    Example:
        >>> seq = CityscapesSequence(manifest.train, size=(256, 128), batch_size=8,
        ...                          augment=("hflip",), shuffle=True, workers=2)
        >>> x, y = seq[0]  # (8, 128, 256, 3) float32, (8, 128, 256) uint8
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        *,
        size: tuple[int, int],
        batch_size: int,
        augment: Sequence[str] = (),
        preprocess: Callable[[np.ndarray], np.ndarray] | None = None,
        shuffle: bool = False,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
        progress: bool = True,
        reference_images: Sequence[np.ndarray] = (),
        paste: Sequence[str] = (),
        paste_p: float = 0.5,
        paste_sources: Sequence[int] | None = None,
        paste_targets: Sequence[int] | None = None,
    ) -> None:
        super().__init__(
            workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size
        )
        if not samples:
            raise ValueError("CityscapesSequence needs at least one sample")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: expected >= 1")
        self.samples = list(samples)
        self.size = (int(size[0]), int(size[1]))
        self.batch_size = int(batch_size)
        self.augment = tuple(augment)
        self.reference_images = list(reference_images)  # unlabelled real photos (style only)
        # fail now on an unknown name or a style technique without photos
        build_augmentation(self.augment, self.size, seed, reference_images=self.reference_images)
        self.paste = tuple(paste)
        unknown = sorted(set(self.paste) - set(labels.CATEGORIES))
        if unknown:
            raise ValueError(
                f"data.paste: unknown categories {unknown}; valid: {list(labels.CATEGORIES)}"
            )
        if not 0.0 <= paste_p <= 1.0:
            raise ValueError(f"data.paste_p={paste_p}: expected a probability in 0..1")
        self.paste_p = float(paste_p)
        self._paste_ids = np.array([labels.CATEGORIES.index(n) for n in self.paste], np.uint8)
        everything = range(len(self.samples))
        self.paste_sources = np.array(
            sorted(everything if paste_sources is None else paste_sources), np.int64
        )
        self.paste_targets = frozenset(everything if paste_targets is None else paste_targets)
        if self.paste and not len(self.paste_sources):
            raise ValueError("data.paste: no samples to take the pasted pixels from")
        self.preprocess = preprocess
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0
        self.cache: SampleCache | None = None
        if cache_dir is not None:
            self.cache = build_cache(
                self.samples, self.size, cache_dir, workers=workers, progress=progress
            )
        self._local = threading.local()  # one pipeline per thread: reseeding is not thread-safe
        self.order = self._order()

    def _order(self) -> np.ndarray:
        n = len(self.samples)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, self.epoch]).permutation(n)

    def set_epoch(self, epoch: int) -> None:
        """Jump to `epoch` (e.g. when resuming training): order and augmentation follow."""
        self.epoch = int(epoch)
        self.order = self._order()

    def on_epoch_end(self) -> None:
        """Next epoch: a new order (if shuffling) and new augmentation draws."""
        self.set_epoch(self.epoch + 1)

    def __len__(self) -> int:
        return math.ceil(len(self.samples) / self.batch_size)

    def _pipeline(self) -> Any:
        if not hasattr(self._local, "pipeline"):
            self._local.pipeline = build_augmentation(
                self.augment, self.size, self.seed, reference_images=self.reference_images
            )
        return self._local.pipeline

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample `index` (in `samples` order), resized and augmented for the current epoch."""
        image, mask = self._augmented(index)
        if self.paste and index in self.paste_targets:
            rng = np.random.default_rng([self.seed, self.epoch, index, _PASTE_STREAM])
            if rng.random() < self.paste_p:
                source = int(rng.choice(self.paste_sources))
                pasted_image, pasted_mask = self._augmented(source)
                where = np.isin(pasted_mask, self._paste_ids)
                image = np.where(where[..., None], pasted_image, image)
                mask = np.where(where, pasted_mask, mask)
        return image, mask

    def _augmented(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        sample = self.samples[index]
        if self.cache is not None:
            image, mask = self.cache.get(sample)
        else:
            image, mask = load_resized(sample, self.size)
        pipeline = self._pipeline() if self.augment else None
        if pipeline is not None:
            pipeline.set_random_seed(sample_seed(self.seed, self.epoch, index))
            out = pipeline(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return image, mask

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range 0..{len(self) - 1}")
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        width, height = self.size
        x = np.empty((len(rows), height, width, 3), dtype=np.float32)
        y = np.empty((len(rows), height, width), dtype=np.uint8)
        for i, row in enumerate(rows):
            x[i], y[i] = self.load(int(row))
        if self.preprocess is not None:
            x = np.asarray(self.preprocess(x), dtype=np.float32)
        return x, y

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_local"] = None  # thread-locals cannot be pickled; rebuilt per process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()
