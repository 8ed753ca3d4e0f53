"""One export run: read the weights and complete the spec from them, build the model,
convert each target, verify each artifact (the checks of ``export.checks``: audit,
parity against eager PyTorch, accuracy), then swap the complete set into the output
folder as one transaction: OUT when every artifact passed, else OUT/rejected. The
report is built once, after the set is assembled."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from . import accuracy, carry, checks, golden, interrupts, localize, localize_report, outset, progress, targets
from .context import ExportContext
from .errors import ExportError, GateFailure
from .fsutil import sha256_of, size_of
from .inputs import parity_images, to_convention
from .manifest import TOOL, read_manifest
from .offline import no_network, offline_checks
from .preflight import validate
from .preprocessing import record_at, record_for
from .progress import log, warn
from .render import write_reports
from .report import ArtifactReport, RunReport, spec_entry
from .source import build_model, class_names, read_source, resolve
from .spec import Artifact, ExportSpec


@torch.no_grad()
def reference_logits(model: torch.nn.Module, x: np.ndarray, chunk: int = 8) -> np.ndarray:
    return np.concatenate([model(torch.from_numpy(x[i : i + chunk])).numpy() for i in range(0, len(x), chunk)])


@dataclass(frozen=True)
class Verified:
    """An artifact and what its checks found (before it joins the set)."""

    artifact: Artifact
    results: dict  # check name -> result or None, plus "passed"
    size_bytes: int
    sha256: str
    runtime: str
    localization: dict | None = None  # per-layer localization (export.localize), when it ran
    fallback: dict | None = None  # what the target's repair tried and kept, when it ran


def verify(artifact: Artifact, evidence: checks.Evidence, check_list: list[checks.Check] = checks.CHECKS) -> Verified:
    """Run every check of ``check_list`` on one artifact, in order."""
    runtime = targets.get(artifact.format).runtime_note(artifact)
    size, digest = size_of(artifact.path), sha256_of(artifact.path)
    return Verified(artifact, checks.run_checks(artifact, evidence, check_list), size, digest, runtime)


def run(spec: ExportSpec, model: torch.nn.Module | None = None) -> RunReport:
    """Run the export as one transaction on the output folder (see ``export.outset``);
    ``model`` (a CAS-ViT in memory) replaces the spec's checkpoint. Returns the report;
    raises ExportError on bad input and GateFailure (after swapping the run's set into
    OUT/rejected) when an artifact misses its gate."""
    source = read_source(spec, model)
    spec, given_labels = resolve(spec, source)
    validate(spec)  # every option of every target, and the limits, before any work
    labels, label_warnings = class_names(spec.num_classes, given_labels)
    # Absolute from here on: converters may change the working folder (onnx2tf does).
    spec = replace(spec, out_dir=Path(spec.out_dir).resolve())
    with outset.Transaction(spec.out_dir, force=spec.force) as txn:
        run_facts = _convert_and_verify(spec, source, labels, label_warnings, txn)
        interrupts.raise_if_interrupted()
        report, where = _write_set(txn, run_facts)
    if report.passed:
        for change, names in run_facts.plan.outcome([v.artifact.name for v in run_facts.verified]).items():
            log(f"{change}: {', '.join(names) if names else 'none'}")
    if not report.passed:
        failed = "; ".join(f"{a.name} ({checks.failure_summary(a.checks)})" for a in report.artifacts if not a.passed)
        kept = "the previous set in OUT is unchanged" if report.previous_set_kept else "nothing was promoted"
        raise GateFailure(
            f"gate failed for {failed}; {kept}; this run's files and report: {where / 'report.md'}", report, where
        )
    return report


@dataclass
class _RunFacts:
    """What a run found before its set is assembled."""

    spec: ExportSpec
    ctx: ExportContext
    evidence: checks.Evidence
    verified: list[Verified]
    warnings: list[str]
    accuracy: dict | None
    network_attempts: list
    identity: dict
    plan: carry.Plan


def _convert_and_verify(
    spec: ExportSpec, source, labels: list[str], label_warnings: list[str], txn: outset.Transaction
) -> _RunFacts:
    """Build the model and its eager reference, convert every target into the
    transaction's work folder and check each artifact."""
    with no_network() as attempts:
        with progress.stage("building the model and the eager reference", announce=False):
            model, weights = build_model(spec, source)
            record, record_source = record_for(spec, source.training_args)
            names, rgb = parity_images(record, spec.noise_inputs, spec.seed)
            reference = reference_logits(model, to_convention(rgb, "normalized", record.mean, record.std))
            # --val-dir read and checked before any conversion
            validation, warnings, accuracy_entry = accuracy.prepare(spec, model, labels, record, weights)
            for warning in label_warnings:
                warn(warning)
            warnings = label_warnings + warnings
            ctx = ExportContext(spec, model, weights, labels, txn.workdir, record, record_source, validation)
            evidence = checks.Evidence(
                rgb, reference, names, ctx, record.mean, record.std, partial(_evidence_at, spec, model, record, ctx)
            )
            identity = carry.identity(spec, weights, labels, record.to_dict(), names, rgb)
            plan = carry.plan(txn.out_dir, identity, spec.targets, spec.replace_set)  # before any conversion
            localizer = localize.Localizer(evidence)  # its eager tensors: computed once, if ever needed
        verified = []
        for name in spec.targets:
            with progress.stage(f"{name}: converting"):
                converted = targets.get(name).convert(ctx)
            ctx.converted += converted  # later targets may build on them (see Target.depends_on)
            for artifact in converted:
                with progress.stage(f"{artifact.name}: verifying"):
                    checked = verify(artifact, evidence)
                verified.append(localize.after_checks(checked, localizer, verify))  # on failure or --explain
    if attempts:  # a library may have swallowed NetworkBlocked: still a failure
        raise ExportError(f"network access was attempted during the export: {attempts[0]}")
    return _RunFacts(spec, ctx, evidence, verified, warnings, accuracy_entry, list(attempts), identity, plan)


