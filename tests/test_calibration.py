"""Calibration images: user folders and the bundled photos, and clear errors for bad folders."""

import numpy as np
import pytest
from PIL import Image

from casvit.preprocess import official_default
from export.calibration import load_calibration
from export.errors import ExportError
from export.inputs import CALIBRATION_PHOTOS, parity_images, photo


def _png(path, array):
    Image.fromarray(array).save(path)
    return path


def test_folder_images_are_preprocessed_like_parity_inputs(tmp_path):
    _png(tmp_path / "b.png", photo("coffee"))
    _png(tmp_path / "a.PNG", photo("astronaut"))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"junk")
    record = official_default(48, 64)
    calib = load_calibration(record, tmp_path, count=10)
    assert calib.names == ["a.PNG", "b.png"] and calib.rgb.shape == (2, 48, 64, 3) and calib.rgb.dtype == np.uint8
    assert np.array_equal(calib.rgb[0], record.resize_rgb(photo("astronaut")))
    assert calib.describe()["count"] == 2 and str(tmp_path) in calib.describe()["source"]


def test_count_limits_the_set(tmp_path):
    for i in range(3):
        _png(tmp_path / f"{i}.png", photo("chelsea"))
    assert load_calibration(official_default(32, 32), tmp_path, count=2).names == ["0.png", "1.png"]
    with pytest.raises(ExportError, match="at least 1"):
        load_calibration(official_default(32, 32), tmp_path, count=0)


def test_bundled_photos_by_default_are_disjoint_from_parity_inputs():
    calib = load_calibration(official_default(32, 32))
    n = 5 * len(CALIBRATION_PHOTOS)  # each photo whole and its four quadrants
    assert len(calib.names) == n and calib.rgb.shape == (n, 32, 32, 3)
    assert "scikit-image" in calib.source and "disjoint" in calib.source
    _, parity_rgb = parity_images(official_default(32, 32), noise=0)
    for p in parity_rgb:  # pixel-level: no parity photo (chelsea == cat included) is a calibration image
        assert not any(np.array_equal(p, c) for c in calib.rgb)
    assert load_calibration(official_default(32, 32), count=3).names == [
        f"skimage.data.{n}" for n in CALIBRATION_PHOTOS[:3]
    ]


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(ExportError, match="calibration folder not found"):
        load_calibration(official_default(32, 32), tmp_path / "nope")
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(ExportError, match=r"has no images \(expected .jpg, .jpeg, .png, .* files\)"):
        load_calibration(official_default(32, 32), tmp_path)


def test_corrupt_and_truncated_files_are_named(tmp_path):
    _png(tmp_path / "a.png", photo("coffee"))
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(ExportError, match=r"calibration image .*b\.jpg cannot be read"):
        load_calibration(official_default(32, 32), tmp_path)
    (tmp_path / "b.jpg").unlink()
    Image.fromarray(photo("rocket")).save(tmp_path / "c.jpg")
    data = (tmp_path / "c.jpg").read_bytes()
    (tmp_path / "c.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ExportError, match=r"c\.jpg cannot be read"):
        load_calibration(official_default(32, 32), tmp_path)
