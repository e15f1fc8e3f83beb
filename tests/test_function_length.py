"""The trainers and the server's handlers stay readable: no function in distill/ or serve/ is over 60 lines
(decorators and docstring included), so a fix lands in a function one can read whole."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 60


def long_functions(folder: str, root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted((root / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if node.end_lineno - start + 1 > LIMIT:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name}: {node.end_lineno - start + 1} lines")
    return found


def test_no_function_in_distill_or_serve_is_over_60_lines():
    assert not long_functions("distill") + long_functions("serve")


def test_the_check_sees_a_long_function(tmp_path):
    (tmp_path / "pkg").mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    (tmp_path / "pkg" / "m.py").write_text(f"def short():\n    return 1\n\n\ndef long():\n{body}\n")
    assert long_functions("pkg", root=tmp_path) == [f"pkg/m.py:5 long: {LIMIT + 1} lines"]
