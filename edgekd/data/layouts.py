"""Finding (image, mask) file pairs in the camvid and folder layouts (rules: ``edgekd.data.folder``).

Only pairing and existence are checked here (cheap, at open time); pixels are checked on load.
"""
from __future__ import annotations

from pathlib import Path

from edgekd.data.info import LAYOUTS, DataError
from edgekd.data.io import IMAGE_EXTENSIONS, MASK_EXTENSIONS

CAMVID_SPLITS = ("train", "val", "test")
NOT_SPLIT_LISTS = {"readme", "license", "licence", "classes", "labels", "notes", "changelog"}
Pair = tuple[Path, Path]


def detect_layout(root: Path, requested: str, doc_layout: str | None) -> str:
    """The layout asked for, else the one ``dataset.yaml`` names, else the one the folders show."""
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise DataError(f"dataset folder {root} {what}; pass the folder that holds the images")
    if requested != "auto":
        if requested not in LAYOUTS:
            raise DataError(f"layout {requested!r} is not one of {['auto', *LAYOUTS]}")
        return requested
    if doc_layout:
        return doc_layout
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return "folder"
    if any(_camvid_split_present(root, s) for s in CAMVID_SPLITS):
        return "camvid"
    found = sorted(p.name + "/" for p in root.iterdir() if p.is_dir()) or ["no sub-folders"]
    raise DataError(
        f"{root} has neither images/ + masks/ (folder layout) nor train/ + trainannot/ (CamVid layout); "
        f"found {found}; arrange the files in one of these layouts"
    )


def _camvid_split_present(root: Path, split: str) -> bool:
    return (root / split).is_dir() and (root / f"{split}annot").is_dir()


def available_splits(root: Path, layout: str) -> list[str]:
    """Names that ``open_dataset(root, split)`` accepts for this folder."""
    if layout == "camvid":
        present = [s for s in CAMVID_SPLITS if _camvid_split_present(root, s)]
        extra = ["trainval"] if {"train", "val"} <= set(present) else []
        return present + extra + ["all"]
    lists = sorted(p.stem for p in root.glob("*.txt") if p.is_file() and p.stem.lower() not in NOT_SPLIT_LISTS)
    return [s for s in lists if s != "all"] + ["all"]


def list_pairs(root: Path, layout: str, split: str) -> list[Pair]:
    """The (image, mask) pairs of ``split``, which may carry a name-prefix filter (``split_filter``)."""
    base, prefixes, keep = split_filter(split)
    pairs = _list_split(root, layout, base)
    if prefixes:
        pairs = [p for p in pairs if p[0].name.startswith(prefixes) == keep]
        if not pairs:
            raise DataError(f"split {split!r} of {root} has no images: no file name of {base!r} "
                            f"{'starts' if keep else 'is left when removing those starting'} with {', '.join(prefixes)}")
    return pairs


def split_filter(split: str) -> tuple[str, tuple[str, ...], bool]:
    """``train:0006R0`` = the train frames whose file name starts with 0006R0 (CamVid: one drive);
    ``train:-0006R0`` = all other train frames. Several prefixes: ``train:-0006R0,0001TP``.

    Returns (base split, prefixes, keep) where keep=False removes the prefixed frames. This is how a
    leave-one-drive-out validation set is built from a training split (the prefix is the drive).
    """
    base, sep, rest = split.partition(":")
    if not sep:
        return split, (), True
    keep = not rest.startswith("-")
    prefixes = tuple(p.strip() for p in rest.lstrip("-").split(",") if p.strip())
    if not base or not prefixes:
        raise DataError(f"split {split!r} is malformed; write SPLIT:PREFIX (only those frames) or SPLIT:-PREFIX (all but those), "
                        "e.g. train:0006R0 or train:-0006R0")
    return base, prefixes, keep


