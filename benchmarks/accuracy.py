"""Top-1 on the held-out digits test split through every format and precision.

The digits checkpoint (trained by :mod:`benchmarks.train_digits` if missing) is
exported with ``python -m export --checkpoint``; TFLite int8 and Core ML w8a8 are
calibrated on training images (never test images). Every artifact gets the same test pixels in its own
input convention through ``export.inputs.to_convention``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from export import targets as export_targets
from export.exported import artifact_from_entry
from export.inputs import to_convention
from export.targets.coreml.target import COMPRESSIONS

from . import artifacts
from .digits import digits_split
from .train_digits import default_checkpoint, evaluate, save_checkpoint, train

# Targets whose load() runs on Linux (Core ML through the reference interpreter).
ACCURACY_TARGETS = tuple(t.name for t in export_targets.records() if t.linux_accuracy)
# Core ML: fp16 with every weight compression the target offers, and W8A8.
COREML_ARGS = ["--coreml-precision", "fp16,w8a8", "--coreml-compress", ",".join(COMPRESSIONS)]
CALIBRATED = ("tflite", "coreml")  # targets whose runs above calibrate on images (--calib)


def write_calibration_folder(rgb: np.ndarray, folder: Path) -> Path:
    """Training images as PNG files for ``python -m export --calib``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(rgb):
        Image.fromarray(image, "RGB").save(folder / f"digit_{i:04d}.png")
    return folder


def ensure_checkpoint(
    variant: str, res: int, checkpoint: Path | None, epochs: int, train_limit: int | None, threads: int, log
) -> Path:
    """The given checkpoint, the default one if it exists, or a freshly trained one."""
    path = Path(checkpoint) if checkpoint else default_checkpoint(variant)
    if not path.is_file():
        log(f"{variant}: training on digits ({epochs} epochs) -> {path}")
        ckpt, _ = train(variant, epochs=epochs, size=res, threads=threads, limit=train_limit, log=log)
        save_checkpoint(ckpt, path)
    return path


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(logits).argmax(1) == labels))


def evaluate_entry(entry: dict, out_dir: str, x_by_convention, labels: np.ndarray, eager_pred: np.ndarray) -> dict:
    """Accuracy row of one exported artifact, run through its target's own ``load()``."""
    row = {
        "name": entry["name"],
        "format": entry["format"],
        "precision": entry["precision"],
        "size_bytes": entry["size_bytes"],
        "status": entry["status"],
    }
    try:
        art = artifact_from_entry(entry, out_dir)
        start = time.perf_counter()
        logits = export_targets.get(art.format).load(art)(x_by_convention(art.input_convention))
        row.update(
            top1=top1(logits, labels),
            agreement_with_eager=float(np.mean(logits.argmax(1) == eager_pred)),
            runtime=entry.get("runtime"),
            eval_seconds=round(time.perf_counter() - start, 1),
        )
    except Exception as e:  # noqa: BLE001 -- recorded as data
        row.update(status="does not run", error=f"{type(e).__name__}: {str(e)[-400:]}")
    return row


def run(
    variant: str,
    res: int,
    work: Path,
    checkpoint: Path | None = None,
    epochs: int = 12,
    targets: tuple[str, ...] = ACCURACY_TARGETS,
    calib_count: int = 100,
    train_limit: int | None = None,
    test_limit: int | None = None,
    train_threads: int = 1,
    extra_args: list[str] = (),
    log=print,
) -> dict:
    """The accuracy record of one variant: checkpoint facts and one row per artifact."""
    import torch

    from casvit import model_from_checkpoint
    from casvit.checkpoint import read_checkpoint

    ckpt = ensure_checkpoint(variant, res, checkpoint, epochs, train_limit, train_threads, log)
    meta = read_checkpoint(ckpt).get("meta", {})
    data = digits_split(res)
    test_rgb, labels = data["test_rgb"][:test_limit], data["test_y"][:test_limit]
    model = model_from_checkpoint(ckpt).eval()
    with torch.no_grad():
        eager_pred = model(torch.from_numpy(to_convention(test_rgb, "normalized"))).argmax(1).numpy()
    rows = [
        {
            "name": "torch-eager",
            "format": "torch",
            "precision": "fp32",
            "status": "reference",
            "top1": evaluate(model, test_rgb, labels),
            "agreement_with_eager": 1.0,
            "size_bytes": Path(ckpt).stat().st_size,
        }
    ]
    calib = write_calibration_folder(data["train_rgb"][:calib_count], work / variant / "calib")
    cache: dict[str, np.ndarray] = {}

    def x_by_convention(convention: str) -> np.ndarray:
        return cache.setdefault(convention, to_convention(test_rgb, convention))

    for target in targets:
        args = ["--checkpoint", str(Path(ckpt).resolve()), *extra_args]
        if target in CALIBRATED:
            args += ["--calib", str(calib.resolve()), "--calib-count", str(calib_count)]
        if target == "coreml":
            args += COREML_ARGS
        log(f"{variant}: exporting {target} from the digits checkpoint")
        result = artifacts.export(target, variant, res, work / variant / target, args)
        for entry in artifacts.entries(result):
            if "file" not in entry:
                rows.append(
                    {"name": entry["name"], "format": target, "status": entry["status"], "error": entry["error"]}
                )
                continue
            log(f"{variant}: top-1 of {entry['name']} on {len(labels)} test images")
            rows.append(evaluate_entry(entry, result["out_dir"], x_by_convention, labels, eager_pred))
    return {
        "variant": variant,
        "resolution": res,
        "checkpoint": str(ckpt),
        "training": meta,
        "test_images": int(len(labels)),
        "calibration_images": calib_count,
        "rows": rows,
    }