def _evidence_at(spec: ExportSpec, model, record, ctx: ExportContext, height: int, width: int) -> checks.Evidence:
    """The parity inputs and eager reference at another input size (for artifacts that accept several)."""
    record = record_at(record, spec, height, width)
    names, rgb = parity_images(record, spec.noise_inputs, spec.seed)
    reference = reference_logits(model, to_convention(rgb, "normalized", record.mean, record.std))
    return checks.Evidence(rgb, reference, tuple(names), ctx, record.mean, record.std)


def _write_set(txn: outset.Transaction, facts: _RunFacts) -> tuple[RunReport, Path]:
    """Assemble the set (artifacts, golden data), build the report, write it and swap
    the set in; returns the report and where the set went."""
    passed = all(v.results["passed"] for v in facts.verified)
    with progress.stage("writing the output set"):
        entries = [_artifact_report(txn, v, passed) for v in facts.verified]
        if passed:
            entries += carry.carry_into(txn, facts.plan.kept)
        e = facts.evidence
        golden.write(txn.new_dir / golden.FILE_NAME, e.names, e.rgb, e.mean, e.std, e.reference)
        for other in e.sizes().values():
            path = txn.new_dir / golden.file_name_at(other.resolution)
            golden.write(path, other.names, other.rgb, other.mean, other.std, other.reference)
        picture = localize_report.write_picture(txn.new_dir, [entry.to_json() for entry in entries])
        report = _run_report(txn, facts, entries, passed, picture and {"file": picture, **txn.add_written(picture)})
        write_reports(txn.new_dir, report)
        interrupts.raise_if_interrupted()
        with interrupts.deferred():  # the swap and the clean-up run to their end
            where = txn.commit(report.manifest_fields(), rejected=not passed)
            txn.close()
    return report, where


def _artifact_report(txn: outset.Transaction, v: Verified, passed: bool) -> ArtifactReport:
    """Move an artifact and its companion files into the new set; its report entry."""
    a = v.artifact
    files = tuple(txn.add(path) for path in [a.path, *a.companions])
    ok = v.results["passed"]
    return ArtifactReport(
        name=a.name,
        format=a.format,
        precision=a.precision,
        file=a.path.name,
        size_bytes=v.size_bytes,
        sha256=v.sha256,
        convert_seconds=round(a.convert_seconds, 2),
        input_convention=a.input_convention,
        runtime=v.runtime,
        details=a.report_details(),  # after the checks: load() records what it measured
        checks={k: r for k, r in v.results.items() if k != "passed"},
        passed=ok,
        companions=tuple(p.name for p in a.companions),
        runtime_facts=asdict(a.runtime_facts),
        files=files,
        status="promoted" if passed else ("rejected: another artifact failed" if ok else "rejected"),
        localization=v.localization,
        fallback=v.fallback,
    )


def _run_report(
    txn: outset.Transaction, facts: _RunFacts, entries: list[ArtifactReport], passed: bool, picture: dict | None
) -> RunReport:
    spec, ctx, e = facts.spec, facts.ctx, facts.evidence
    return RunReport(
        tool=TOOL,
        run_id=txn.run_id,
        passed=passed,
        spec=spec_entry(spec, ctx.model.num_classes),
        weights=ctx.weights,
        versions=targets.tool_versions(),
        network_attempts=len(facts.network_attempts),
        offline=offline_checks(facts.network_attempts),
        preprocessing={**ctx.preprocessing.to_dict(), "source": ctx.preprocessing_source},
        parity_inputs={"names": e.names, "resolution": spec.resolution, "source": "skimage.data photos + seeded noise"},
        artifacts=tuple(entries),
        golden={"file": golden.FILE_NAME, **txn.add_written(golden.FILE_NAME)},
        golden_sizes={
            other.resolution: {"file": name, **txn.add_written(name)}
            for other in e.sizes().values()
            for name in [golden.file_name_at(other.resolution)]
        },
        labels=tuple(ctx.labels),
        warnings=tuple(facts.warnings),
        library_warnings=tuple(dict.fromkeys(facts.ctx.library_warnings)),
        accuracy=facts.accuracy,
        previous_set_kept=None if passed else read_manifest(txn.out_dir) is not None,
        set_identity=facts.identity,
        localization_picture=picture,
    )
