"""How much of the input-dependent signal quantized .tflite files and Core ML packages
keep, against eager PyTorch, on more inputs than the export's six parity inputs:

    python -m benchmarks.int8_quality A.tflite B.mlpackage ...              # seeded xs@224
    python -m benchmarks.int8_quality --checkpoint tests/data/casvit_tiny_digits.pth --res 64 A.tflite ...

Seeded weights (the exporter's): the parity photos plus ``--noise`` seeded noise
images. With ``--checkpoint`` (the digits-trained one): its 360 held-out digits.
Per file: the worst and mean centered cosine (each output centered by the
reference's mean over all inputs, as ``export.parity.compare``), the worst over the
photos alone, the centered mean squared error, top-1 agreement with eager and, on
the digits, top-1 accuracy against their labels (eager's is printed first).
Takes our files (.tflite: NHWC RGB in [0, 1]; .mlpackage with an image input, run by
the reference interpreter) and litert-torch's (NCHW normalized, int8 or float I/O), so
the peers' files of ``make bench PEERS=1`` can be compared too."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def inputs(variant: str, res: int, checkpoint: Path | None, noise: int):
    """(model, RGB uint8 batch, photo mask, labels or None): the seeded model on the
    parity photos and noise, or the checkpoint on its held-out digits (no photos among
    them) with their labels."""
    from casvit import model_from_checkpoint
    from casvit.preprocess import official_default
    from export.inputs import parity_images, photo_mask

    from .digits import digits_split
    from .peers.convert import seeded_model

    if checkpoint is not None:
        split = digits_split(res)
        rgb = split["test_rgb"]
        return model_from_checkpoint(checkpoint), rgb, np.zeros(len(rgb), bool), split["test_y"]
    names, rgb = parity_images(official_default(res, res), noise=noise)
    return seeded_model(variant, "eval"), rgb, photo_mask(names), None


def run_file(path: Path, rgb: np.ndarray) -> np.ndarray:
    """Logits of ``path`` for each image: a Core ML package (image input: 0-255 pixels) in
    the reference interpreter, our .tflite files on NHWC RGB in [0, 1], litert-torch's on
    NCHW normalized input (``benchmarks.peers.run.tflite_predict`` handles layout and int8 I/O)."""
    from export.inputs import to_convention

    if path.suffix == ".mlpackage":
        from export.targets.coreml.mil import Program

        program, x = Program.load(path), to_convention(rgb, "byte")
        return np.concatenate(
            [program.run({"image": x[i : i + 16]}, ["logits"])["logits"] for i in range(0, len(x), 16)]
        )
    from ai_edge_litert.interpreter import Interpreter

    from .peers.run import tflite_predict

    nchw = Interpreter(model_path=str(path)).get_input_details()[0]["shape"][1] == 3
    return tflite_predict(path, to_convention(rgb, "normalized" if nchw else "unit"))


def quality(reference: np.ndarray, output: np.ndarray, photos: np.ndarray, labels: np.ndarray | None = None) -> dict:
    from export.parity import centered_cosines

    ref, out = np.asarray(reference, np.float64), np.asarray(output, np.float64)
    cosine = centered_cosines(ref, out)
    return {
        "min_centered_cosine": float(cosine.min()),
        "mean_centered_cosine": float(cosine.mean()),
        "photos_min_centered_cosine": float(cosine[photos].min()) if photos.any() else None,
        "centered_mse": float(np.mean((out - ref) ** 2)),
        "top1_agreement": float(np.mean(ref.argmax(1) == out.argmax(1))),
        "inputs": len(ref),
        "top1": None if labels is None else float(np.mean(out.argmax(1) == labels)),
    }


TABLE_HEADER = (
    "| model | inputs | worst centered cosine | mean | worst on photos | centered MSE | top-1 agreement | top-1 % |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|"
)


def table_row(name: str, q: dict) -> str:
    """One markdown row of TABLE_HEADER from ``quality``'s figures."""
    photo = "" if q["photos_min_centered_cosine"] is None else f"{q['photos_min_centered_cosine']:.4f}"
    top1 = "" if q["top1"] is None else f"{100 * q['top1']:.2f}"
    return (
        f"| {name} | {q['inputs']} | {q['min_centered_cosine']:.4f} | {q['mean_centered_cosine']:.4f} | "
        f"{photo} | {q['centered_mse']:.3e} | {q['top1_agreement']:.3f} | {top1} |"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.int8_quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--variant", default="xs")
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--noise", type=int, default=16, help="seeded noise images beside the photos (seeded weights)")
    args = p.parse_args(argv)
    from export.inputs import to_convention
    from export.pipeline import reference_logits

    model, rgb, photos, labels = inputs(args.variant, args.res, args.checkpoint, args.noise)
    reference = reference_logits(model, to_convention(rgb, "normalized"))
    if labels is not None:
        print(f"eager top-1 {100 * np.mean(reference.argmax(1) == labels):.2f} % on {len(labels)} labelled inputs")
    print(TABLE_HEADER.replace("| model |", "| file |"))
    for path in args.files:
        print(table_row(str(path), quality(reference, run_file(path, rgb), photos, labels)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
