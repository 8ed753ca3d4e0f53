"""Op audit shared by every format: an artifact's op census against an allow list
and a deny list. A denied or unknown op fails the export."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

# Op names as each format spells them.
RULES: dict[str, dict[str, frozenset[str]]] = {
    "onnx": {
        "allow": frozenset({
            "Conv", "Sigmoid", "Relu", "Gelu", "Mul", "Add", "GlobalAveragePool", "ReduceMean",
            "Split", "Slice", "Reshape", "Flatten", "Constant", "Identity",
        }),
        "deny": frozenset({"MatMul", "Gemm", "Softmax", "LogSoftmax", "Einsum", "Attention", "Erf",
                           "BatchNormalization"}),
    },
    "tflite": {
        "allow": frozenset({
            "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MUL", "LOGISTIC", "RELU", "GELU", "MEAN",
            "SPLIT", "SPLIT_V", "STRIDED_SLICE", "PAD", "RESHAPE", "QUANTIZE", "DEQUANTIZE",
        }),
        "deny": frozenset({"FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX", "CUSTOM"}),
    },
    "coreml": {  # exactly what the reference interpreter (export.mil) executes
        "allow": frozenset({
            "conv", "add", "mul", "sigmoid", "relu", "gelu", "reduce_mean", "split", "reshape",
            "cast", "const", "constexpr_lut_to_dense", "constexpr_affine_dequantize",
            "constexpr_blockwise_shift_scale",
            "classify",  # added by ClassifierConfig: top label + label->probability dict
            "softmax",  # only the one feeding classify; the census renames any other (denied below)
        }),
        "deny": frozenset({"linear", "matmul", "softmax_not_feeding_classify", "einsum", "batch_norm", "erf"}),
    },
}


@dataclass
class AuditResult:
    census: dict[str, int]
    denied: list[str]
    unknown: list[str]

    @property
    def passed(self) -> bool:
        return not self.denied and not self.unknown

    def summary(self) -> str:
        parts = []
        if self.denied:
            parts.append("denied ops: " + ", ".join(self.denied))
        if self.unknown:
            parts.append("ops outside the allow list: " + ", ".join(self.unknown))
        return "; ".join(parts) or "ok"


def is_denied(fmt: str, op: str) -> bool:
    """Deny-list membership; for TFLite every Flex op and every custom op is denied too."""
    if op in RULES[fmt]["deny"]:
        return True
    return fmt == "tflite" and (op.startswith("Flex") or op.startswith("CUSTOM"))


def audit(fmt: str, census: Counter | dict[str, int]) -> AuditResult:
    """Check a census (op name -> count) against the rules of ``fmt``."""
    if fmt not in RULES:
        raise ValueError(f"no audit rules for format {fmt!r}")
    ops = sorted(census)
    denied = [op for op in ops if is_denied(fmt, op)]
    unknown = [op for op in ops if op not in denied and op not in RULES[fmt]["allow"]]
    return AuditResult(dict(sorted(census.items())), denied, unknown)
