"""Shared state of one export run: the eval model, its deploy forms, the artifacts
converted so far, intermediate artifacts built once (e.g. the static ONNX TFLite
converts from), metadata and progress output."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casvit import DeployCASViT, Preprocessing, deploy
from casvit.model import CASViT

from .preprocessing import artifact_record, convention_of, record_for
from .progress import log
from .spec import Artifact, ExportSpec


@dataclass
class ExportContext:
    spec: ExportSpec
    model: CASViT  # eval model: the eager reference
    weights: dict[str, Any]  # source, path, sha256, for_deployment
    labels: list[str]
    workdir: Path  # staging folder on the output's filesystem
    converted: list[Artifact] = field(default_factory=list)  # this run's artifacts so far, in conversion order
    _cache: dict = field(default_factory=dict)
    preprocessing: Preprocessing = field(init=False)  # the record: from the checkpoint's args and the options
    preprocessing_source: str = field(init=False)

    log = staticmethod(log)

    def __post_init__(self):
        self.preprocessing, self.preprocessing_source = record_for(self.spec)

    def _input_choice(self, embed_normalization: bool | None, input_range: float | None) -> tuple[bool, float]:
        """(embed normalization?, input range), the spec's where not given."""
        return (
            self.spec.embed_normalization if embed_normalization is None else embed_normalization,
            self.spec.input_range if input_range is None else input_range,
        )

    def deploy_model(self, embed_normalization: bool | None = None, input_range: float | None = None) -> DeployCASViT:
        """The deploy form (cached); defaults follow the spec."""
        embed, rng = self._input_choice(embed_normalization, input_range)
        key = ("deploy", embed, rng)
        if key not in self._cache:
            p = self.preprocessing
            self._cache[key] = deploy(self.model, normalize_input=embed, input_range=rng, mean=p.mean, std=p.std)
        return self._cache[key]

    def input_convention(self, embed_normalization: bool | None = None, input_range: float | None = None) -> str:
        return convention_of(*self._input_choice(embed_normalization, input_range))

    def intermediate(self, key, build: Callable[[], Any]) -> Any:
        """``build()``, once per run and ``key``: an intermediate artifact a target
        makes for others (see ``export.targets.onnx.static_model``)."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def metadata(self, convention: str | None = None) -> dict[str, str]:
        """Facts every artifact records (string values, for ONNX/TFLite/Core ML metadata);
        ``preprocessing`` is the record, as JSON, for the artifact's input ``convention``
        (default: the spec's), ``labels`` the class names as a JSON list."""
        s = self.spec
        return {
            "model": "CAS-ViT",
            "variant": s.variant,
            "resolution": s.resolution,
            "num_classes": str(self.model.num_classes),
            "preprocessing": json.dumps(artifact_record(self.preprocessing, convention or self.input_convention())),
            "labels": json.dumps(self.labels, ensure_ascii=False),
            "weights_source": self.weights["source"],
            "weights_sha256": self.weights.get("sha256", ""),
            "for_deployment": str(self.weights["for_deployment"]).lower(),
            "output": "logits (raw scores; apply softmax for probabilities)",
        }
