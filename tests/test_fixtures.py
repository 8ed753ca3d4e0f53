"""The test suite carries its own fixtures: nothing outside the clone is read."""

import hashlib
import re
import subprocess

from .helpers import REFERENCE, ROOT

SHA256 = {
    "state_dict_shapes.json": "b8430fddc328b80a650cf774bd418987dcaeddde935e6f1f4b505015e001faeb",
    "tiny_config.json": "2692845d5469d9379c2ea7465d9261e0cff0d38307818923ef5405ed8d5669c8",
    "tiny_official_format.pth": "2b67582463917700078d36d057ee1f68a4925abc1b83b8592168d6017feb7941",
    "tiny_expected.npz": "e9d3d3f372de50f4c0c2bd2c9f5f9fdbd8df6a88ed6aeb747ecdb3de9d44c599",
}


def test_reference_fixtures_are_in_the_repo_and_unchanged():
    assert REFERENCE.is_relative_to(ROOT)
    for name, digest in SHA256.items():
        assert hashlib.sha256((REFERENCE / name).read_bytes()).hexdigest() == digest, name


def test_no_tracked_file_reads_outside_the_clone():
    files = subprocess.run(
        ["git", "ls-files", "*.py", "*.sh", "*.kts", "Makefile", ".ci/*"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    offending = [
        f
        for f in files
        if f not in ("tests/test_fixtures.py", ".ci/run")  # .ci/run hides ../shared
        and re.search(r"\.\./shared|parent / \"shared\"|parents\[\d\] / \"shared\"", (ROOT / f).read_text())
    ]
    assert offending == []
