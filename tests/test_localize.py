"""Per-layer localization (export/localize.py) and the TFLite int8 fallback
(export/targets/tflite/fallback.py), on models with a known fault (tests/faults.py):
a damaged weight in each format is found in its block, and the int8-hostile digits
checkpoint fails plain int8, is localized to its block, and passes with the fallback."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from casvit import create_model, deploy, model_from_checkpoint
from casvit.seeding import randomize_batchnorm
from export.checks import Evidence
from export.context import ExportContext
from export.errors import GateFailure
from export.inputs import parity_images, to_convention
from export.localize import Localizer, eager_boundaries, trunk
from export.pipeline import reference_logits, run
from export.preprocessing import record_for
from export.source import build_model, class_names, read_source, resolve
from export.spec import Artifact, ExportSpec
from export.targets import GraphOp

from .faults import HOSTILE_BLOCK, HOSTILE_CHANNEL, damage_mil, damage_onnx, damage_tflite, int8_hostile_checkpoint
from .helpers import DIGITS_CHECKPOINT, ROOT, make_spec, photo_batch

DOCS = ROOT / "docs" / "when-a-check-fails.md"
DIGITS = dict(variant="tiny", res=(64, 64), checkpoint=DIGITS_CHECKPOINT)
DAMAGED_CONV = "network.4.1.mlp.fc1"  # stage 2, block 1: its MLP's first conv
DAMAGED_LAYER = "stage2.block1.mlp"  # the residual sum that conv feeds
TINY_LAYERS = (
    ["stem"]
    + [
        name
        for stage, blocks in enumerate((1, 1, 2, 1))
        for name in ([f"downsample{stage}"] if stage else [])
        + [f"stage{stage}.block{b}.{part}" for b in range(blocks) for part in ("local", "attn", "mlp")]
    ]
    + ["logits"]
)


def evidence_for(spec: ExportSpec, workdir: Path) -> Evidence:
    """What the pipeline compares artifacts with, for ``spec`` (see export.pipeline)."""
    source = read_source(spec)
    spec, given_labels = resolve(spec, source)
    model, weights = build_model(spec, source)
    record, record_source = record_for(spec, source.training_args)
    labels, _ = class_names(spec.num_classes, given_labels)
    ctx = ExportContext(spec, model, weights, labels, workdir, record, record_source)
    names, rgb = parity_images(record, spec.noise_inputs, spec.seed)
    reference = reference_logits(model, to_convention(rgb, "normalized", record.mean, record.std))
    return Evidence(rgb, reference, names, ctx, record.mean, record.std)


def test_trunk_finds_residual_sums_stem_and_downsamples_through_quantize_ops():
    ops = [
        GraphOp("op", ("image",), ("stem",)),
        GraphOp("op", ("stem",), ("branch1",)),
        GraphOp("add", ("stem", "branch1"), ("sum1",)),
        GraphOp("alias", ("sum1",), ("sum1_float",)),  # a float island: dequantize ...
        GraphOp("op", ("sum1",), ("branch2",)),
        GraphOp("alias", ("branch2",), ("branch2_float",)),
        GraphOp("add", ("sum1_float", "branch2_float"), ("sum2_float",)),
        GraphOp("alias", ("sum2_float",), ("sum2",)),  # ... and quantize back
        GraphOp("op", ("sum2",), ("down",)),
        GraphOp("op", ("down",), ("gate",)),
        GraphOp("op", ("gate",), ("q",)),
        GraphOp("op", ("gate",), ("k",)),
        GraphOp("add", ("q", "k"), ("qk",)),  # no input read twice: not a residual sum
        GraphOp("add", ("down", "qk"), ("sum3",)),
        GraphOp("op", ("sum3",), ("logits",)),
    ]
    assert trunk(ops, "logits") == [
        ("stem", "stem"),
        ("residual", "sum1"),
        ("residual", "sum2_float"),
        ("downsample", "down"),
        ("residual", "sum3"),
        ("logits", "logits"),
    ]


@torch.no_grad()
def test_eager_boundaries_are_the_deploy_models_own_tensors():
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=10)
    randomize_batchnorm(model, 0)
    fast = deploy(model.eval())
    x = photo_batch(64, 64)
    boundaries, values = eager_boundaries(fast, x.numpy())
    assert [b.name for b in boundaries] == TINY_LAYERS
    # independently: the modules called by hand, one residual sum at a time
    h = fast.patch_embed(fast.normalize(x))
    np.testing.assert_array_equal(values["stem"], h.numpy())
    stage = 0
    for module in fast.network:
        if isinstance(module, torch.nn.Sequential):
            for j, block in enumerate(module):
                h = h + block.local_perception(h)
                np.testing.assert_array_equal(values[f"stage{stage}.block{j}.local"], h.numpy())
                h = h + block.attn(h)
                np.testing.assert_array_equal(values[f"stage{stage}.block{j}.attn"], h.numpy())
                h = h + block.mlp(h)
                np.testing.assert_array_equal(values[f"stage{stage}.block{j}.mlp"], h.numpy())
            stage += 1
        else:
            h = module(h)
            np.testing.assert_array_equal(values[f"downsample{stage}"], h.numpy())
    np.testing.assert_array_equal(values["logits"], fast(x).numpy())


@torch.no_grad()
def test_hostile_checkpoint_is_exact_in_float_and_has_an_outlier_channel(tmp_path):
    hostile = int8_hostile_checkpoint(DIGITS_CHECKPOINT, tmp_path / "hostile.pth")
    x = photo_batch(64, 64)
    a, b = model_from_checkpoint(DIGITS_CHECKPOINT).eval(), model_from_checkpoint(hostile).eval()
    # the transform only changes float32 rounding: a few ulps (2^-23 = 1.2e-7) of the largest logit
    assert float((a(x) - b(x)).abs().max() / a(x).abs().max()) <= 8 * 2.0**-23
    # the tensor between the 1x1 conv and the depthwise conv of the local integration
    seen = {}
    fast = deploy(b)
    conv = dict(fast.named_modules())[f"{HOSTILE_BLOCK}.local_perception"].network[0]
    conv.register_forward_hook(lambda m, args, out: seen.__setitem__("t", out))
    fast(x)
    per_channel = seen["t"].abs().amax((0, 2, 3))
    others = torch.cat([per_channel[:HOSTILE_CHANNEL], per_channel[HOSTILE_CHANNEL + 1 :]])
    assert per_channel[HOSTILE_CHANNEL] > 20 * others.median()


def test_damaged_onnx_weight_is_localized_to_its_block_and_pictured(tmp_path, monkeypatch):
    """The pipeline localizes a failing artifact by itself: report.json, report.md and the picture."""
    from export.targets.onnx import target as onnx_target

    original = onnx_target.convert

    def damaging_convert(ctx):
        artifacts = original(ctx)
        damage_onnx(artifacts[0].path, f"{DAMAGED_CONV}.weight")
        return artifacts

    monkeypatch.setattr(onnx_target, "TARGET", replace(onnx_target.TARGET, convert=damaging_convert))
    with pytest.raises(GateFailure):
        run(make_spec(targets=("onnx",), out_dir=tmp_path, **DIGITS))
    rejected = tmp_path / "rejected"
    (entry,) = json.loads((rejected / "report.json").read_text())["artifacts"]
    loc = entry["localization"]
    assert loc["matched"] and loc["first_over"] == DAMAGED_LAYER
    assert [layer["name"] for layer in loc["layers"]] == TINY_LAYERS
    before = loc["layers"][TINY_LAYERS.index(DAMAGED_LAYER) - 1]
    assert not before["over"] and before["max_rel"] < 1e-5  # fp32 up to the damaged block
    assert "![per-layer error against depth](localization.png)" in (rejected / "report.md").read_text()
    manifest = json.loads((rejected / "manifest.json").read_text())
    assert "localization.png" in [f["path"] for f in manifest["files"]]
    assert (rejected / "localization.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def doc_snippets(language: str) -> list[str]:
    """The ``language`` code blocks of the user page, except those marked as not run here."""
    text = DOCS.read_text()
    blocks = re.findall(r"(<!--[^\n]*-->\n)?```(\w+)\n(.*?)```", text, re.S)
    return [code for marker, lang, code in blocks if lang == language and not marker.startswith("<!-- not run")]


def test_documented_explain_run_localizes_a_healthy_artifact_and_finds_nothing(tmp_path):
    """The page's own snippets (their ``out/`` put under tmp_path): the --explain export,
    then the Python reading its report."""
    (command,) = [code for code in doc_snippets("bash") if "--explain" in code]
    (reader,) = doc_snippets("python")
    subprocess.run(["bash", "-ec", command.replace("out/", f"{tmp_path}/")], cwd=ROOT, check=True, capture_output=True)
    out = tmp_path / "tiny-explain"
    (entry,) = json.loads((out / "report.json").read_text())["artifacts"]
    assert entry["passed"] and entry["localization"]["first_over"] is None
    assert all(layer["max_rel"] < 1e-5 for layer in entry["localization"]["layers"])
    assert (out / "localization.png").is_file()
    assert "![per-layer error against depth](localization.png)" in (out / "report.md").read_text()
    printed = subprocess.run(
        [sys.executable, "-c", reader.replace("out/", f"{tmp_path}/")],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert printed[0].startswith("onnx None ONNX Runtime") and len(printed) == 1 + len(TINY_LAYERS)


def test_int8_fallback_off_keeps_the_failed_artifact():
    from export.targets import Repair
    from export.targets.tflite import target as tflite

    class Context:
        spec = make_spec(int8_fallback="off")

    artifact = Artifact("tflite-int8", "tflite", "int8", Path("unused.tflite"), "unit")
    assert tflite.fallback(artifact, {"passed": False}, Repair(Context(), None, None, None, None)) is None


@pytest.mark.slow  # uses the shared digits export (onnx2tf + Core ML)
def test_healthy_export_is_not_localized(digits_export):
    out, report = digits_export
    assert not any("localization" in a or "fallback" in a for a in report["artifacts"])
    assert not (out / "localization.png").exists()


@pytest.mark.slow  # damages copies of the shared digits export's artifacts
@pytest.mark.parametrize("name", ["tflite-fp32", "coreml-fp16"])
def test_damaged_weight_is_localized_to_its_block(digits_export, tmp_path, name):
    out, report = digits_export
    entry = next(a for a in report["artifacts"] if a["name"] == name)
    copy = tmp_path / entry["file"]
    (shutil.copytree if (out / entry["file"]).is_dir() else shutil.copyfile)(out / entry["file"], copy)
    spec = make_spec(**DIGITS)
    evidence = evidence_for(spec, tmp_path)
    if entry["format"] == "coreml":
        damage_mil(copy, DAMAGED_CONV.replace(".", "_") + "_weight_to_fp16")
    else:
        damage_tflite(copy, dict(evidence.context.deploy_model().named_modules())[DAMAGED_CONV].weight.numpy())
    artifact = Artifact(name, entry["format"], entry["precision"], copy, entry["input_convention"])
    loc = Localizer(evidence)(artifact)
    assert loc["matched"] and loc["first_over"] == DAMAGED_LAYER, loc["summary"]


@pytest.fixture(scope="module")
def hostile_int8(tmp_path_factory):
    """The int8-hostile digits checkpoint exported to full-integer int8 TFLite with the
    default ``--int8-fallback auto``: (out folder, report, checkpoint)."""
    base = tmp_path_factory.mktemp("hostile")
    checkpoint = int8_hostile_checkpoint(DIGITS_CHECKPOINT, base / "hostile.pth")
    spec = make_spec(
        targets=("tflite",),
        out_dir=base / "out",
        tflite_precisions=("int8",),
        calib_count=20,
        **{**DIGITS, "checkpoint": checkpoint},
    )
    return base / "out", run(spec).to_json(), checkpoint


@pytest.mark.slow
def test_plain_int8_of_the_hostile_checkpoint_fails_and_is_localized_to_the_faulty_block(hostile_int8):
    _, report, _ = hostile_int8
    (entry,) = report["artifacts"]
    before = entry["fallback"]["before"]  # the gate's verdict on the plain int8 model
    assert before["passed"] is False and before["min_cosine"] < 0.98
    loc = entry["localization"]  # of the plain int8 model
    assert (
        loc["first_over"] == "stage0.block0.local" and loc["first_over_module"] == f"{HOSTILE_BLOCK}.local_perception"
    )


@pytest.mark.slow
def test_int8_fallback_passes_the_gate_with_few_layers_in_float(hostile_int8):
    out, report, checkpoint = hostile_int8
    (entry,) = report["artifacts"]
    fallback = entry["fallback"]
    assert report["passed"] and entry["passed"] and fallback["passed"]
    assert 1 <= len(fallback["kept_in_float"]) <= 3
    assert fallback["kept_in_float"][0]["module"] == f"{HOSTILE_BLOCK}.local_perception"
    assert fallback["float_mac_share"] <= fallback["float_mac_budget"] == 0.20
    assert fallback["after"]["passed"] and fallback["after"]["min_cosine"] >= 0.98
    assert fallback["localization_after"]["first_over"] is None
    latency = fallback["latency"]
    assert latency["int8_ms"] > 0 and latency["fallback_ms"] > 0 and "interleaved" in latency["method"]
    text = (out / "report.md").read_text()
    assert "int8 fallback passed every check" in text and "![per-layer error against depth](localization.png)" in text


@pytest.mark.slow
def test_repaired_int8_model_holds_on_held_out_digits_and_stays_one_partition(hostile_int8):
    """Checked outside the pipeline: the promoted .tflite on 120 held-out digits against
    eager (the thresholds of tests/test_trained_quantized.py), one XNNPACK partition,
    and its conv MACs (the fallback's budget) against a count on the PyTorch model."""
    from benchmarks.digits import digits_split
    from benchmarks.flops import conv_macs as torch_conv_macs
    from export.parity import compare
    from export.targets import get
    from export.targets.tflite.fallback import Source
    from export.targets.tflite.partitions import summary

    out, report, checkpoint = hostile_int8
    (entry,) = report["artifacts"]
    path = out / entry["file"]
    split = digits_split(64)
    rgb = split["test_rgb"][:120]
    model = model_from_checkpoint(checkpoint)
    reference = reference_logits(model, to_convention(rgb, "normalized"))
    artifact = Artifact(entry["name"], "tflite", "int8", path, entry["input_convention"])
    m = compare(reference, get("tflite").load(artifact)(to_convention(rgb, entry["input_convention"])))
    assert m["min_centered_cosine"] >= 0.99 and m["top1_agreement"] >= 0.97, m
    assert summary(str(path)) == {"partitions": 1, "outside": {}}
    # the input normalization runs as a 3-channel depthwise conv in TFLite: H x W x 3 more MACs
    assert Source(path.read_bytes()).total_macs == torch_conv_macs(deploy(model), 64, 64) + 64 * 64 * 3
