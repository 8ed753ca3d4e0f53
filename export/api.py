"""The Python API: ``export_model`` exports a CAS-ViT (in memory, or a checkpoint file)
to the given targets and returns what came out, typed. The command line
(``python -m export``) is a thin layer over it; both take the same options.

Every failure is an exception whose type says what happened, one type per exit code
of the command line (``export.errors``): ``GateFailure`` (1: an artifact missed its
gate; its set went to OUT/rejected), ``ExportError`` (2: bad input),
``EnvironmentFailure`` (3: the machine failed the run), ``InternalError`` (4: a bug),
``ConverterCrash`` (5: a converter crashed; ``converter`` and ``stage`` say which and
where), ``KeyboardInterrupt`` (130) and ``Terminated`` (143). ``exit_code`` on each of the
tool's own exceptions gives the number."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import EXIT_ENVIRONMENT, EnvironmentFailure, ExportError, InternalError, internal_message, outcome
from .manifest import MANIFEST, REPORT_JSON, REPORT_MD
from .report import ArtifactReport, RunReport
from .spec import spec_from


@dataclass(frozen=True)
class ExportedArtifact:
    """One artifact of the set: where it is and what its checks found."""

    path: Path
    report: ArtifactReport

    @property
    def name(self) -> str:
        return self.report.name

    @property
    def format(self) -> str:
        return self.report.format

    @property
    def precision(self) -> str:
        return self.report.precision

    @property
    def passed(self) -> bool:
        return self.report.passed

    @property
    def parity(self) -> dict[str, Any] | None:
        """The parity check's result: ``metrics`` (max_abs, max_rel, min_cosine, ...) and ``tolerance``."""
        return self.report.check("parity")

    @property
    def accuracy(self) -> dict[str, Any] | None:
        """The accuracy check's result (with ``val_dir``): ``details`` holds top-1/top-5."""
        return self.report.check("accuracy")

    @property
    def companions(self) -> tuple[Path, ...]:
        return tuple(self.path.parent / name for name in self.report.companions)


@dataclass(frozen=True)
class ExportResult:
    """What ``export_model`` made: the output folder, its artifacts and its report."""

    out_dir: Path
    report: RunReport
    artifacts: tuple[ExportedArtifact, ...]

    @property
    def passed(self) -> bool:
        return self.report.passed

    @property
    def report_json(self) -> Path:
        return self.out_dir / REPORT_JSON

    @property
    def report_md(self) -> Path:
        return self.out_dir / REPORT_MD

    @property
    def manifest(self) -> Path:
        return self.out_dir / MANIFEST

    def artifact(self, name: str) -> ExportedArtifact:
        """The artifact called ``name`` (e.g. "onnx", "tflite-int8", "coreml-fp16")."""
        found = [a for a in self.artifacts if a.name == name]
        if not found:
            raise KeyError(f"no artifact {name!r}; this set has {', '.join(a.name for a in self.artifacts)}")
        return found[0]


def export_model(
    model_or_checkpoint: torch.nn.Module | str | Path | None = None,
    *,
    targets: str | list[str] | tuple[str, ...] | None = None,
    out: str | Path | None = None,
    labels: str | Path | list[str] | None = None,
    val_dir: str | Path | None = None,
    **options: Any,
) -> ExportResult:
    """Export a CAS-ViT and verify every artifact; returns the set when every artifact passed.

    ``model_or_checkpoint``: a ``casvit`` CASViT in memory (fine-tuned or not), a
    checkpoint file, or None for seeded random weights (NOT FOR DEPLOYMENT).
    ``targets``: names or "all" (default: the command line's). ``out``: the output
    folder (default ``out/<variant>_<res>``). ``labels``: class names or a labels
    file. ``val_dir``: labelled images for the accuracy check. ``options``: any other
    option of ``python -m export --help`` by its name with underscores (``res=224``,
    ``tflite_precisions=["int8"]``, ``coreml_precision="fp32"``, ``calib=...``).
    """
    from .pipeline import run

    module = model_or_checkpoint if isinstance(model_or_checkpoint, torch.nn.Module) else None
    values = dict(options)
    if isinstance(model_or_checkpoint, (str, Path)):
        if values.get("checkpoint") is not None:
            raise ExportError("give the checkpoint once: as the first argument or as checkpoint=")
        values["checkpoint"] = model_or_checkpoint
    elif model_or_checkpoint is not None and module is None:
        raise ExportError(f"expected a CAS-ViT model or a checkpoint path, got {type(model_or_checkpoint).__name__}")
    given = {"targets": targets, "out_dir": out, "labels": labels, "val_dir": val_dir}
    values.update({k: v for k, v in given.items() if v is not None})
    try:
        report = run(spec_from(values), model=module)
    except (ExportError, KeyboardInterrupt):
        raise
    except Exception as e:  # the machine (out of memory, disk full) or a bug: typed, the cause chained
        code, message = outcome(e)
        if code == EXIT_ENVIRONMENT:
            raise EnvironmentFailure(message) from e
        raise InternalError(internal_message(e)) from e
    return result_of(report)


def result_of(report: RunReport) -> ExportResult:
    """The typed result of a run whose set is in ``report.spec["out_dir"]``."""
    out_dir = Path(report.spec["out_dir"])
    return ExportResult(out_dir, report, tuple(ExportedArtifact(out_dir / a.file, a) for a in report.artifacts))
