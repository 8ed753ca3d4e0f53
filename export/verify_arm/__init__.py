"""``python -m export.verify_arm OUT``: every .tflite of an output set run in the
Android app's LiteRT release on emulated ARM64 (qemu-user, ``-cpu max``: FP16
arithmetic, dot-product and i8mm) and on x86, gated against the golden data with
the export's own parity gates; writes ``verify-arm.json`` / ``verify-arm.md``."""

# The LiteRT release the Android app ships (android_app/gradle/libs.versions.toml,
# "litert"); tests/test_verify_arm.py fails when the two differ.
LITERT_VERSION = "1.4.0"
# NumPy in both side installs: the venv's, so only LiteRT and the CPU differ.
NUMPY_VERSION = "2.4.6"
