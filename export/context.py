"""Shared state of one export run, each piece read once: the resolved spec, the eval
model and its weights, the labels, the preprocessing record, the user's labelled
images, the calibration images, the deploy forms and the intermediate artifacts one
target builds for another (e.g. the static ONNX TFLite converts from)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from casvit import DeployCASViT, Preprocessing, deploy
from casvit.model import CASViT

from .preprocessing import artifact_record, convention_of
from .spec import Artifact, ExportSpec


def log(message: str) -> None:
    """Progress line on stderr, with the seconds since start."""
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


_T0 = time.perf_counter()


@dataclass
class ExportContext:
    spec: ExportSpec  # resolved (export.source.resolve)
    model: CASViT  # eval model: the eager reference
    weights: dict[str, Any]  # source, path, sha256, for_deployment
    labels: list[str]
    workdir: Path  # staging folder on the output's filesystem
    preprocessing: Preprocessing  # the record: defaults, the checkpoint's args, the options
    preprocessing_source: str
    validation: Any = None  # the --val-dir images (export.labelled_images.ValidationSet) or None
    converted: list[Artifact] = field(default_factory=list)  # this run's artifacts so far, in conversion order
    deployed: dict[tuple, DeployCASViT] = field(default_factory=dict)  # deploy forms by (embed, input range)
    intermediates: dict[Any, Any] = field(default_factory=dict)  # what targets build for others, by key
    library_warnings: list[str] = field(default_factory=list)  # the converters' own caveats, for the report

    log = staticmethod(log)

    @cached_property
    def calibration(self):
        """The images int8 models are calibrated on (``export.calibration.CalibrationSet``):
        the ``--calib-from-val`` split, else ``--calib``, else the bundled photos; read on first use."""
        from .calibration import load_calibration

        if self.validation is not None and self.validation.calibration is not None:
            return self.validation.calibration
        c = self.spec.calibration
        return load_calibration(self.preprocessing, c.calib, c.calib_count)

    def _input_choice(self, embed_normalization: bool | None, input_range: float | None) -> tuple[bool, float]:
        """(embed normalization?, input range), the spec's where not given."""
        return (
            self.spec.embed_normalization if embed_normalization is None else embed_normalization,
            self.spec.input_range if input_range is None else input_range,
        )

    def deploy_model(self, embed_normalization: bool | None = None, input_range: float | None = None) -> DeployCASViT:
        """The deploy form (made once per input choice); defaults follow the spec."""
        key = self._input_choice(embed_normalization, input_range)
        if key not in self.deployed:
            p = self.preprocessing
            self.deployed[key] = deploy(self.model, normalize_input=key[0], input_range=key[1], mean=p.mean, std=p.std)
        return self.deployed[key]

    def input_convention(self, embed_normalization: bool | None = None, input_range: float | None = None) -> str:
        return convention_of(*self._input_choice(embed_normalization, input_range))

    def intermediate(self, key, build: Callable[[], Any]) -> Any:
        """``build()``, once per run and ``key``: an intermediate artifact a target
        makes for others (see ``export.targets.onnx.target.static_model``)."""
        if key not in self.intermediates:
            self.intermediates[key] = build()
        return self.intermediates[key]

    def metadata_record(self, convention: str | None = None) -> dict[str, Any]:
        """Facts every artifact records, as plain JSON values: ``preprocessing`` is the
        record for the artifact's input ``convention`` (default: the spec's), ``labels``
        the class names in output order."""
        s = self.spec
        return {
            "model": "CAS-ViT",
            "variant": s.variant,
            "resolution": s.resolution,
            "num_classes": int(self.model.num_classes),
            "preprocessing": artifact_record(self.preprocessing, convention or self.input_convention()),
            "labels": list(self.labels),
            "weights_source": self.weights["source"],
            "weights_sha256": self.weights.get("sha256", ""),
            "for_deployment": bool(self.weights["for_deployment"]),
            "output": "logits (raw scores; apply softmax for probabilities)",
        }

    def metadata(self, convention: str | None = None) -> dict[str, str]:
        """:meth:`metadata_record` as strings, for formats whose metadata is a string map
        (ONNX ``metadata_props``, Core ML ``userDefined``): other values as JSON."""
        return {
            k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=isinstance(v, dict))
            for k, v in self.metadata_record(convention).items()
        }
