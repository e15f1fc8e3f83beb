"""Quantize a GGUF with llama.cpp's quantizer, through llama-cpp-python's `llama_model_quantize`."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

from r1_distill.errors import UserError

# name -> (llama_ftype attribute, bits per weight, roughly, for the disk-space estimate)
QUANT_TYPES: dict[str, tuple[str, float]] = {
    "F32": ("LLAMA_FTYPE_ALL_F32", 32.0),
    "F16": ("LLAMA_FTYPE_MOSTLY_F16", 16.0),
    "BF16": ("LLAMA_FTYPE_MOSTLY_BF16", 16.0),
    "Q8_0": ("LLAMA_FTYPE_MOSTLY_Q8_0", 8.5),
    "Q6_K": ("LLAMA_FTYPE_MOSTLY_Q6_K", 6.6),
    "Q5_K_M": ("LLAMA_FTYPE_MOSTLY_Q5_K_M", 5.7),
    "Q4_K_M": ("LLAMA_FTYPE_MOSTLY_Q4_K_M", 4.9),
    "Q4_0": ("LLAMA_FTYPE_MOSTLY_Q4_0", 4.5),
}
FLOAT_TYPES = {"F32", "F16", "BF16"}


def parse_quants(spec: str | list[str]) -> list[str]:
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    quants = []
    for raw in names:
        name = raw.strip().upper()
        if not name:
            continue
        if name not in QUANT_TYPES:
            raise UserError(f"unknown quant type {raw.strip()!r}: choose from {', '.join(QUANT_TYPES)}")
        if name not in quants:
            quants.append(name)
    if not quants:
        raise UserError("no quant type given: pass --quant Q4_K_M (or a comma-separated list)")
    return quants


def quantize(src: Path, dst: Path, quant: str, *, threads: int | None = None, imatrix: Path | None = None) -> None:
    if imatrix is not None:
        return _quantize_with_imatrix(src, dst, quant, imatrix)
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_TYPES[quant][0])
    params.nthread = threads or os.cpu_count() or 1
    code = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if code != 0 or not dst.is_file():
        raise UserError(f"llama.cpp failed to quantize {src.name} to {quant} (code {code})")


def _quantize_with_imatrix(src: Path, dst: Path, quant: str, imatrix: Path) -> None:
    # llama_model_quantize takes the matrix as a C++ map, which Python cannot build: llama.cpp's own
    # llama-quantize tool reads the file instead.
    tool = shutil.which("llama-quantize")
    if tool is None:
        raise UserError("importance-matrix quants need llama.cpp's llama-quantize on PATH "
                        "(build llama.cpp, or drop --imatrix)")
    if not imatrix.is_file():
        raise UserError(f"importance matrix {imatrix} does not exist")
    result = subprocess.run([tool, "--imatrix", str(imatrix), str(src), str(dst), quant], capture_output=True, text=True)
    if result.returncode != 0 or not dst.is_file():
        raise UserError(f"llama-quantize failed: {result.stderr.strip().splitlines()[-1:]}")


def estimated_bytes(params: int, quant: str) -> int:
    return int(params * QUANT_TYPES[quant][1] / 8 * 1.05) + (64 << 20)
