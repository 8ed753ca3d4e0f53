"""The record every export target declares about itself (``TARGET`` in its package's
``target`` module).

Everything outside the target's package that needs to know about a format (the CLI
and the Python API through its option record, ``preflight``, the op audit, the tool
versions of the report, the benchmarks) reads it from this record, so adding a
target is one package and one registry line (``export.targets.REGISTRY``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the spec module reads this package's defaults
    from ..spec import Artifact, ExportSpec


@dataclass(frozen=True)
class BenchRuntime:
    """How the benchmarks run an artifact file with a thread count, in a process that
    may import nothing but this runtime: ``runner(path, threads, x)`` returns a
    zero-argument callable doing one inference on ``x`` (NCHW float32 in the
    artifact's input convention). ``runner`` lives in a module that does not import
    torch (``export.targets.<name>.runtime`` for the built-in formats)."""

    name: str  # e.g. "onnxruntime": the benchmark rows' runtime column
    import_name: str  # the module imported before the memory baseline, e.g. "ai_edge_litert.interpreter"
    runner: Callable[[str, int, Any], Callable[[], object]]


@dataclass(frozen=True)
class MemoryCost:
    """Peak resident memory of an export of this target, from measurements (docs/design.md,
    "Limits"; ``export.limits`` estimates a run with it): a base, bytes per pixel of
    each image eager PyTorch runs at once (the parity inputs, up to 8) and bytes per
    pixel of each image of the batch the target traces and runs (the larger stage is
    the peak), plus ``extra_per_pixel(spec)`` for the target's own inputs, plus bytes
    per class beyond the measured 1000 (the classifier's weights in every copy the
    converters make)."""

    base_bytes: int
    per_reference_pixel: int
    per_batch_pixel: int = 0
    extra_per_pixel: Callable[[ExportSpec], int] | None = None
    per_class: int = 0


@dataclass(frozen=True)
class GraphOp:
    """One operator of an artifact's graph as per-layer localization sees it:
    ``kind`` is ``"add"`` (an elementwise sum), ``"alias"`` (same values in another
    type or place: quantize, dequantize, cast) or ``"op"`` (anything else); the
    inputs are activation tensors only (no constants)."""

    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Intermediates:
    """An artifact's graph and a way to read any of its tensors (``Target.intermediates``):
    ``ops`` in execution order, ``output`` the logits tensor, and ``fetch(names, x)``
    running the artifact in its runtime on ``x`` (NCHW float32 in its input
    convention) and returning each named tensor as float32, NCHW where 4-D."""

    ops: list[GraphOp]
    output: str
    fetch: Callable[[list[str], Any], list[Any]]
    runtime: str  # what computed the tensors, for the report


@dataclass(frozen=True)
class Repair:
    """What a target's ``fallback`` may use to repair an artifact that failed its gate:
    the run's context, the parity inputs in the artifact's input convention, the eager
    logits, the per-layer localization of any artifact (a report dict) and the check
    results of any artifact after every check (check name -> result, and ``passed``:
    whether it clears every gate). The ``entry`` a fallback is given is the failed
    artifact's check results with its ``localization``."""

    context: Any
    inputs: Any
    reference: Any
    localize: Callable[[Artifact], dict]
    verify: Callable[[Artifact], dict]


@dataclass(frozen=True)
class Repaired:
    """A fallback's outcome: the repaired artifact and its check results when one passed
    every check (else None), and what was tried, for the report."""

    artifact: Artifact | None
    entry: dict | None
    report: dict


@dataclass(frozen=True)
class Target:
    """One export format: its name, files, artifacts, audit rules, tools and functions.

    - ``artifact_names(spec)``: the artifact names a run of ``spec`` produces, in order;
    - ``convert(ctx) -> list[Artifact]``: write them into ``ctx.workdir``;
    - ``load(artifact) -> callable``: NCHW float32 batch in the artifact's input
      convention -> float32 logits, in the artifact's own runtime (it may fill
      ``artifact.runtime_facts``);
    - ``census(artifact) -> dict[str, int]``: op name -> count, read from the file;
    - ``runtime_note(artifact) -> str``: how parity was verified;
    - ``options``: its option record (a frozen dataclass of ``export.options.option``
      fields), which the CLI and the Python API read; ``spec.options_of(name)`` holds
      a run's values;
    - ``validate(spec)``: what its options need beyond their own declarations (files,
      combinations), checked before any conversion;
    - ``intermediates(artifact) -> Intermediates``: its graph and tensors, for the
      per-layer localization (``export.localize``); None: not localized;
    - ``fallback(artifact, entry, repair) -> Repaired | None``: a repaired artifact
      for one that failed its gate (e.g. int8 with its worst layers in float); None
      when the target has no repair for it.
    """

    name: str
    artifact_names: Callable[[ExportSpec], tuple[str, ...]]
    convert: Callable[[Any], list[Artifact]]
    load: Callable[[Artifact], Callable]
    census: Callable[[Artifact], dict[str, int]]
    runtime_note: Callable[[Artifact], str]
    allow: frozenset[str]  # op names as the format spells them
    deny: frozenset[str]
    memory: MemoryCost
    deny_prefixes: tuple[str, ...] = ()  # every op starting with one of these is denied too
    tools: tuple[str, ...] = ()  # Python distributions whose versions the report records
    options: type | None = None  # its option record
    validate: Callable[[ExportSpec], None] | None = None
    depends_on: tuple[str, ...] = ()  # targets whose intermediate artifacts it converts from
    # Whether a run of ``spec`` makes a model of this target calibrated on images
    # (``--calib``, ``--calib-from-val``); None: never.
    calibrates: Callable[[ExportSpec], bool] | None = None
    bench: BenchRuntime | None = None  # None: no Linux runtime (no latency rows)
    # Whether load() runs on Linux, so the accuracy benchmark can evaluate it there.
    linux_accuracy: bool = True
    intermediates: Callable[[Artifact], Intermediates] | None = None
    fallback: Callable[[Artifact, dict, Repair], Repaired | None] | None = None

    def calibrated_in(self, spec: ExportSpec) -> bool:
        """Whether a run of ``spec`` makes a model of this target calibrated on images."""
        return self.calibrates is not None and self.calibrates(spec)

    def denies(self, op: str) -> bool:
        return op in self.deny or op.startswith(self.deny_prefixes)
