"""The package installs under one namespace; nothing named like a stage lands at the top level."""

import subprocess
import sys
import sysconfig
from pathlib import Path


def _run(code: str, cwd: Path):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_namespace_imports_from_outside_the_checkout(tmp_path):
    out = _run("import r1_distill.teacher, r1_distill.distill, r1_distill.export, r1_distill.serve, r1_distill.ui", tmp_path)
    assert out.returncode == 0, out.stderr
    for top in ("serve", "ui", "teacher", "distill", "export"):
        out = _run(f"import {top}", tmp_path)
        assert out.returncode != 0 and "ModuleNotFoundError" in out.stderr, top


def test_no_stage_folder_at_top_of_site_packages():
    site = Path(sysconfig.get_paths()["purelib"])
    for top in ("serve", "ui", "teacher", "distill", "export"):
        assert not (site / top).exists() and not (site / f"{top}.py").exists()


def test_console_script_and_registry_ship_with_the_package(tmp_path):
    exe = Path(sys.executable).with_name("r1-distill")
    out = subprocess.run([str(exe), "models"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0 and "r1-distill-qwen-7b" in out.stdout, out.stderr
