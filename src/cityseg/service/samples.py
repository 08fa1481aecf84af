"""The test-split images the model was evaluated on, as served by /v1/samples.

Only paths listed in the split manifest are ever opened; clients name a sample by an opaque
id (a hash of its image path), never by a path.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from cityseg.data import labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleRef:
    """One test image and its ground truth (label ids PNG), named by an opaque id."""

    id: str
    name: str
    city: str
    image: Path
    label: Path | None

    def read_image(self) -> np.ndarray:
        """RGB uint8 (H, W, 3)."""
        with Image.open(self.image) as image:
            return np.asarray(image.convert("RGB"))

    def read_label_ids(self) -> np.ndarray | None:
        """Official label ids uint8 (H, W), or None when the sample has no ground truth."""
        if self.label is None:
            return None
        with Image.open(self.label) as image:
            return np.asarray(image)

    def read_categories(self) -> np.ndarray | None:
        """Ground truth as categories 0..7, or None."""
        ids = self.read_label_ids()
        return None if ids is None else labels.to_categories(ids, source=str(self.label))


def sample_id(image: Path) -> str:
    """Opaque, stable id of a sample: 12 hex digits of the hash of its image path."""
    return hashlib.sha1(str(image).encode()).hexdigest()[:12]


def make_ref(image: str | Path, label: str | Path | None, city: str = "") -> SampleRef:
    """A `SampleRef` for an image (and its label ids PNG)."""
    image = Path(image)
    name = image.name.removesuffix("_leftImg8bit.png").removesuffix(image.suffix)
    return SampleRef(
        id=sample_id(image),
        name=name,
        city=city or image.parent.name,
        image=image,
        label=Path(label) if label else None,
    )


class SampleStore:
    """Test samples by id, in manifest order."""

    def __init__(self, refs: list[SampleRef], source: Path | None = None) -> None:
        self.refs = list(refs)
        self.by_id = {ref.id: ref for ref in self.refs}
        self.source = source

    def __len__(self) -> int:
        return len(self.refs)

    def get(self, sid: str) -> SampleRef | None:
        """The sample with this id, or None."""
        return self.by_id.get(sid)

    @classmethod
    def empty(cls) -> SampleStore:
        """No samples (no manifest found)."""
        return cls([])

    @classmethod
    def from_manifest(cls, path: Path) -> SampleStore:
        """The test split of a manifest written by `cityseg.data.split`."""
        from cityseg.data.split import load_manifest

        manifest = load_manifest(path)
        refs = [
            make_ref(s.image, getattr(s, "label", None), getattr(s, "city", ""))
            for s in manifest.test
        ]
        present = [ref for ref in refs if ref.image.is_file()]
        if len(present) < len(refs):
            # A manifest written from another working directory: say so, serve what exists.
            log.warning(
                "%s: %d of %d test images missing (first: %s)",
                path,
                len(refs) - len(present),
                len(refs),
                next(ref.image for ref in refs if not ref.image.is_file()),
            )
        log.info("%d test samples from %s", len(present), path)
        return cls(present, source=path)


def manifest_for(model_path: Path | None) -> Path | None:
    """The split manifest named by the config.yaml of a run (or of an export's run folder)."""
    if model_path is None:
        return None
    folder = model_path if model_path.is_dir() else model_path.parent
    for candidate in (folder, folder.parent):
        config_file = candidate / "config.yaml"
        if config_file.is_file():
            config = yaml.safe_load(config_file.read_text()) or {}
            data: dict[str, Any] = config.get("data") or {}
            if data.get("manifest"):
                return Path(data["manifest"])
            if data.get("root"):
                return Path(data["root"]) / "split.json"
    return None
