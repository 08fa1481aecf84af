"""Import CamVid into the official Cityscapes layout, mapping its classes by name.

Two source layouts are read:

- **SegNet 11-class** (what most users find): `train/`, `trainannot/`, `val/`, `valannot/`
  (optionally `test/`, `testannot/`), RGB PNGs and 8-bit class-index PNGs of the same names
  (`0001TP_006690.png`). Index 0..10 are the classes of `CAMVID11_CLASSES`, 11 is Unlabelled.
- **Original 32-class colour release** (what Cambridge distributes): `label_colors.txt`
  (`R G B<tab>Name` per line), `LabeledApproved_full/<stem>_L.png` colour-coded labels and
  the photos in `701_StillsRaw_full/<stem>.png`. It has no split: every frame goes to the
  official `train` split; choose validation and test drives by name with
  `cityseg split --val-cities NAMES --test-cities NAMES`.

Each CamVid class becomes a Cityscapes label **by name** through `cityscapesscripts`
(`name2label`), so the labelIds PNGs are read like any Cityscapes tree. The drive (the
sequence prefix, `0001TP`) becomes the city: `0001TP_006690.png` is written as
`leftImg8bit/<split>/0001TP/0001TP_000000_006690_leftImg8bit.png`.

Caveats (also in the README): CamVid's Bicyclist holds the rider *and* the bicycle (both
become `rider`, category human); Car includes trucks and buses in the 11-class form; there
is no ego-vehicle or out-of-ROI void, so the bottom rows are mostly Unlabelled (void).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import labels as _OFFICIAL_LABELS
from cityscapesscripts.helpers.labels import name2label
from PIL import Image

from cityseg.data.cityscapes import (
    IMAGE_SUFFIX,
    LABEL_SUFFIX,
    DataError,
    read_image,
    read_single_channel,
)

log = logging.getLogger(__name__)

# SegNet's 11-class CamVid: index -> class name (index 11 is Unlabelled, void).
CAMVID11_CLASSES: tuple[str, ...] = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
    "Unlabelled",
)

# CamVid class name -> Cityscapes label name (resolved through cityscapesscripts' table).
# The 11-class names first, then the 32 classes of the original release.
CAMVID_TO_CITYSCAPES: dict[str, str] = {
    "Sky": "sky",
    "Building": "building",
    "Pole": "pole",
    "Road": "road",
    "Pavement": "sidewalk",
    "Tree": "vegetation",
    "SignSymbol": "traffic sign",
    "Fence": "fence",
    "Car": "car",
    "Pedestrian": "person",
    "Bicyclist": "rider",  # rider and bicycle together: category human
    "Unlabelled": "unlabeled",
    # the original 32 classes (label_colors.txt)
    "Animal": "dynamic",  # Cityscapes has no animal class; its void "dynamic" is closest
    "Archway": "building",
    "Bridge": "bridge",
    "CartLuggagePram": "dynamic",
    "Child": "person",
    "Column_Pole": "pole",
    "LaneMkgsDriv": "road",
    "LaneMkgsNonDriv": "sidewalk",  # as SegNet's 11-class merge does
    "Misc_Text": "traffic sign",
    "MotorcycleScooter": "motorcycle",
    "OtherMoving": "car",
    "ParkingBlock": "sidewalk",  # as SegNet's 11-class merge does
    "RoadShoulder": "road",
    "Sidewalk": "sidewalk",
    "SUVPickupTruck": "car",
    "TrafficCone": "static",  # no Cityscapes class: void
    "TrafficLight": "traffic light",
    "Train": "train",
    "Truck_Bus": "truck",
    "Tunnel": "tunnel",
    "VegetationMisc": "vegetation",
    "Void": "unlabeled",
    "Wall": "wall",
}

LABEL_COLORS_FILE = "label_colors.txt"
COLOUR_LABEL_DIR = "LabeledApproved_full"
COLOUR_IMAGE_DIR = "701_StillsRaw_full"
SEGNET_SPLITS: tuple[tuple[str, str, str], ...] = (
    # CamVid folder, its annotation folder, the official Cityscapes split it becomes
    ("train", "trainannot", "train"),
    ("val", "valannot", "val"),
    ("test", "testannot", "test"),
)
_NAME = re.compile(r"^(?P<drive>[A-Za-z0-9]+)_(?P<frame>[A-Za-z]*\d+)$")

# Official label colours for the gtFine colour PNGs (as json2labelImg writes them).
_COLOR_LUT = np.zeros((256, 3), np.uint8)
for _lab in _OFFICIAL_LABELS:
    if _lab.id >= 0:
        _COLOR_LUT[_lab.id] = _lab.color


def cityscapes_id(camvid_class: str, *, source: str = "CamVid class table") -> int:
    """The Cityscapes label id of a CamVid class name; DataError naming `source` if unknown."""
    target = CAMVID_TO_CITYSCAPES.get(camvid_class)
    if target is None:
        raise DataError(
            f"{source}: CamVid class {camvid_class!r} has no Cityscapes mapping; known: "
            f"{sorted(CAMVID_TO_CITYSCAPES)}"
        )
    return int(name2label[target].id)


# index of the 11-class annotation -> Cityscapes label id
CAMVID11_LUT: np.ndarray = np.array([cityscapes_id(n) for n in CAMVID11_CLASSES], np.uint8)


@dataclass(frozen=True)
class Frame:
    """One CamVid frame to convert: its photo, its annotation and where it goes."""

    image: Path
    annotation: Path
    split: str  # official Cityscapes split
    city: str  # the drive
    stem: str  # <city>_<seq>_<frame> in the output


@dataclass(frozen=True)
class ImportResult:
    """What `import_camvid` wrote."""

    root: Path
    layout: str  # segnet11 | colour32
    counts: dict[str, dict[str, int]]  # official split -> city -> frames


def detect_layout(src: Path) -> str:
    """`segnet11` or `colour32` from the folders present; DataError naming `src` otherwise."""
    if not src.is_dir():
        raise DataError(f"CamVid source {src} does not exist or is not a folder")
    if (src / "train").is_dir() and (src / "trainannot").is_dir():
        return "segnet11"
    if (src / LABEL_COLORS_FILE).is_file() and (src / COLOUR_LABEL_DIR).is_dir():
        return "colour32"
    found = sorted(p.name for p in src.iterdir())[:12]
    raise DataError(
        f"{src}: not a CamVid folder (found {found}); expected train/ + trainannot/ "
        f"(SegNet 11-class) or {LABEL_COLORS_FILE} + {COLOUR_LABEL_DIR}/ + "
        f"{COLOUR_IMAGE_DIR}/ (original 32-class release)"
    )


def output_stem(name: str, source: Path) -> tuple[str, str]:
    """(city, stem) for a CamVid file stem: `0001TP_006690` -> (`0001TP`, `0001TP_000000_006690`)."""
    match = _NAME.match(name)
    if match is None:
        raise DataError(
            f"{source}: name {name!r} is not <drive>_<frame> (e.g. 0001TP_006690, Seq05VD_f00000)"
        )
    digits = re.sub(r"\D", "", match.group("frame"))
    return match.group("drive"), f"{match.group('drive')}_000000_{int(digits):06d}"


def _pngs(folder: Path) -> dict[str, Path]:
    return {
        p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() == ".png" and p.is_file()
    }


def _pair(
    images: dict[str, Path], annots: dict[str, Path], split: str, annot_dir: Path, suffix: str
) -> list[Frame]:
    """One frame per image (sorted by name) with its annotation `annots[name]`; DataError naming
    the image and the file expected (`annot_dir/<name><suffix>.png`) when one is missing."""
    frames: list[Frame] = []
    for name in sorted(images):
        if name not in annots:
            raise DataError(
                f"{images[name]}: annotation missing; expected {annot_dir / name}{suffix}.png"
            )
        city, stem = output_stem(name, images[name])
        frames.append(Frame(images[name], annots[name], split, city, stem))
    return frames


def _segnet_frames(src: Path) -> list[Frame]:
    frames: list[Frame] = []
    for image_dir, annot_dir, split in SEGNET_SPLITS:
        if not (src / image_dir).is_dir():
            continue
        if not (src / annot_dir).is_dir():
            raise DataError(f"{src / image_dir}: no annotation folder {src / annot_dir}")
        images, annots = _pngs(src / image_dir), _pngs(src / annot_dir)
        orphans = sorted(set(annots) - set(images))
        if orphans:
            name = orphans[0]
            raise DataError(
                f"{annots[name]}: annotation without image {src / image_dir / name}.png"
            )
        frames += _pair(images, annots, split, src / annot_dir, "")
    return frames


def _colour_frames(src: Path) -> list[Frame]:
    label_dir, image_dir = src / COLOUR_LABEL_DIR, src / COLOUR_IMAGE_DIR
    if not image_dir.is_dir():
        raise DataError(f"{src}: photo folder {image_dir} missing (the 701_StillsRaw_full photos)")
    images, annots = _pngs(image_dir), _pngs(label_dir)
    by_image = {}
    for name, path in annots.items():
        if not name.endswith("_L"):
            raise DataError(f"{path}: expected colour labels named <frame>_L.png")
        if name[:-2] not in images:
            raise DataError(f"{path}: annotation without image {image_dir / name[:-2]}.png")
        by_image[name[:-2]] = path
    return _pair(images, by_image, "train", label_dir, "_L")


def read_label_colors(path: Path) -> dict[tuple[int, int, int], int]:
    """`label_colors.txt` -> {RGB: Cityscapes label id}; DataError naming the file and line."""
    table: dict[tuple[int, int, int], int] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise DataError(f"{path}: unreadable ({err})") from err
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            rgb = (int(parts[0]), int(parts[1]), int(parts[2]))
            name = parts[3]
        except (IndexError, ValueError) as err:
            raise DataError(f"{path}:{number}: expected 'R G B Name', got {line!r}") from err
        if not all(0 <= v <= 255 for v in rgb):
            raise DataError(f"{path}:{number}: colour {rgb} outside 0..255")
        table[rgb] = cityscapes_id(name, source=f"{path}:{number}")
    if not table:
        raise DataError(f"{path}: no colours listed")
    return table


def _colour_lut(table: dict[tuple[int, int, int], int]) -> tuple[np.ndarray, np.ndarray]:
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in table], np.int64)
    order = np.argsort(keys)
    return keys[order], np.array(list(table.values()), np.uint8)[order]


def index_to_ids(index: np.ndarray, source: Path) -> np.ndarray:
    """11-class annotation (H, W) -> Cityscapes label ids; DataError naming `source` if > 11."""
    if index.max(initial=0) >= len(CAMVID11_CLASSES):
        bad = sorted(int(v) for v in np.unique(index[index >= len(CAMVID11_CLASSES)]))[:10]
        raise DataError(
            f"{source}: class values {bad} out of range; the 11-class CamVid annotation holds "
            f"0..{len(CAMVID11_CLASSES) - 1}"
        )
    return CAMVID11_LUT[index]


def colours_to_ids(rgb: np.ndarray, lut: tuple[np.ndarray, np.ndarray], source: Path) -> np.ndarray:
    """Colour-coded annotation (H, W, 3) -> Cityscapes label ids; DataError on unknown colours."""
    keys, ids = lut
    packed = (
        (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    )
    pos = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
    unknown = keys[pos] != packed
    if unknown.any():
        bad = [
            (int(v) >> 16, (int(v) >> 8) & 255, int(v) & 255) for v in np.unique(packed[unknown])
        ][:5]
        raise DataError(f"{source}: colours {bad} are not in {LABEL_COLORS_FILE}")
    return ids[pos]


def _read_annotation(path: Path, colour: bool) -> np.ndarray:
    if colour:
        return read_image(path, name="annotation")
    array = read_single_channel(
        path, name="annotation", mode_name="annotation", expected="class-index PNG"
    )
    if array.min(initial=0) < 0:
        raise DataError(f"{path}: negative class values")
    return array.astype(np.int64)


def _convert(task: tuple[Frame, Path, tuple[np.ndarray, np.ndarray] | None]) -> None:
    frame, out, lut = task
    image = read_image(frame.image)
    annotation = _read_annotation(frame.annotation, colour=lut is not None)
    if annotation.shape[:2] != image.shape[:2]:
        raise DataError(
            f"{frame.annotation}: annotation is {annotation.shape[1]}x{annotation.shape[0]} but "
            f"its image {frame.image} is {image.shape[1]}x{image.shape[0]}; expected the same size"
        )
    ids = (
        index_to_ids(annotation, frame.annotation)
        if lut is None
        else colours_to_ids(annotation, lut, frame.annotation)
    )
    image_dir = out / "leftImg8bit" / frame.split / frame.city
    label_dir = out / "gtFine" / frame.split / frame.city
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(image_dir / f"{frame.stem}{IMAGE_SUFFIX}", compress_level=1)
    Image.fromarray(ids).save(label_dir / f"{frame.stem}{LABEL_SUFFIX}")
    Image.fromarray(_COLOR_LUT[ids]).save(label_dir / f"{frame.stem}_gtFine_color.png")


def import_camvid(src: str | Path, out: str | Path, *, workers: int = 1) -> ImportResult:
    """Convert a CamVid folder (either layout) into `out` in the official Cityscapes layout.

    Every problem (annotation missing, class value out of range or unknown colour, image and
    annotation of different sizes, a name that is not `<drive>_<frame>`) raises a DataError
    naming the file. Frames are checked before anything is written only for names and pairing;
    decoding errors stop the import at the first bad file.
    """
    src, out = Path(src), Path(out)
    layout = detect_layout(src)
    frames = _segnet_frames(src) if layout == "segnet11" else _colour_frames(src)
    if not frames:
        raise DataError(f"{src}: no CamVid frames found ({layout} layout)")
    seen: dict[str, Path] = {}
    for frame in frames:
        if frame.stem in seen:
            raise DataError(f"{frame.image}: same frame name as {seen[frame.stem]}")
        seen[frame.stem] = frame.image
    lut = _colour_lut(read_label_colors(src / LABEL_COLORS_FILE)) if layout == "colour32" else None
    tasks = [(f, out, lut) for f in frames]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_convert, tasks, chunksize=8))
    else:
        for task in tasks:
            _convert(task)
    counts: dict[str, dict[str, int]] = {}
    for frame in frames:
        per_city = counts.setdefault(frame.split, {})
        per_city[frame.city] = per_city.get(frame.city, 0) + 1
    (out / "camvid_import.json").write_text(
        json.dumps(
            {
                "source": str(src.resolve()),
                "layout": layout,
                "counts": counts,
                "class_to_cityscapes": {
                    k: v
                    for k, v in CAMVID_TO_CITYSCAPES.items()
                    if layout == "colour32" or k in CAMVID11_CLASSES
                },
            },
            indent=1,
        )
    )
    log.info("imported %d CamVid frames (%s) into %s", len(frames), layout, out)
    return ImportResult(out, layout, counts)


def drives(counts: dict[str, dict[str, int]]) -> Sequence[str]:
    """Sorted drive (city) names over all splits of an import."""
    return sorted({city for per_city in counts.values() for city in per_city})
