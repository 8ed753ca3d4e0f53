"""Runs .tflite models on golden inputs in whatever LiteRT this Python finds and
writes their raw logits; the host computes metrics. Self-contained on purpose:
it runs inside the emulated ARM64 root (and in an x86 LiteRT 1.4.0 side install),
where only NumPy and ai_edge_litert exist, so it imports nothing from the project.

    python runner.py JOB.json

JOB.json: {"golden": path, "out": path.npz, "runs": [{"key", "model", "convention",
"arithmetic": "default" | "fp16"}]}. The .npz gets one (N, C) float32 array per
run key that ran plus ``info`` (a JSON string: versions, machine, CPU features, XNNPACK
flags, and the error of each run that failed).
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import sys

import numpy as np

# Linux AT_HWCAP / AT_HWCAP2 bit names on aarch64 (arch/arm64/include/uapi/asm/hwcap.h),
# the same names /proc/cpuinfo prints as "Features"; qemu-user reports the host's
# /proc/cpuinfo, so the auxiliary vector is the guest's own view.
AT_HWCAP, AT_HWCAP2 = 16, 26
HWCAP_NAMES = (
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt "
    "fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs "
    "sb paca pacg"
).split()
HWCAP2_NAMES = (
    "dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm "
    "svef64mm svebf16 i8mm bf16 dgh rng bti mte ecv afp rpres mte3 sme sme_i16i64 "
    "sme_f64f64 sme_i8i32 sme_f16f32 sme_b16f32 sme_f32f32 sme_fa64 wfxt ebf16"
).split()

# Input conventions of an artifact (a copy of ``export.inputs.CONVENTIONS``: this file runs without the project).
CONVENTIONS = ("normalized", "unit", "byte")
# XNNPACK delegate flags (tensorflow/lite/delegates/xnnpack/xnnpack_delegate.h).
XNNPACK_FLAG_FORCE_FP16 = 0x4


def cpu_features() -> list[str]:
    """The CPU features the process sees: HWCAP bits on aarch64, /proc/cpuinfo flags elsewhere."""
    if platform.machine() in ("aarch64", "arm64"):
        libc = ctypes.CDLL(None)
        libc.getauxval.restype = ctypes.c_ulong
        libc.getauxval.argtypes = [ctypes.c_ulong]
        names = []
        for key, table in ((AT_HWCAP, HWCAP_NAMES), (AT_HWCAP2, HWCAP2_NAMES)):
            bits = libc.getauxval(key)
            names += [name for i, name in enumerate(table) if bits >> i & 1]
        return names
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return line.split(":", 1)[1].split()
    except OSError:
        pass
    return []


class _XnnpackOptions(ctypes.Structure):
    """TfLiteXNNPackDelegateOptions, read only up to ``flags``. The struct is larger
    than this and returned by value, so the rest is padding big enough for it (any
    struct over 16 bytes comes back through a caller-provided buffer on both
    aarch64 and x86-64). The field order (num_threads, runtime_flags, flags) is the
    one LiteRT 1.4.0's TfLiteXNNPackDelegateOptionsDefault fills (flags = QS8|QU8 = 3)."""

    _fields_ = [
        ("num_threads", ctypes.c_int32),
        ("runtime_flags", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("_rest", ctypes.c_uint8 * 500),
    ]


class Fp16XnnpackDelegate:
    """An XNNPACK delegate with TFLITE_XNNPACK_DELEGATE_FLAG_FORCE_FP16, created through
    the C API that the ai_edge_litert wheel ships (libLiteRtRuntimeCApi.so). The Python
    Interpreter takes it like a load_delegate() result: it only calls
    _get_native_delegate_pointer(). Written by hand: the wheel has no Python route to
    XNNPACK's flags."""

    def __init__(self):
        import ai_edge_litert

        path = os.path.join(os.path.dirname(ai_edge_litert.__file__), "libLiteRtRuntimeCApi.so")
        self._lib = lib = ctypes.CDLL(path)
        lib.TfLiteXNNPackDelegateOptionsDefault.restype = _XnnpackOptions
        lib.TfLiteXNNPackDelegateCreate.restype = ctypes.c_void_p
        lib.TfLiteXNNPackDelegateCreate.argtypes = [ctypes.POINTER(_XnnpackOptions)]
        lib.TfLiteXNNPackDelegateGetFlags.restype = ctypes.c_uint32
        lib.TfLiteXNNPackDelegateGetFlags.argtypes = [ctypes.c_void_p]
        lib.TfLiteXNNPackDelegateDelete.argtypes = [ctypes.c_void_p]
        options = lib.TfLiteXNNPackDelegateOptionsDefault()
        self.default_flags = int(options.flags)
        options.num_threads = 1
        options.flags |= XNNPACK_FLAG_FORCE_FP16
        self._pointer = lib.TfLiteXNNPackDelegateCreate(ctypes.byref(options))
        if not self._pointer:
            raise RuntimeError("TfLiteXNNPackDelegateCreate returned NULL")
        self.flags = int(lib.TfLiteXNNPackDelegateGetFlags(self._pointer))

    def _get_native_delegate_pointer(self):
        return self._pointer

    def close(self):
        if self._pointer:
            self._lib.TfLiteXNNPackDelegateDelete(self._pointer)
            self._pointer = None


def model_input(rgb: np.ndarray, convention: str, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> NHWC float32 in the artifact's input convention
    (the same float32 steps as the export's parity check)."""
    x = rgb.astype(np.float32)
    if convention == "byte":
        return x
    x = x / np.float32(255.0)
    if convention == "unit":
        return x
    if convention == "normalized":
        return ((x - mean.astype(np.float32).reshape(1, 1, 1, 3)) / std.astype(np.float32).reshape(1, 1, 1, 3)).astype(
            np.float32
        )
    raise ValueError(f"unknown input convention {convention!r}")


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """float32 -> a LiteRT tensor's dtype, using its (scale, zero_point) for int8/uint8
    (a copy of ``export.litert_io.quantize``: this file runs without the project)."""
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return x.astype(np.float32)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    """A LiteRT output tensor -> float32, using its (scale, zero_point) when integer
    (a copy of ``export.litert_io.dequantize``)."""
    if np.dtype(detail["dtype"]) == np.float32:
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


def run_model(path: str, batch: np.ndarray, arithmetic: str) -> tuple[np.ndarray, dict]:
    """Logits of every sample (batch 1, one thread), and what the delegate reported."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    delegate, info = None, {"arithmetic": arithmetic}
    if arithmetic == "fp16":
        delegate = Fp16XnnpackDelegate()
        info.update(xnnpack_default_flags=delegate.default_flags, xnnpack_flags=delegate.flags)
        interpreter = Interpreter(
            model_path=path,
            num_threads=1,
            experimental_delegates=[delegate],
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
    elif arithmetic == "default":
        interpreter = Interpreter(model_path=path, num_threads=1)
    else:
        raise ValueError(f"unknown arithmetic {arithmetic!r}")
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    logits = []
    for sample in batch:
        interpreter.set_tensor(inp["index"], quantize(sample[None], inp))
        interpreter.invoke()
        logits.append(dequantize(interpreter.get_tensor(out["index"]), out)[0])
    del interpreter
    if delegate is not None:
        delegate.close()
    return np.stack(logits).astype(np.float32), info


def environment() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import ai_edge_litert

    try:
        litert = version("ai-edge-litert")
    except PackageNotFoundError:  # installed with --target: no metadata on sys.path
        litert = getattr(ai_edge_litert, "__version__", "unknown")
    return {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "ai_edge_litert": litert,
        "cpu_features": cpu_features(),
    }


def main(job_path: str) -> int:
    with open(job_path) as f:
        job = json.load(f)
    with np.load(job["golden"], allow_pickle=False) as golden:
        rgb, mean, std = golden["rgb"], golden["mean"], golden["std"]
    arrays, runs = {}, {}
    for run in job["runs"]:
        batch = model_input(rgb, run["convention"], mean, std)
        try:
            arrays[run["key"]], runs[run["key"]] = run_model(run["model"], batch, run["arithmetic"])
        except Exception as e:  # one model that LiteRT rejects must not hide the others
            runs[run["key"]] = {"arithmetic": run["arithmetic"], "error": f"{type(e).__name__}: {e}".splitlines()[0]}
    info = {**environment(), "runs": runs}
    tmp = job["out"] + ".tmp.npz"
    np.savez(tmp, info=np.asarray(json.dumps(info)), **arrays)
    os.replace(tmp, job["out"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
