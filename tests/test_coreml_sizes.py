"""One Core ML package of several input sizes (``--coreml-sizes``): tiny at 64x64 that
also takes 96x96, verified at each size, with golden data and a preprocessing record per
size; the interpreter refuses a size the package does not enumerate."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from casvit.preprocess import official_default
from export.inputs import parity_images, to_convention
from export.targets.coreml.mil import Program, ProgramError

from .helpers import eval_model, export_report

pytestmark = pytest.mark.skipif(sys.platform == "darwin", reason="Linux path: on macOS load() uses MLModel.predict")
SPEC = dict(targets=("coreml",), variant="tiny", res=(64, 64), coreml_precision="fp16", coreml_sizes="96")


@pytest.fixture(scope="module")
def sized_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("sizes")
    return export_report(**SPEC, out_dir=out), out


def test_parity_is_checked_at_every_size(sized_export):
    report, _ = sized_export
    (entry,) = report["artifacts"]
    assert report["passed"] and entry["parity"]["passed"]
    sizes = entry["parity"]["sizes"]
    assert list(sizes) == ["64x64", "96x96"] and all(r["passed"] for r in sizes.values())
    assert sizes["64x64"]["metrics"] == entry["parity"]["metrics"]
    assert sizes["96x96"]["metrics"]["samples"] == len(report["parity_inputs"]["names"])
    assert entry["details"]["input_sizes"] == ["64x64", "96x96"]


def test_golden_data_at_each_size_is_eager_at_that_size(sized_export):
    """The 96x96 golden file holds the photos through the official transform at 96x96
    and the eval model's logits on them; the package's interpreter run matches them."""
    report, out = sized_export
    golden = np.load(out / report["golden"]["sizes"]["96x96"]["file"])
    record = official_default(96, 96)
    _, rgb = parity_images(record, noise=2)
    np.testing.assert_array_equal(golden["rgb"], rgb)
    with torch.no_grad():
        eager = eval_model(**SPEC)(torch.from_numpy(to_convention(rgb, "normalized"))).numpy()
    np.testing.assert_allclose(golden["logits"], eager, rtol=1e-5, atol=1e-5)
    program = Program.load(out / report["artifacts"][0]["file"])
    logits = program.run({"image": to_convention(rgb, "byte")}, ["logits"])["logits"]
    assert np.abs(logits - eager).max() / np.abs(eager).max() <= 1e-2  # the fp16 gate
    assert (logits.argmax(1) == eager.argmax(1)).all()


def test_metadata_holds_each_sizes_record_and_the_input_enumerates_them(sized_export):
    import coremltools as ct

    report, out = sized_export
    spec = ct.utils.load_spec(str(out / report["artifacts"][0]["file"]))
    user = spec.description.metadata.userDefined
    assert user["input_sizes"] == "64x64,96x96"
    records = json.loads(user["preprocessing_by_size"])
    assert {k: (r["height"], r["width"]) for k, r in records.items()} == {"64x64": (64, 64), "96x96": (96, 96)}
    assert records["64x64"] == json.loads(user["preprocessing"])
    image = spec.description.input[0].type.imageType
    assert (image.height, image.width) == (64, 64)  # the default size
    assert [(s.height, s.width) for s in image.enumeratedSizes.sizes] == [(64, 64), (96, 96)]


def test_interpreter_refuses_a_size_the_package_does_not_enumerate(sized_export):
    report, out = sized_export
    program = Program.load(out / report["artifacts"][0]["file"])
    with pytest.raises(ProgramError, match="expects 3x64x64 or 3x96x96 pixels"):
        program.run({"image": np.zeros((1, 3, 128, 128), np.float32)}, ["logits"])


def test_a_size_that_misses_parity_rejects_the_package(sized_export, monkeypatch):
    """The gate covers every size: a wrong result at 96x96 alone fails parity."""
    from export import checks
    from export.spec import Artifact

    report, out = sized_export
    artifact = Artifact("coreml-fp16", "coreml", "fp16", out / report["artifacts"][0]["file"], "byte")
    artifact.input_sizes = ((96, 96),)

    def fake_runner(_artifact):
        def run(x):
            return np.zeros((len(x), 1000), np.float32) if x.shape[-1] == 96 else reference

        return run

    record = official_default(64, 64)
    names, rgb = parity_images(record, noise=2)
    reference = np.random.default_rng(0).normal(size=(len(rgb), 1000)).astype(np.float32)

    def at(height, width):
        names96, rgb96 = parity_images(official_default(height, width), noise=2)
        return checks.Evidence(rgb96, reference, tuple(names96))

    evidence = checks.Evidence(rgb, reference, tuple(names), resized=at)
    monkeypatch.setattr(checks.targets, "get", lambda name: SimpleNamespace(load=fake_runner))
    result = checks.by_name("parity").run(artifact, evidence)
    assert result["sizes"]["64x64"]["passed"] and not result["sizes"]["96x96"]["passed"]
    assert not result["passed"] and all(m.startswith("at 96x96: ") for m in result["misses"])
