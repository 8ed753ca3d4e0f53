"""The Android app's resources and manifest pass aapt2 against the platform
framework-res.apk, and the check really fails on broken resources."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import ROOT

SCRIPT = ROOT / "android_app" / "tools" / "android_test.sh"
MAIN = ROOT / "android_app" / "app" / "src" / "main"


def check(res: Path = MAIN / "res", manifest: Path = MAIN / "AndroidManifest.xml") -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), "resources", str(res), str(manifest)], capture_output=True, text=True, timeout=300
    )


def broken_copy(tmp_path: Path, relative: str, old: str, new: str) -> Path:
    """A copy of the app's res/ with the first ``old`` in ``relative`` replaced by ``new``."""
    res = tmp_path / "res"
    shutil.copytree(MAIN / "res", res)
    target = res / relative
    text = target.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {relative}: update this test"
    target.write_text(text.replace(old, new, 1), encoding="utf-8")
    return res


def test_app_resources_and_manifest_link():
    result = check()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "aapt2: resources and manifest link" in result.stdout


@pytest.mark.parametrize(
    ("relative", "old", "new", "error"),
    [
        (
            "layout/activity_main.xml",
            'android:layout_height="match_parent"',
            'android:layout_hieght="match_parent"',
            "attribute android:layout_hieght not found",
        ),
        (
            "layout/activity_main.xml",
            'android:textAppearance="@style/Readout"',
            'android:textAppearance="@style/Missing"',
            "style/Missing",
        ),
        (
            "values/themes.xml",
            "@android:style/Theme.Material.Light.NoActionBar",
            "@style/Theme.AppCompat.Light.NoActionBar",
            "Theme.AppCompat.Light.NoActionBar",
        ),
    ],
    ids=["misspelled-layout-attribute", "missing-style", "appcompat-theme"],
)
def test_broken_resources_fail_the_check(tmp_path, relative, old, new, error):
    result = check(res=broken_copy(tmp_path, relative, old, new))
    assert result.returncode != 0
    assert error in result.stderr + result.stdout


def test_manifest_reference_to_missing_resource_fails(tmp_path):
    manifest = tmp_path / "AndroidManifest.xml"
    manifest.write_text((MAIN / "AndroidManifest.xml").read_text().replace("@string/app_name", "@string/no_such_name"))
    result = check(manifest=manifest)
    assert result.returncode != 0
    assert "no_such_name" in result.stderr + result.stdout
