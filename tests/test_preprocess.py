"""The preprocessing record: official defaults, torchvision-exact geometry, values
from checkpoint args and CLI overrides.

Expected sizes and crop boxes below are worked out by hand from torchvision's
source (``_compute_resized_output_size``: new long side ``int(size * long /
short)``; ``center_crop``: ``int(round((h - th) / 2.0))``, Python's round is
half-to-even), independently of ``casvit.preprocess``."""

import argparse

import numpy as np
import pytest
from PIL import Image

from casvit.preprocess import IMAGENET_MEAN, INCEPTION_MEAN, Preprocessing, from_training_args, official_default
from export import cli
from export.errors import ExportError
from export.inputs import photo
from export.preprocessing import artifact_record, record_for
from export.source import read_source

from .helpers import make_spec


def _record(spec):
    """The preprocessing record of ``spec``, its checkpoint's training args read as an export reads them."""
    return record_for(spec, read_source(spec).training_args)


def _image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


@pytest.mark.parametrize(
    "width, height, size, crop_pct, scaled, box",
    [
        # 451x300 (skimage chelsea): int(64/0.875)=73; long side int(73*451/300)=int(109.74)=109;
        # crop left round(22.5)=22 (half to even), top round(4.5)=4.
        (451, 300, 64, 0.875, (109, 73), (22, 4, 86, 68)),
        # portrait 300x451: the width is the short side.
        (300, 451, 64, 0.875, (73, 109), (4, 22, 68, 86)),
        # 224/0.875 = 256 exactly; 333x500: long int(256*500/333)=int(384.38)=384,
        # left round(16)=16, top round(80)=80.
        (333, 500, 224, 0.875, (256, 384), (16, 80, 240, 304)),
        # odd size, crop_pct 1: shorter side becomes the size;
        # 97x61 -> int(64*97/61)=int(101.77)=101, left round(18.5)=18.
        (97, 61, 64, 1.0, (101, 64), (18, 0, 82, 64)),
        # 65x65 at 0.9: int(64/0.9)=int(71.1)=71 -> 71x71, offsets round(3.5)=4.
        (65, 65, 64, 0.9, (71, 71), (4, 4, 68, 68)),
    ],
)
def test_square_geometry_is_torchvisions(width, height, size, crop_pct, scaled, box):
    record = Preprocessing(size, size, crop_pct=crop_pct)
    assert record.scaled_size(width, height) == scaled
    assert record.crop_box(*scaled) == box


@pytest.mark.parametrize("interpolation, pil_filter", [("bicubic", Image.BICUBIC), ("bilinear", Image.BILINEAR)])
@pytest.mark.parametrize("width, height", [(451, 300), (300, 451), (97, 61), (65, 65)])
def test_pixels_are_pillow_resize_then_numpy_crop(interpolation, pil_filter, width, height):
    """Pixels: Pillow's resize of the whole image, then the crop as an array slice."""
    image = _image(width, height)
    record = Preprocessing(64, 64, interpolation=interpolation)
    new_w, new_h = record.scaled_size(width, height)
    full = np.asarray(image.resize((new_w, new_h), pil_filter))
    left, top = int(round((new_w - 64) / 2.0)), int(round((new_h - 64) / 2.0))
    assert np.array_equal(record.resize_rgb(image), full[top : top + 64, left : left + 64])


def test_non_square_rule_covers_then_crops():
    # 192x256 (HxW) at 0.875 must cover int(192/0.875)=219 x int(256/0.875)=292. A 451x300 photo
    # is wider than 292:219, so its height becomes 219 and its width int(219*451/300)=329;
    # crop left round(36.5)=36, top round(13.5)=14.
    record = Preprocessing(192, 256)
    assert record.scaled_size(451, 300) == (329, 219) and record.crop_box(329, 219) == (36, 14, 292, 206)
    # a tall image: the width binds (int(292*600/300) = 584)
    assert record.scaled_size(300, 600) == (292, 584)
    assert record.resize_rgb(photo("chelsea")).shape == (192, 256, 3)


def test_official_defaults_and_the_squash_rule():
    small = official_default(224, 224)
    assert (small.crop_pct, small.crop_mode, small.interpolation) == (0.875, "center", "bicubic")
    assert small.mean == IMAGENET_MEAN
    large = official_default(384, 384)
    assert large.crop_mode == "squash" and large.scaled_size(451, 300) == (384, 384)
    expected = np.asarray(Image.fromarray(photo("chelsea")).resize((384, 384), Image.BICUBIC))
    assert np.array_equal(large.resize_rgb(photo("chelsea")), expected)
    assert official_default(256, 384).crop_mode == "center"  # both sides must be >= 384


def test_training_args_give_crop_pct_and_inception_mean():
    args = argparse.Namespace(input_size=224, crop_pct=0.95, imagenet_default_mean_and_std=False)
    record = from_training_args(args, 64, 64)
    assert record.crop_pct == 0.95 and record.mean == INCEPTION_MEAN and record.std == (0.5, 0.5, 0.5)
    assert from_training_args({"input_size": 64}, 64, 64) == official_default(64, 64)


def test_record_round_trips_through_a_dict():
    record = Preprocessing(96, 160, crop_pct=0.9, interpolation="bilinear", mean=(0.1, 0.2, 0.3))
    assert Preprocessing.from_dict(record.to_dict()) == record
    described = artifact_record(record, "byte")
    assert described["input_range"] == [0.0, 255.0] and described["normalization_embedded"] is True
    assert artifact_record(record, "normalized")["normalization_embedded"] is False


def test_cli_overrides_win_over_checkpoint_args(tmp_path):
    import torch

    from casvit.checkpoint import read_checkpoint

    from .helpers import REFERENCE

    obj = read_checkpoint(REFERENCE / "tiny_official_format.pth")
    obj["args"] = argparse.Namespace(**{**vars(obj["args"]), "crop_pct": 0.95, "imagenet_default_mean_and_std": False})
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    record, source = _record(make_spec(res=(64, 64), checkpoint=path))
    assert (record.crop_pct, record.mean, source) == (0.95, INCEPTION_MEAN, "checkpoint args")
    argv = ["--crop-pct", "1", "--interpolation", "bilinear", "--std", "0.2,0.2,0.2"]
    record, source = _record(cli.spec_of(["--res", "64", "--checkpoint", str(path), *argv]))
    assert (record.crop_pct, record.interpolation, record.std, record.mean) == (
        1.0,
        "bilinear",
        (0.2,) * 3,
        INCEPTION_MEAN,
    )
    assert source == "checkpoint args + command line (--crop-pct, --interpolation, --std)"


@pytest.mark.parametrize(
    "argv", [["--crop-pct", "0"], ["--crop-pct", "1.5"], ["--mean", "0.1,0.2"], ["--interpolation", "nearest"]]
)
def test_bad_options_are_refused(argv, tmp_path, capsys):
    try:
        code = cli.main(["--target", "onnx", "--variant", "tiny", "--res", "64", "--out", str(tmp_path), *argv])
    except SystemExit as e:  # argparse refuses a value outside the choices itself
        code = e.code
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and argv[0] in line


def test_bad_records_are_refused():
    with pytest.raises(ValueError, match="crop_pct"):
        Preprocessing(64, 64, crop_pct=0.0)
    with pytest.raises(ValueError, match="std"):
        Preprocessing(64, 64, std=(0.2, 0.0, 0.2))
    with pytest.raises(ExportError, match="std"):
        record_for(make_spec(res=(64, 64), std=(0.2, -1.0, 0.2)))
