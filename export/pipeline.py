"""One export run: build the model, convert each target, verify each artifact (the
checks of ``export.checks``: audit, parity against eager PyTorch, accuracy), then swap
the complete set into the output folder as one transaction: OUT when every artifact
passed, else OUT/rejected."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from casvit import CheckpointError, create_model, model_from_checkpoint
from casvit.seeding import randomize_batchnorm

from . import accuracy, checks, golden, interrupts, localize, localize_report, outset, progress, targets
from .context import ExportContext, log
from .errors import ExportError, GateFailure
from .fsutil import sha256_of, size_of
from .inputs import parity_images, to_convention
from .labels import resolve_labels
from .offline import no_network, offline_checks
from .preflight import validate
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
        return model, {
            "source": f"checkpoint {path.name}" + (" (EMA)" if spec.use_ema else ""),
            "path": str(path),
            "sha256": sha256_of(path),
            "for_deployment": True,
        }
    log(f"WARNING: no checkpoint given: seeded random weights (seed {spec.seed}). NOT FOR DEPLOYMENT.")
    torch.manual_seed(spec.seed)
    try:
        model = create_model(spec.variant, num_classes=spec.num_classes or 1000)
    except ValueError as e:
        raise ExportError(str(e)) from None
    randomize_batchnorm(model, spec.seed)
    return model.eval(), {"source": f"random (seed {spec.seed})", "sha256": "", "for_deployment": False}


@torch.no_grad()
def reference_logits(model: torch.nn.Module, x: np.ndarray, chunk: int = 8) -> np.ndarray:
    return np.concatenate([model(torch.from_numpy(x[i : i + chunk])).numpy() for i in range(0, len(x), chunk)])


def verify(artifact: Artifact, evidence: checks.Evidence, check_list: list[checks.Check] = checks.CHECKS) -> dict:
    """The report entry of one artifact: what it is, then the result of every check
    in ``check_list`` (run in order), then what running it measured."""
    target = targets.get(artifact.format)
    entry = {
        "name": artifact.name,
        "format": artifact.format,
        "precision": artifact.precision,
        "file": artifact.path.name,
        "size_bytes": size_of(artifact.path),
        "sha256": sha256_of(artifact.path),
        "convert_seconds": round(artifact.convert_seconds, 2),
        "input_convention": artifact.input_convention,
        "runtime": target.runtime_note(artifact),
    }
    results = checks.run_checks(artifact, evidence, check_list)
    entry["details"] = artifact.report_details()  # after the checks: load() records what it measured
    entry.update(results)
    entry["companions"] = [path.name for path in artifact.companions]
    entry["runtime_facts"] = asdict(artifact.runtime_facts)
    return entry


def run(spec: ExportSpec) -> dict:
    """Run the export as one transaction on the output folder (see ``export.outset``);
    returns the report. Raises ExportError on bad input and GateFailure (after
    swapping the run's set into OUT/rejected) when an artifact misses its gate."""
    validate(spec)  # every option of every target, and the limits, before any work
    # Absolute from here on: converters may change the working folder (onnx2tf does).
    spec = replace(spec, out_dir=Path(spec.out_dir).resolve())
    with outset.Transaction(spec.out_dir, force=spec.force) as txn:
        report, artifacts, evidence = _convert_and_verify(spec, txn)
        interrupts.raise_if_interrupted()
        where = _write_set(txn, report, artifacts, evidence)
    if not report["passed"]:
        failed = "; ".join(f"{e['name']} ({checks.failure_summary(e)})" for e in report["artifacts"] if not e["passed"])
        kept = "the previous set in OUT is unchanged" if report["previous_set_kept"] else "nothing was promoted"
        raise GateFailure(
            f"gate failed for {failed}; {kept}; this run's files and report: {where / 'report.md'}", report, where
        )
    return report


def _convert_and_verify(spec: ExportSpec, txn: outset.Transaction) -> tuple[dict, list[Artifact], checks.Evidence]:
    """Build the model and its eager reference, convert every target into the
    transaction's work folder and check each artifact; returns the report."""
    with no_network() as attempts:
        with progress.stage("building the model and the eager reference", announce=False):
            model, weights = build_model(spec)
            ctx = ExportContext(spec, model, weights, resolve_labels(model.num_classes, spec.labels), txn.workdir)
            record = ctx.preprocessing
            names, rgb = parity_images(record, spec.noise_inputs, spec.seed)
            reference = reference_logits(model, to_convention(rgb, "normalized", record.mean, record.std))
            evidence = checks.Evidence(rgb, reference, names, ctx, record.mean, record.std)
            localizer = localize.Localizer(evidence)  # its eager tensors: computed once, if ever needed
            checked_inputs = accuracy.prepare(ctx)  # --val-dir read and checked before any conversion
        entries, artifacts = [], []
        for name in spec.targets:
            with progress.stage(f"{name}: converting"):
                converted = targets.get(name).convert(ctx)
            ctx.converted += converted  # later targets may build on them (see Target.depends_on)
            for artifact in converted:
                with progress.stage(f"{artifact.name}: verifying"):
                    entry = verify(artifact, evidence)
                artifact, entry = localize.after_checks(artifact, entry, localizer, verify)  # on failure or --explain
                entries.append(entry)
                artifacts.append(artifact)
    if attempts:  # a library may have swallowed NetworkBlocked: still a failure
        raise ExportError(f"network access was attempted during the export: {attempts[0]}")
    passed = all(e["passed"] for e in entries)
    report = {
        "tool": outset.TOOL,
        "run_id": txn.run_id,
        "passed": passed,
        "rejected": not passed,
        "spec": _spec_dict(spec, model),
        "weights": weights,
        "versions": targets.tool_versions(),
        "network_attempts": len(attempts),
        "offline": offline_checks(attempts),
        "preprocessing": {**record.to_dict(), "source": ctx.preprocessing_source},
        "parity_inputs": {
            "names": names,
            "resolution": spec.resolution,
            "source": "skimage.data photos + seeded noise",
        },
        "artifacts": entries,
        **checked_inputs,
    }
    return report, artifacts, evidence


def _write_set(txn: outset.Transaction, report: dict, artifacts: list[Artifact], evidence: checks.Evidence) -> Path:
    """Assemble the set (artifacts, golden data, reports) and swap it in; returns where it went."""
    passed = report["passed"]
    with progress.stage("writing the output set"):
        _assemble(txn, artifacts, report["artifacts"], passed)
        golden.write(
            txn.new_dir / golden.FILE_NAME,
            evidence.names,
            evidence.rgb,
            evidence.mean,
            evidence.std,
            evidence.reference,
        )
        report["golden"] = {"file": golden.FILE_NAME, **txn.add_written(golden.FILE_NAME)}
        if not passed:
            report["previous_set_kept"] = outset.read_manifest(txn.out_dir) is not None
        picture = localize_report.write_picture(txn.new_dir, report)
        if picture:
            report["localization_picture"] = {"file": picture, **txn.add_written(picture)}
        write_reports(txn.new_dir, report)
        interrupts.raise_if_interrupted()
        with interrupts.deferred():  # the swap and the clean-up run to their end
            where = txn.commit(manifest_fields(report), rejected=not passed)
            txn.close()
    return where


def _assemble(txn: outset.Transaction, artifacts: list[Artifact], entries: list[dict], passed: bool) -> None:
    """Move every artifact and its companion files into the new set; status per entry."""
    for artifact, entry in zip(artifacts, entries):
        entry["files"] = [txn.add(path) for path in [artifact.path, *artifact.companions]]
        entry["status"] = (
            "promoted" if passed else ("rejected: another artifact failed" if entry["passed"] else "rejected")
        )


def manifest_fields(report: dict) -> dict:
    """What the manifest says about the set besides its files."""
    return {
        "variant": report["spec"]["variant"],
        "resolution": report["spec"]["resolution"],
        "weights": report["weights"],
        "versions": report["versions"],
    }


def _spec_dict(spec: ExportSpec, model) -> dict:
    d = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(spec).items()}
    d["resolution"] = spec.resolution
    d["num_classes"] = model.num_classes
    d["options"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in spec.options.items()}
    return d
