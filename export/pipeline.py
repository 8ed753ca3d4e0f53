"""One export run: build the model, convert each target, audit, check parity
against eager PyTorch, write the report, promote only what passed."""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from casvit import CheckpointError, create_model, model_from_checkpoint
from casvit.init import randomize_batchnorm

from . import audit as audit_mod
from . import golden, parity, targets
from .context import ExportContext, log, tool_versions
from .errors import ExportError, GateFailure
from .fsutil import promote, sha256_of, size_of
from .inputs import parity_images, to_convention
from .labels import resolve_labels
from .offline import no_network
from .report import write_reports
from .spec import Artifact, ExportSpec


def build_model(spec: ExportSpec):
    """The eval model and a description of its weights."""
    if spec.checkpoint is not None:
        path = Path(spec.checkpoint)
        if not path.is_file():
            raise ExportError(f"checkpoint not found: {path}")
        try:
            model = model_from_checkpoint(path, spec.use_ema, spec.variant, spec.num_classes)
        except CheckpointError as e:
            raise ExportError(str(e)) from None
        if model.backbone:
            raise ExportError(f"{path} is a backbone (detection/segmentation) checkpoint; export needs a classifier")
        return model, {"source": f"checkpoint {path.name}" + (" (EMA)" if spec.use_ema else ""),
                       "path": str(path), "sha256": sha256_of(path), "for_deployment": True}
    log(f"WARNING: no checkpoint given: seeded random weights (seed {spec.seed}). NOT FOR DEPLOYMENT.")
    torch.manual_seed(spec.seed)
    try:
        model = create_model(spec.variant, num_classes=spec.num_classes or 1000)
    except ValueError as e:
        raise ExportError(str(e)) from None
    randomize_batchnorm(model, spec.seed)
    return model.eval(), {"source": f"random (seed {spec.seed})", "sha256": "", "for_deployment": False}


def _prepare_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ExportError(f"output folder {out_dir} is not writable: {e.strerror or e}") from None


@torch.no_grad()
def reference_logits(model: torch.nn.Module, x: np.ndarray, chunk: int = 8) -> np.ndarray:
    return np.concatenate([model(torch.from_numpy(x[i:i + chunk])).numpy() for i in range(0, len(x), chunk)])


def verify(artifact: Artifact, rgb: np.ndarray, reference: np.ndarray, record) -> dict:
    """Audit and parity of one artifact, as a report entry."""
    target = targets.get(artifact.format)
    result = audit_mod.audit(artifact.format, target.census(artifact))
    entry = {
        "name": artifact.name, "format": artifact.format, "precision": artifact.precision,
        "file": artifact.path.name, "size_bytes": size_of(artifact.path), "sha256": sha256_of(artifact.path),
        "convert_seconds": round(artifact.convert_seconds, 2), "input_convention": artifact.input_convention,
        "audit": {**asdict(result), "passed": result.passed, "summary": result.summary()},
        "runtime": target.runtime_note(artifact), "details": artifact.details, "parity": None,
    }
    if result.passed:
        log(f"{artifact.name}: parity on {len(rgb)} inputs")
        output = target.load(artifact)(to_convention(rgb, artifact.input_convention, record.mean, record.std))
        entry["parity"] = parity.check(reference, output, artifact.precision)
    return entry


def run(spec: ExportSpec) -> dict:
    """Run the export; returns the report. Raises ExportError on bad input and
    GateFailure (after writing the report) when an artifact misses its gate."""
    # Absolute from here on: converters may change the working folder (onnx2tf does).
    spec = replace(spec, out_dir=Path(spec.out_dir).resolve())
    out_dir = spec.out_dir
    _prepare_out_dir(out_dir)
    workdir = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    try:
        with no_network() as attempts:
            model, weights = build_model(spec)
            ctx = ExportContext(spec, model, weights, resolve_labels(model.num_classes, spec.labels), workdir)
            record = ctx.preprocessing
            names, rgb = parity_images(record, spec.noise_inputs, spec.seed)
            reference = reference_logits(model, to_convention(rgb, "normalized", record.mean, record.std))
            entries, artifacts = [], []
            for name in spec.targets:
                log(f"{name}: converting")
                for artifact in targets.get(name).convert(ctx):
                    artifacts.append(artifact)
                    entries.append(verify(artifact, rgb, reference, record))
        if attempts:  # a library may have swallowed NetworkBlocked: still a failure
            raise ExportError(f"network access was attempted during the export: {attempts[0]}")
        report = {
            "tool": "casvit-deploy", "spec": _spec_dict(spec, model), "weights": weights,
            "versions": tool_versions(), "network_attempts": len(attempts),
            "preprocessing": {**record.to_dict(), "source": ctx.preprocessing_source},
            "parity_inputs": {"names": names, "resolution": spec.resolution, "source": "skimage.data photos + seeded noise"},
            "artifacts": entries,
        }
        _promote(artifacts, entries, out_dir)
        golden.write(out_dir / golden.FILE_NAME, names, rgb, record.mean, record.std, reference)
        report["golden"] = {"file": golden.FILE_NAME, "sha256": sha256_of(out_dir / golden.FILE_NAME),
                            "size_bytes": size_of(out_dir / golden.FILE_NAME)}
        report["passed"] = all(e["status"] == "promoted" for e in entries)
        write_reports(out_dir, report)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    failed = [e for e in entries if e["status"] != "promoted"]
    if failed:
        raise GateFailure("gate failed for " + "; ".join(
            f"{e['name']} ({e['audit']['summary'] if not e['audit']['passed'] else ', '.join(e['parity']['misses'])})"
            for e in failed) + f" -- see {out_dir / 'report.md'}")
    return report


def _promote(artifacts: list[Artifact], entries: list[dict], out_dir: Path) -> None:
    """Move passing artifacts (and their companion files) into ``out_dir``; failed
    ones go to ``out_dir/rejected`` so they can be inspected but never mistaken."""
    for artifact, entry in zip(artifacts, entries):
        ok = entry["audit"]["passed"] and entry["parity"] and entry["parity"]["passed"]
        dest = out_dir if ok else out_dir / "rejected"
        dest.mkdir(exist_ok=True)
        entry["files"] = []
        for path in [artifact.path, *artifact.details.get("companions", [])]:
            target = dest / Path(path).name
            promote(path, target)
            entry["files"].append({"path": os.path.relpath(target, out_dir), "sha256": sha256_of(target),
                                   "size_bytes": size_of(target)})
        entry["status"] = "promoted" if ok else "rejected"
        if "companions" in artifact.details:
            artifact.details["companions"] = [Path(p).name for p in artifact.details["companions"]]


def _spec_dict(spec: ExportSpec, model) -> dict:
    d = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(spec).items()}
    d["resolution"] = spec.resolution
    d["num_classes"] = model.num_classes
    d["options"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in spec.options.items()}
    return d
