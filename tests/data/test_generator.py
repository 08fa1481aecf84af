"""CityscapesSequence: batches, epochs, workers, letterbox, cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from data_trees import make_tree, write_frame
from PIL import Image

from cityseg.bench.loader import iterate_epoch
from cityseg.data import labels
from cityseg.data.augment import list_techniques
from cityseg.data.cache import build_cache, cache_key
from cityseg.data.cityscapes import DataError, list_samples
from cityseg.data.generator import CityscapesSequence, sample_seed
from cityseg.data.resize import fit_box

SIZE = (32, 16)


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list:
    root = make_tree(tmp_path_factory.mktemp("gen"), {"train": ["aachen", "bochum"]}, 5, (64, 32))
    return list_samples(root, "train")  # 10 samples


def _key(x: np.ndarray) -> bytes:
    return x.astype(np.uint8).tobytes()


def test_shapes_dtypes_ranges_and_partial_batch(samples: list) -> None:
    seq = CityscapesSequence(samples, size=SIZE, batch_size=4)
    assert len(seq) == 3  # ceil(10 / 4): the partial batch is kept
    sizes = []
    for i in range(len(seq)):
        x, y = seq[i]
        assert x.dtype == np.float32 and x.shape[1:] == (16, 32, 3)
        assert y.dtype == np.uint8 and y.shape == x.shape[:3]
        assert x.min() >= 0 and x.max() <= 255 and x.max() > 1  # raw 0..255, not normalised
        assert y.max() <= 7
        sizes.append(len(x))
    assert sizes == [4, 4, 2]
    with pytest.raises(IndexError):
        seq[3]


@pytest.mark.parametrize("size", [SIZE, (48, 24), (40, 40)])
def test_labels_resized_nearest_never_blend_two_far_apart_categories(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    # A 2-pixel checkerboard of road (id 7 -> flat 1) and car (id 26 -> vehicle 7): a
    # bilinear label (on ids or on categories) lands between them, on other categories.
    write_frame(tmp_path, "train", "aachen", 0, 0, size=(64, 32))
    (sample,) = list_samples(tmp_path, "train")
    yy, xx = np.indices((32, 64))
    ids = np.where((yy // 2 + xx // 2) % 2 == 0, 7, 26).astype(np.uint8)
    Image.fromarray(ids).save(sample.label)
    _, y = CityscapesSequence([sample], size=size, batch_size=1)[0]
    box = fit_box((64, 32), size)
    inside = y[0, box.top : box.top + box.height, box.left : box.left + box.width]
    assert set(np.unique(inside).tolist()) <= {1, 7}, sorted(np.unique(inside).tolist())
    assert 0.3 < (inside == 7).mean() < 0.7  # both survive, as nearest samples a checkerboard
    outside = np.ones(y[0].shape, bool)
    outside[box.top : box.top + box.height, box.left : box.left + box.width] = False
    assert (y[0][outside] == 0).all()  # letterbox padding is void


def test_every_sample_once_per_epoch_and_reshuffled(samples: list) -> None:
    plain = CityscapesSequence(samples, size=SIZE, batch_size=4)
    reference = sorted(_key(x) for i in range(len(plain)) for x in plain[i][0])
    seq = CityscapesSequence(samples, size=SIZE, batch_size=4, shuffle=True, seed=3)
    orders = []
    for _epoch in range(3):
        seen = [_key(x) for x, _ in iterate_epoch(seq) for x in x]
        assert sorted(seen) == reference  # each sample exactly once, partial batch included
        orders.append(seen)
    assert seq.epoch == 3
    assert orders[0] != orders[1] and orders[1] != orders[2]


def test_letterbox_pads_label_with_void(tmp_path: Path) -> None:
    write_frame(tmp_path, "train", "aachen", 0, 0, size=(32, 32))  # square frame
    seq = CityscapesSequence(list_samples(tmp_path, "train"), size=(32, 16), batch_size=1)
    x, y = seq[0]
    # Scaled to 16x16 and centred: 8 columns of padding each side.
    assert (y[0, :, :8] == 0).all() and (y[0, :, -8:] == 0).all()
    assert (x[0, :, :8] == 0).all() and x[0, :, 8:-8].max() > 0


@pytest.mark.parametrize("multiprocessing", [False, True])
def test_same_batches_for_one_and_two_workers(samples: list, multiprocessing: bool) -> None:
    def epochs(workers: int) -> list[list[np.ndarray]]:
        seq = CityscapesSequence(
            samples, size=SIZE, batch_size=3, augment=tuple(list_techniques()),
            shuffle=True, seed=11, workers=workers, use_multiprocessing=multiprocessing and workers > 1,
        )  # fmt: skip
        return [[a for batch in iterate_epoch(seq) for a in batch] for _ in range(2)]

    one, two = epochs(1), epochs(2)
    for e1, e2 in zip(one, two, strict=True):
        assert len(e1) == len(e2) == 2 * 4
        for a, b in zip(e1, e2, strict=True):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(one[0][0], one[1][0])  # new order / new draws next epoch


def test_augmentation_depends_on_seed_epoch_index_only() -> None:
    assert sample_seed(0, 0, 1) == sample_seed(0, 0, 1)
    assert (
        len(
            {sample_seed(0, 0, 1), sample_seed(0, 1, 1), sample_seed(1, 0, 1), sample_seed(0, 0, 2)}
        )
        == 4
    )


def test_preprocess_is_applied(samples: list) -> None:
    seq = CityscapesSequence(samples, size=SIZE, batch_size=2, preprocess=lambda x: x / 127.5 - 1)
    x, _ = seq[0]
    assert x.dtype == np.float32 and x.min() >= -1 and x.max() <= 1


def test_unknown_augmentation_fails_at_construction(samples: list) -> None:
    with pytest.raises(ValueError, match="valid names"):
        CityscapesSequence(samples, size=SIZE, batch_size=2, augment=("mixup",))


def test_cache_gives_the_same_arrays(samples: list, tmp_path: Path) -> None:
    kwargs = dict(size=SIZE, batch_size=4, shuffle=True, seed=2, augment=("hflip", "rotate"))
    plain = CityscapesSequence(samples, **kwargs)
    cached = CityscapesSequence(samples, cache_dir=tmp_path, progress=False, **kwargs)
    for i in range(len(plain)):
        for a, b in zip(plain[i], cached[i], strict=True):
            np.testing.assert_array_equal(a, b)
    folders = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert len(folders) == 1 and (folders[0] / "images.npy").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp dir renamed
    images = np.load(folders[0] / "images.npy", mmap_mode="r")
    assert images.shape == (10, 16, 32, 3) and images.dtype == np.uint8


def test_cache_invalidated_when_a_file_or_the_size_changes(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data", {"train": ["aachen"]}, 2, (64, 32))
    samples = list_samples(root, "train")
    first = build_cache(samples, SIZE, tmp_path / "cache", progress=False)
    assert build_cache(samples, SIZE, tmp_path / "cache", progress=False).folder == first.folder
    assert cache_key(samples, (16, 8)) != cache_key(samples, SIZE)
    label = samples[0].label
    Image.fromarray(np.full((32, 64), 26, np.uint8)).save(label)  # all "car" now
    stat = label.stat()
    os.utime(label, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second = build_cache(samples, SIZE, tmp_path / "cache", progress=False)
    assert second.folder != first.folder
    _, y = second.get(samples[0])
    assert (y == labels.ID_TO_CATEGORY[26]).all()


def test_cache_built_in_parallel_matches_serial(samples: list, tmp_path: Path) -> None:
    a = build_cache(samples, SIZE, tmp_path / "a", workers=1, progress=False)
    b = build_cache(samples, SIZE, tmp_path / "b", workers=2, progress=False)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.categories, b.categories)


def test_decode_error_at_load_time_names_the_file(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"train": ["aachen"]}, 2)
    samples = list_samples(root, "train")
    samples[1].image.write_bytes(b"\x89PNG broken")
    seq = CityscapesSequence(samples, size=SIZE, batch_size=2)
    with pytest.raises(DataError, match=samples[1].image.name):
        seq[0]


def _build(args: tuple) -> str:
    samples, cache_dir = args
    return str(build_cache(samples, SIZE, cache_dir, workers=1, progress=False).folder)


def test_two_processes_building_the_same_cache(samples: list, tmp_path: Path) -> None:
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2) as pool:
        folders = list(pool.map(_build, [(samples, tmp_path)] * 2))
    assert folders[0] == folders[1]
    assert [p.name for p in tmp_path.iterdir()] == [Path(folders[0]).name]  # no temp left
    cache = build_cache(samples, SIZE, tmp_path, progress=False)
    for sample in samples:
        image, mask = cache.get(sample)
        x, y = CityscapesSequence([sample], size=SIZE, batch_size=1)[0]
        np.testing.assert_array_equal(image, x[0].astype(np.uint8))
        np.testing.assert_array_equal(mask, y[0])


def _two_frames(tmp_path: Path) -> list:
    """Frame 0: a person (human) block on road; frame 1: all sky. Images are their own ids."""
    write_frame(tmp_path, "train", "aachen", 0, 0, size=(32, 16))
    write_frame(tmp_path, "train", "aachen", 0, 1, size=(32, 16))
    source, target = list_samples(tmp_path, "train")
    ids = np.full((16, 32), 7, np.uint8)  # road
    ids[4:12, 10:16] = 24  # person
    Image.fromarray(ids).save(source.label)
    Image.fromarray(np.stack([ids * 10] * 3, -1)).save(source.image)
    Image.fromarray(np.full((16, 32), 23, np.uint8)).save(target.label)  # sky
    Image.fromarray(np.full((16, 32, 3), 200, np.uint8)).save(target.image)
    return [source, target]


def test_copy_paste_puts_the_source_pixels_and_labels_onto_the_target_only(
    tmp_path: Path,
) -> None:
    pair = _two_frames(tmp_path)
    human, sky = labels.CATEGORIES.index("human"), labels.CATEGORIES.index("sky")
    seq = CityscapesSequence(
        pair,
        size=SIZE,
        batch_size=2,
        paste=("human",),
        paste_p=1.0,
        paste_sources=[0],
        paste_targets=[1],
    )
    source_image, source_mask = seq.load(0)
    image, mask = seq.load(1)
    block = source_mask == human
    assert block.sum() == 6 * 8  # the source is not a target: left as it is
    np.testing.assert_array_equal(mask[block], human)
    np.testing.assert_array_equal(mask[~block], sky)  # road is not pasted, only human
    np.testing.assert_array_equal(image[block], source_image[block])
    np.testing.assert_array_equal(image[~block], 200)
    np.testing.assert_array_equal(seq.load(1)[1], mask)  # the same draw every time
    never = CityscapesSequence(pair, size=SIZE, batch_size=2, paste=("human",), paste_p=0.0)
    np.testing.assert_array_equal(never.load(1)[1], sky)


def test_copy_paste_draws_per_epoch_and_is_checked(tmp_path: Path) -> None:
    pair = _two_frames(tmp_path)
    seq = CityscapesSequence(
        pair, size=SIZE, batch_size=2, paste=("human",), paste_sources=[0], paste_targets=[1]
    )
    pasted = []
    for epoch in range(40):
        seq.set_epoch(epoch)
        pasted.append(bool((seq.load(1)[1] == labels.CATEGORIES.index("human")).any()))
    assert 8 < sum(pasted) < 32  # paste_p=0.5, drawn per (seed, epoch, sample)
    with pytest.raises(ValueError, match=r"data.paste: unknown categories \['people'\]"):
        CityscapesSequence(pair, size=SIZE, batch_size=2, paste=("people",))
    with pytest.raises(ValueError, match=r"data\.paste_p=1\.5"):
        CityscapesSequence(pair, size=SIZE, batch_size=2, paste=("human",), paste_p=1.5)
    with pytest.raises(ValueError, match="no samples to take"):
        CityscapesSequence(pair, size=SIZE, batch_size=2, paste=("human",), paste_sources=[])
