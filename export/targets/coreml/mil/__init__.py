"""Reference interpreter for saved Core ML ML Programs (.mlpackage): parses the
mlProgram spec, reads weights with coremltools' blob reader, decompresses constexpr
weights in NumPy and runs every other op with torch's CPU kernels (a whole batch per
op), rounding to each op's declared dtype. Lets Linux CI verify Core ML artifacts
numerically; it supports exactly the ops the Core ML audit allows."""

from .errors import ProgramError, UnsupportedOpError
from .ops import SUPPORTED_OPS
from .program import Program, main_block, op_census

__all__ = ["Program", "ProgramError", "UnsupportedOpError", "SUPPORTED_OPS", "main_block", "op_census"]
