"""The layering: the stages (teacher, distill, export, serve, ui) build on the shared package r1_distill and use
each other only through a stage's package API (`from r1_distill.serve import create_app`), never its modules;
the shared package imports no stage (the CLI and the demo, which drive the stages, excepted). Every import of
every module is read from its source, the ones inside functions too."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("teacher", "distill", "export", "serve", "ui")
DRIVERS = ("r1_distill.cli", "r1_distill.__main__", "r1_distill.demo")  # they run the stages


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] in STAGES:
        parts = ["r1_distill", *parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) for every import: `from a.b import c` gives a.b and a.b.c (c may be a submodule)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def stage_of(module: str):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "r1_distill" and parts[1] in STAGES else None


def violations(source: str, module: str, is_package: bool = False, known=None) -> list[str]:
    """Imports of `module` that break the layering. `known`: every module of the project (to tell a
    submodule `from r1_distill.serve import app` from a name `from r1_distill.serve import create_app`)."""
    known = known if known is not None else all_modules()
    own = stage_of(module)
    driver = any(module == d or module.startswith(d + ".") for d in DRIVERS)
    bad = []
    for line, target in imported_modules(source, module, is_package):
        stage = stage_of(target)
        if stage is None or stage == own or driver:
            continue
        if own is None:
            bad.append(f"{module}:{line} (shared package) imports the stage module {target}")
        elif target != f"r1_distill.{stage}" and target in known:
            bad.append(f"{module}:{line} imports {target}: another stage's internals (use r1_distill.{stage}'s "
                       "package API, or move what both need into r1_distill)")
    return bad


def project_files() -> list[Path]:
    roots = [ROOT / "r1_distill", *(ROOT / s for s in STAGES)]
    return sorted(p for r in roots for p in r.rglob("*.py"))


def all_modules() -> set[str]:
    return {module_name(p) for p in project_files()}


def test_no_stage_imports_another_stages_modules_and_the_shared_package_imports_no_stage():
    known = all_modules()
    bad = []
    for path in project_files():
        bad += violations(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py", known)
    assert not bad, "\n".join(bad)


def test_the_check_catches_a_stage_reaching_into_another():
    known = all_modules()
    assert "r1_distill.serve.app" in known and "r1_distill.teacher.generate" in known
    reach = "def f():\n    from r1_distill.serve.app import create_app\n"
    assert violations(reach, "r1_distill.ui.app", known=known) == [
        "r1_distill.ui.app:2 imports r1_distill.serve.app: another stage's internals (use r1_distill.serve's package "
        "API, or move what both need into r1_distill)"]
    assert violations("from r1_distill.teacher import generate", "r1_distill.distill.evaluate", known=known)
    assert violations("import r1_distill.serve.app", "r1_distill.teacher.backends", known=known)
    assert violations("from ..serve import app", "r1_distill.ui.chat", known=known)
    assert violations("from r1_distill.distill.train import train", "r1_distill.registry", known=known)
    # what is allowed: a stage's package API, the shared package, and a stage's own modules
    assert not violations("from r1_distill.serve import ServerConfig, create_app", "r1_distill.ui.app", known=known)
    assert not violations("from r1_distill.llama.engine import BatchEngine\nfrom .filter import FilterConfig",
                          "r1_distill.teacher.backends", known=known)
    assert not violations("from r1_distill.distill.train import TrainConfig", "r1_distill.cli", known=known)
