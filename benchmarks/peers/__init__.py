"""The peer toolchains next to ours: litert-torch (Google's direct PyTorch -> .tflite
converter) and ExecuTorch with its XNNPACK backend, converted from the same seeded
weights, calibrated on the same images, checked for parity against eager PyTorch
and timed interleaved with our .tflite files.

They live in a separate environment (``make peers-setup`` -> ``.venv-peers``, from
``requirements.txt`` + ``constraints.txt`` beside this file) because they pull jax,
transformers and more. Conversion, parity and timing run there, in one process
(:mod:`benchmarks.peers.run`): that environment has the same ``ai-edge-litert`` pin
as the core, so our .tflite files, the litert-torch ones and the ExecuTorch
programs are timed side by side in one interleaved loop. The core environment only
starts that process and turns its JSON into table rows (:mod:`benchmarks.peers.table`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Peer:
    """One peer artifact: ``toolchain`` converts ``form`` (deploy or eval model) at ``precision``."""

    toolchain: str  # "litert-torch" or "executorch"
    form: str  # "deploy": casvit.deploy() form; "eval": the eval model as trained
    precision: str  # "fp32" or "int8" (PT2E static int8, per-channel weights)

    @property
    def name(self) -> str:
        return f"{self.toolchain}-{self.form}-{self.precision}"

    @property
    def runtime(self) -> str:
        return "executorch" if self.toolchain == "executorch" else "litert"


PEERS = (
    Peer("litert-torch", "deploy", "fp32"),
    Peer("litert-torch", "eval", "fp32"),
    Peer("litert-torch", "deploy", "int8"),
    Peer("litert-torch", "eval", "int8"),
    Peer("executorch", "deploy", "fp32"),
    Peer("executorch", "deploy", "int8"),
)