def _list_split(root: Path, layout: str, split: str) -> list[Pair]:
    splits = available_splits(root, layout)
    if split not in splits:
        hint = (" (write train.txt / val.txt beside images/ naming one image stem per line)"
                if layout == "folder" else "")
        raise DataError(f"split {split!r} is not in {root} ({layout} layout); available: {splits}{hint}")
    if layout == "camvid":
        names = {"trainval": ["train", "val"], "all": [s for s in splits if s in CAMVID_SPLITS]}.get(split, [split])
        pairs = [p for name in names for p in _camvid_pairs(root, name)]
    else:
        pairs = _folder_pairs(root, split)
    if not pairs:
        raise DataError(f"split {split!r} of {root} has no images; add image/mask pairs or pick another split")
    return pairs


def _visible_files(folder: Path, extensions: tuple[str, ...], recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p for p in found
        if p.suffix.lower() in extensions and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _index_by_key(folder: Path, extensions: tuple[str, ...], recursive: bool) -> dict[str, Path]:
    """Map relative path without extension (posix) -> file; two files with one key are an error."""
    index: dict[str, Path] = {}
    for path in _visible_files(folder, extensions, recursive):
        key = path.relative_to(folder).with_suffix("").as_posix()
        if key in index:
            raise DataError(f"{index[key]} and {path} have the same name; keep one of them so the pairing is unambiguous")
        index[key] = path
    return index


def _match_masks(images: dict[str, Path], mask_dir: Path, recursive: bool, keys: list[str]) -> list[Pair]:
    masks = _index_by_key(mask_dir, MASK_EXTENSIONS, recursive)
    pairs = []
    for key in keys:
        image = images[key]
        if key not in masks:
            lossy = [p.name for p in mask_dir.glob(f"{Path(key).name}.*") if p.suffix.lower() in (".jpg", ".jpeg")]
            fix = (f"{lossy[0]} is JPEG, which corrupts labels: save masks as PNG" if lossy
                   else f"add {mask_dir / key}.png or remove the image")
            raise DataError(f"image {image} has no mask in {mask_dir}; {fix}")
        pairs.append((image, masks[key]))
    return pairs


def _camvid_pairs(root: Path, split: str) -> list[Pair]:
    image_dir, mask_dir = root / split, root / f"{split}annot"
    images = _index_by_key(image_dir, IMAGE_EXTENSIONS, recursive=False)
    if not images:
        raise DataError(f"{image_dir} has no images ({', '.join(IMAGE_EXTENSIONS)}); add them or remove the folder")
    return _match_masks(images, mask_dir, False, sorted(images))


def _folder_pairs(root: Path, split: str) -> list[Pair]:
    image_dir, mask_dir = root / "images", root / "masks"
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise DataError(f"{folder} is missing; the folder layout needs images/ and masks/ side by side")
    images = _index_by_key(image_dir, IMAGE_EXTENSIONS, recursive=True)
    if not images:
        raise DataError(f"{image_dir} has no images ({', '.join(IMAGE_EXTENSIONS)}); add them")
    keys = sorted(images) if split == "all" else _read_list_file(root / f"{split}.txt", images)
    return _match_masks(images, mask_dir, True, keys)


def _read_list_file(path: Path, images: dict[str, Path]) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path} cannot be read ({err}); it must be UTF-8 text, one image per line") from err
    keys: list[str] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        key = _entry_key(entry, images)
        if key is None:
            raise DataError(f"{path}:{number}: {entry!r} names no file in {path.parent / 'images'}; fix the line or add the image")
        if key in seen:
            raise DataError(f"{path}:{number}: {entry!r} repeats line {seen[key]}; list each image once")
        seen[key] = number
        keys.append(key)
    return keys


def _entry_key(entry: str, images: dict[str, Path]) -> str | None:
    rel = entry.replace("\\", "/").removeprefix("./").removeprefix("images/")
    if rel in images:
        return rel
    stripped = Path(rel).with_suffix("").as_posix() if Path(rel).suffix.lower() in IMAGE_EXTENSIONS else None
    if stripped in images and images[stripped].name == Path(rel).name:
        return stripped
    return None
