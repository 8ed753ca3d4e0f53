"""What each choice of the Core ML W8A8 recipe (``export.targets.coreml.w8a8.Recipe``)
is worth, from coremltools' documented defaults to the export's recipe, on more inputs
than the export's six parity inputs:

    python -m benchmarks.w8a8_ablation                                   # seeded xs@224, bundled photos
    python -m benchmarks.w8a8_ablation --variant tiny --res 64 --checkpoint tests/data/casvit_tiny_digits.pth \
        --calib DIR --calib-count 60                                     # 60 training digits in DIR

Each recipe's program is made as the export makes it (same calibration images, same
passes) and run by the reference interpreter on the inputs of ``benchmarks.int8_quality``
(the parity photos and 16 seeded noise images, or the checkpoint's 360 held-out digits);
the columns are that benchmark's."""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

# (label, Recipe keyword arguments): from coremltools' documented W8A8 to the export's recipe.
RECIPES = [
    (
        "coremltools' documented W8A8 (symmetric, min/max, adds int8)",
        dict(activation_mode="linear_symmetric", float_ops=(), ranges="minmax", bias_correction=False),
    ),
    ("+ affine activations", dict(float_ops=(), ranges="minmax", bias_correction=False)),
    ("+ adds in fp16", dict(ranges="minmax", bias_correction=False)),
    ("+ bias correction", dict(ranges="minmax")),
    ("+ histogram ranges (the export's recipe)", dict()),
]


def run(variant: str, res: int, checkpoint: Path | None, calib: Path | None, calib_count: int, log=print) -> list[dict]:
    import torch

    from export.calibration import load_calibration
    from export.context import ExportContext
    from export.inputs import to_convention
    from export.labels import resolve_labels
    from export.pipeline import reference_logits
    from export.preprocessing import record_for
    from export.source import build_model, read_source, resolve
    from export.spec import spec_from
    from export.targets.coreml import w8a8

    from .int8_quality import inputs, quality

    spec = spec_from({"targets": ("coreml",), "variant": variant, "res": (res, res), "checkpoint": checkpoint})
    source = read_source(spec)
    spec, _ = resolve(spec, source)
    model, weights = build_model(spec, source)
    _, rgb, photos, labels = inputs(variant, res, checkpoint, noise=16)
    with tempfile.TemporaryDirectory() as work:
        record, record_source = record_for(spec, source.training_args)
        ctx = ExportContext(spec, model, weights, resolve_labels(model.num_classes), Path(work), record, record_source)
        record = ctx.preprocessing
        reference = reference_logits(model, to_convention(rgb, "normalized", record.mean, record.std))
        calibration = load_calibration(record, calib, calib_count)
        module = ctx.deploy_model(embed_normalization=True, input_range=255.0)
        example = torch.rand(1, 3, res, res, generator=torch.Generator().manual_seed(0)) * 255.0
        x = to_convention(rgb, "byte")
        rows = []
        for label, choices in RECIPES:
            log(f"{label}: converting and calibrating")
            recipe = w8a8.Recipe(**choices)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                mlmodel = w8a8.program(ctx, module, "byte", example, "image", w8a8.MINIMUM_TARGET, calibration, recipe)
            program, _ = w8a8.interpreted(mlmodel, len(ctx.labels))
            out = np.concatenate(
                [program.run({"image": x[i : i + 16]}, ["logits"])["logits"] for i in range(0, len(x), 16)]
            )
            rows.append({"recipe": label, **recipe.__dict__, **quality(reference, out, photos, labels)})
    return rows


def markdown(rows: list[dict]) -> str:
    from .int8_quality import TABLE_HEADER, table_row

    return "\n".join([TABLE_HEADER.replace("| model |", "| recipe |"), *(table_row(r["recipe"], r) for r in rows)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.w8a8_ablation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--variant", default="xs")
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--calib", type=Path, default=None, help="calibration folder (default: the bundled photos)")
    p.add_argument("--calib-count", type=int, default=100)
    args = p.parse_args(argv)
    logging.getLogger("coremltools").setLevel(logging.ERROR)  # its version warnings
    rows = run(
        args.variant, args.res, args.checkpoint, args.calib, args.calib_count, log=lambda m: print(m, file=sys.stderr)
    )
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
