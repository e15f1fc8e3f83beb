"""llama.cpp's own HF -> GGUF converter, of the same llama.cpp version as the installed runtime.

The converter is not on PyPI as a package, but it ships in llama-cpp-python's source distribution
(``vendor/llama.cpp/convert_hf_to_gguf.py`` with its ``conversion/`` modules and ``gguf-py/``).
We take those three from the sdist of the installed version (pip's cache serves it offline once
the project is set up; ``python3 dev.py setup`` fetches it) into a versioned cache folder, and run
the converter from there as a subprocess. Nothing of it is copied into this repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path

from r1_distill.errors import UserError
from r1_distill.files import cache_root

_WANTED = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")


def runtime_version() -> str:
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        raise UserError("llama-cpp-python is not installed: pip install llama-cpp-python") from None


def converter_dir(version: str | None = None) -> Path:
    return cache_root() / f"llama.cpp-{version or runtime_version()}"


def _extract(sdist: Path, target: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                parts = member.name.split("/vendor/llama.cpp/", 1)
                if len(parts) != 2 or not parts[1].startswith(_WANTED) or not (member.isfile() or member.isdir()):
                    continue
                member.name = parts[1]
                tar.extract(member, tmp, filter="data")
        if not (tmp / "convert_hf_to_gguf.py").is_file():
            raise UserError(f"{sdist.name} has no vendor/llama.cpp/convert_hf_to_gguf.py")
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_converter(version: str | None = None) -> Path:
    """The folder holding convert_hf_to_gguf.py for `version` (default: the installed runtime)."""
    version = version or runtime_version()
    target = converter_dir(version)
    if (target / "convert_hf_to_gguf.py").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as dl:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
               f"llama-cpp-python=={version}", "-d", dl]
        result = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(dl).glob("llama_cpp_python-*.tar.gz"))
        if result.returncode != 0 or not sdists:
            raise UserError(
                f"cannot get llama.cpp's converter: pip could not fetch the llama-cpp-python {version} source "
                f"distribution ({(result.stderr.strip().splitlines() or ['no output'])[-1]}); run `python3 dev.py setup` "
                "once with access to PyPI, or set R1_DISTILL_CACHE to a folder that has it"
            )
        _extract(sdists[0], target)
    return target


def convert_command(model_dir: Path, outfile: Path, outtype: str, model_name: str | None = None) -> tuple[list[str], dict]:
    """The converter's command line and environment (its own gguf-py first on the path)."""
    folder = ensure_converter()
    cmd = [sys.executable, str(folder / "convert_hf_to_gguf.py"), str(model_dir), "--outfile", str(outfile),
           "--outtype", outtype]
    if model_name:
        cmd += ["--model-name", model_name]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder / "gguf-py"), str(folder)]), "HF_HUB_OFFLINE": "1"}
    return cmd, env


def run_converter(model_dir: Path, outfile: Path, outtype: str = "f16", model_name: str | None = None) -> None:
    cmd, env = convert_command(model_dir, outfile, outtype, model_name)
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0 or not outfile.is_file():
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise UserError(f"llama.cpp's converter failed on {model_dir}:\n{tail}")


if __name__ == "__main__":  # python -m r1_distill.export.converter: fetch it now (setup step)
    print(ensure_converter())
