"""The 8 Cityscapes categories and the lookup tables built from `cityscapesscripts`.

Everything here is derived from the official label table
(`cityscapesscripts.helpers.labels.labels`), never copied by hand, so a change
upstream shows up here and in the tests.
"""

from __future__ import annotations

import numpy as np
from cityscapesscripts.helpers.labels import labels as _OFFICIAL_LABELS

NUM_CLASSES = 8
IGNORE_INDEX = (
    255  # value of pixels excluded from a score (void / ignoreInEval in the official view)
)

# Category id -> name, read from the official table (categoryId is 0..7).
CATEGORIES: tuple[str, ...] = tuple(
    name for _, name in sorted({(lab.categoryId, lab.category) for lab in _OFFICIAL_LABELS})
)
assert len(CATEGORIES) == NUM_CLASSES, CATEGORIES

# One colour per category for masks and overlays (RGB). Chosen to echo the
# official colour of each category's most common label.
PALETTE: np.ndarray = np.array(
    [
        (0, 0, 0),  # void
        (128, 64, 128),  # flat (road)
        (70, 70, 70),  # construction (building)
        (220, 220, 0),  # object (traffic sign)
        (107, 142, 35),  # nature (vegetation)
        (70, 130, 180),  # sky
        (220, 20, 60),  # human (person)
        (0, 0, 142),  # vehicle (car)
    ],
    dtype=np.uint8,
)

# Official label ids are 0..33 plus -1 (license plate, only in polygons: stored as
# 255 when written into an 8-bit PNG, since uint8(-1) == 255).
LABEL_IDS: tuple[int, ...] = tuple(sorted(lab.id for lab in _OFFICIAL_LABELS))
_INVALID = 254  # marker in the LUTs for a value that is no Cityscapes id


def _lut(value_of) -> np.ndarray:
    lut = np.full(256, _INVALID, dtype=np.uint8)
    for lab in _OFFICIAL_LABELS:
        lut[lab.id & 0xFF] = value_of(lab)
    return lut


# labelId (as stored in a uint8 PNG) -> category id 0..7.
ID_TO_CATEGORY: np.ndarray = _lut(lambda lab: lab.categoryId)
# labelId -> category id for the official evaluation: ignoreInEval labels become
# IGNORE_INDEX, so void (all of whose labels are ignoreInEval) never counts.
ID_TO_EVAL_CATEGORY: np.ndarray = _lut(
    lambda lab: IGNORE_INDEX if lab.ignoreInEval else lab.categoryId
)
# Not a Cityscapes id: a pixel left without a label (where a pseudo-label was not confident,
# `cityseg.data.pseudo`). It maps to IGNORE_INDEX: no loss in training, not scored.
NO_LABEL_ID = 250
assert ID_TO_CATEGORY[NO_LABEL_ID] == _INVALID, "NO_LABEL_ID collides with an official id"
ID_TO_CATEGORY[NO_LABEL_ID] = IGNORE_INDEX
ID_TO_EVAL_CATEGORY[NO_LABEL_ID] = IGNORE_INDEX
VALID_ID: np.ndarray = ID_TO_CATEGORY != _INVALID

# The 7 categories scored by the official category-level benchmark (void excluded).
EVAL_CATEGORIES: tuple[int, ...] = tuple(
    sorted({lab.categoryId for lab in _OFFICIAL_LABELS if not lab.ignoreInEval})
)

# Category -> a representative official label id, so that predictions can be written as
# labelIds PNGs that the official evaluator scores at category level.
_REPRESENTATIVE = {
    "void": "unlabeled",
    "flat": "road",
    "construction": "building",
    "object": "pole",
    "nature": "vegetation",
    "sky": "sky",
    "human": "person",
    "vehicle": "car",
}
_BY_NAME = {lab.name: lab for lab in _OFFICIAL_LABELS}
CATEGORY_TO_ID: np.ndarray = np.array(
    [_BY_NAME[_REPRESENTATIVE[name]].id for name in CATEGORIES], dtype=np.uint8
)
assert all(ID_TO_CATEGORY[CATEGORY_TO_ID[c]] == c for c in range(NUM_CLASSES)), (
    "representative label ids must belong to their category"
)


class InvalidLabelError(ValueError):
    """A label image holds values that are not Cityscapes label ids."""


def to_categories(label_ids: np.ndarray, *, source: str = "label image") -> np.ndarray:
    """Map a uint8 labelIds array to category ids 0..7; raise naming `source` on a bad value."""
    label_ids = np.asarray(label_ids)
    if label_ids.dtype != np.uint8:
        if label_ids.min(initial=0) < -1 or label_ids.max(initial=0) > 255:
            raise InvalidLabelError(f"{source}: values outside 0..255 are no Cityscapes ids")
        label_ids = label_ids.astype(np.int64) & 0xFF
    out = ID_TO_CATEGORY[label_ids]
    if (out == _INVALID).any():
        bad = sorted(int(v) for v in np.unique(label_ids[out == _INVALID]))[:10]
        raise InvalidLabelError(
            f"{source}: values {bad} are no Cityscapes label ids (expected {LABEL_IDS[0]}..{LABEL_IDS[-1]})"
        )
    return out


def to_eval_categories(label_ids: np.ndarray, *, source: str = "label image") -> np.ndarray:
    """Map labelIds to the official evaluation view: categories 1..7, IGNORE_INDEX elsewhere."""
    to_categories(label_ids, source=source)  # validates
    return ID_TO_EVAL_CATEGORY[np.asarray(label_ids).astype(np.int64) & 0xFF]


def categories_to_label_ids(categories: np.ndarray) -> np.ndarray:
    """Map category ids 0..7 to representative official label ids (for labelIds PNGs)."""
    return CATEGORY_TO_ID[np.asarray(categories)]


def colorize(categories: np.ndarray) -> np.ndarray:
    """Category ids (H, W) -> RGB image (H, W, 3) in the category palette."""
    return PALETTE[np.asarray(categories)]
