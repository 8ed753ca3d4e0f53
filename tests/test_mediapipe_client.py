"""A real client: MediaPipe Tasks' ImageClassifier (Python, CPU) opens every exported
.tflite of the digits-trained checkpoint and classifies the held-out digits.

MediaPipe reads the file's standard metadata (scalar NormalizationOptions, the
packed labels.txt), reports the model's output (probabilities: every .tflite ends in a
SOFTMAX) as its scores, and resizes the whole image to the input size itself, without
the record's crop; the digits are therefore handed to it already at 64x64, the
same pixels our LiteRT path gets, so both see identical input.
"""

import numpy as np
import pytest

from benchmarks.digits import digits_split
from export.inputs import to_convention
from export.spec import Artifact
from export.targets.tflite import target as tflite

from .helpers import DIGIT_NAMES, DIGITS_TEST_IMAGES

vision = pytest.importorskip("mediapipe.tasks.python.vision", reason="mediapipe is not installed")

pytestmark = pytest.mark.slow  # the shared digits export (TFLite + Core ML)
PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8")


def mediapipe_top1(model_path, rgb: np.ndarray) -> tuple[list[int], list[str], list[float]]:
    """Top-1 index and category name MediaPipe's ImageClassifier returns for each image,
    and the sum of its scores over every category."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(model_path)), max_results=-1)
    indices, names, sums = [], [], []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for image in rgb:
            result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
            categories = result.classifications[0].categories
            top = max(categories, key=lambda c: c.score)
            indices.append(top.index)
            names.append(top.category_name)
            sums.append(sum(c.score for c in categories))
    return indices, names, sums


@pytest.mark.parametrize("precision", PRECISIONS)
def test_mediapipe_agrees_with_litert_and_names_our_labels(digits_export, precision):
    out, report = digits_export
    entry = next(a for a in report["artifacts"] if a["name"] == f"tflite-{precision}")
    assert entry["status"] == "promoted"
    split = digits_split(64)
    rgb = split["test_rgb"][:DIGITS_TEST_IMAGES]
    artifact = Artifact(entry["name"], "tflite", precision, out / entry["file"], entry["input_convention"])
    litert = tflite.load(artifact)(to_convention(rgb, entry["input_convention"])).argmax(1)
    indices, names, sums = mediapipe_top1(out / entry["file"], rgb)
    disagreements = int(np.sum(np.asarray(indices) != litert))
    print(f"tflite-{precision}: MediaPipe vs LiteRT top-1 disagreements {disagreements}/{len(rgb)}")  # shown with -s
    assert disagreements <= 1, f"{precision}: MediaPipe and LiteRT disagree on {disagreements} of {len(rgb)} digits"
    assert names == [DIGIT_NAMES[i] for i in indices]  # the names come from the packed labels.txt
    np.testing.assert_allclose(sums, 1.0, atol=1e-5)  # the scores are probabilities (the final SOFTMAX)
