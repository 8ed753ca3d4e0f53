"""An exported set read back by the tools that measure it without re-exporting
(``python -m export.evaluate``, ``python -m benchmarks.exported``): its report, each
artifact as the export made it (``export.spec.Artifact``), the preprocessing record,
the labels and, when they are at hand, the weights of its eager reference.

``locked`` is the one place these tools take OUT's lock (``export.outset.held``,
shared with the export and verify-arm): it is held from reading the set to writing
what was measured, so no export can swap another set in between."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from casvit.preprocess import Preprocessing

from . import golden, parity
from .errors import ExportError
from .fsutil import sha256_of
from .labels import resolve_labels
from .manifest import REPORT_JSON, read_manifest
from .outset import held, problems
from .quiet import captured
from .render import write_report_data
from .spec import Artifact


def artifact_from_entry(entry: dict, out_dir: Path) -> Artifact:
    """The Artifact of a report entry, its file in ``out_dir``."""
    rel = entry["files"][0]["path"] if entry.get("files") else entry["file"]
    return Artifact(
        entry["name"],
        entry["format"],
        entry["precision"],
        Path(out_dir) / rel,
        entry["input_convention"],
        details=entry.get("details", {}),
    )


@dataclass(frozen=True)
class ExportedSet:
    """A complete, unaltered set: every file the manifest lists has its sha256."""

    out_dir: Path
    report: dict  # report.json as read
    artifacts: tuple[Artifact, ...]
    record: Preprocessing
    labels: tuple[str, ...]

    @property
    def spec(self) -> dict:
        return self.report["spec"]

    def entry(self, name: str) -> dict:
        """The report entry of the artifact called ``name``."""
        return next(a for a in self.report["artifacts"] if a["name"] == name)

    def append(self, key: str, entry: dict) -> None:
        """Add ``entry`` to the list ``key`` of report.json and render report.md again,
        both atomically (call inside :func:`locked`); the run_id stays the set's."""
        self.report.setdefault(key, []).append(entry)
        write_report_data(self.out_dir, self.report)


def read_set(out_dir: Path) -> ExportedSet:
    """The deliverable set at the top of ``out_dir``; anything else is an ExportError."""
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    if manifest is None:
        raise ExportError(f"{out_dir} holds no exported set (no manifest.json of this tool); export into it first")
    if manifest.get("rejected"):
        raise ExportError(f"{out_dir} holds a rejected set (its gate failed); give the OUT folder above it")
    found = problems(out_dir, foreign_ok=True)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ExportError(f"{out_dir} is not a complete, unaltered exported set: {found[0]}{more}; re-export")
    report = json.loads((out_dir / REPORT_JSON).read_text(encoding="utf-8"))
    return ExportedSet(
        out_dir,
        report,
        tuple(artifact_from_entry(a, out_dir) for a in report["artifacts"]),
        Preprocessing.from_dict(report["preprocessing"]),
        tuple(report.get("labels") or resolve_labels(report["spec"]["num_classes"])),
    )


@contextlib.contextmanager
def locked(out_dir: Path, tool: str) -> Iterator[ExportedSet]:
    """The set of ``out_dir`` read with OUT's lock held until the block ends (a killed
    export's transaction finished or undone first); ``tool`` names the caller in the
    message another run gets."""
    with held(out_dir, f"; wait for it to finish before {tool}") as real:
        yield read_set(real)


@dataclass(frozen=True)
class Weights:
    """The weights of a set's eager reference, as ``export.source`` builds them: a
    checkpoint file, or seeded random weights (``checkpoint`` None)."""

    checkpoint: Path | None
    use_ema: bool
    variant: str
    num_classes: int
    seed: int

    def build(self):
        """The eval model (torch), built exactly as the export built it."""
        from .source import build_model, read_source
        from .spec import spec_from

        spec = spec_from(
            {
                "checkpoint": self.checkpoint,
                "use_ema": self.use_ema,
                "variant": self.variant,
                "num_classes": self.num_classes,
                "seed": self.seed,
            }
        )
        with captured():  # build_model's note on random weights: the caller says where the weights come from
            model, _ = build_model(spec, read_source(spec))
        return model


def eager_weights(exported: ExportedSet, checkpoint: Path | None = None) -> tuple[Weights | None, str]:
    """The weights of the set's eager reference and a note on where they come from, or
    None and why they are not at hand. ``checkpoint`` (the user's) replaces a moved
    checkpoint, or gives the weights of a set exported from an in-memory model; it must
    be the same weights (sha256, or the set's golden logits), else an ExportError."""
    w, s = exported.report["weights"], exported.spec
    fields = dict(use_ema=bool(s.get("use_ema")), variant=s["variant"], num_classes=s["num_classes"], seed=s["seed"])
    random = not w.get("for_deployment") and not w.get("path")
    if random:
        if checkpoint is not None:
            raise ExportError("--checkpoint: this set was exported from seeded random weights, not from a checkpoint")
        weights = Weights(None, **fields)
        misses = _golden_misses(exported, weights)
        if misses:
            return None, f"not measured: the seeded random weights rebuilt here miss the set's golden logits ({misses})"
        return weights, f"seeded random weights (seed {s['seed']}), rebuilt from the variant and seed"
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise ExportError(f"--checkpoint {checkpoint}: not found")
        if w.get("path") and sha256_of(checkpoint) != w["sha256"]:
            raise ExportError(
                f"--checkpoint {checkpoint} is not the checkpoint this set was exported from "
                f"(sha256 {sha256_of(checkpoint)[:16]}..., the set records {w['sha256'][:16]}...)"
            )
        weights = Weights(checkpoint, **fields)
        if not w.get("path"):  # an in-memory model: its state, not a file, was hashed; its logits must agree
            misses = _golden_misses(exported, weights)
            if misses:
                raise ExportError(
                    f"--checkpoint {checkpoint} does not reproduce the set's golden logits ({misses}): "
                    "not the weights this set was exported from"
                )
            return weights, f"checkpoint {checkpoint} (reproduces the set's golden logits)"
        return weights, f"checkpoint {checkpoint} (sha256 matches the set's)"
    if not w.get("path"):
        return None, (
            "not measured: the set was exported from an in-memory model, whose weights are not at hand "
            "(give --checkpoint FILE with the same weights)"
        )
    path = Path(w["path"])
    if not path.is_file():
        return None, f"not measured: the checkpoint {path} is not at hand (give --checkpoint FILE)"
    if sha256_of(path) != w["sha256"]:
        return None, f"not measured: {path} changed since the export (its sha256 differs; give --checkpoint FILE)"
    return Weights(path, **fields), f"checkpoint {path} (sha256 matches the set's)"


def _golden_misses(exported: ExportedSet, weights: Weights) -> str:
    """How the rebuilt model misses the set's golden logits under the fp32 parity gate ('' when it does not)."""
    import torch

    from .inputs import to_convention

    data = golden.read(exported.out_dir / golden.FILE_NAME)
    with torch.no_grad():
        x = torch.from_numpy(to_convention(data["rgb"], "normalized", data["mean"], data["std"]))
        logits = weights.build()(x).numpy()
    return "; ".join(parity.check(data["logits"], logits, "fp32")["misses"])
