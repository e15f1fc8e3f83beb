"""LiveCodeBench's `code_generation_lite` rows as tests for the `code` check, graded as LiveCodeBench grades.

A row: `question_title`, `question_content`, `platform`, `question_id`, `contest_id`, `contest_date`,
`starter_code`, `difficulty`, `public_test_cases` (a JSON string of ``{input, output, testtype}``),
`private_test_cases` (the same list as a JSON string, pickled, zlib-compressed and base64-encoded, as
LiveCodeBench ships it; some releases ship plain JSON) and `metadata` (a JSON string, with `func_name` for
functional problems).

* **Untrusted pickles are never unpickled.** :func:`decode_private_tests` reads the pickle with
  :class:`DataOnlyUnpickler`, which builds only str, list, dict, int, float, bool and None: it refuses
  every global (`find_class`) and persistent id, so a payload whose `__reduce__` names `os.system` is an
  error, not a call. The decompressed size is capped.
* **Stdin problems** (`testtype` stdin): the program reads the input and prints; the output is right
  when its stripped lines equal the expected ones, or failing that when each line's whitespace-split
  tokens are equal as decimals (LiveCodeBench's `grade_stdio`).
* **Functional problems** (`func_name`; LeetCode): each input line is one JSON argument; the function
  (``Solution().func_name`` when the program defines ``class Solution``, else the module's function) is
  called, a tuple counts as a list, and the JSON of the result must equal the expected output
  (LiveCodeBench's `grade_call_based`). The comparison is made here, on the JSON the sandbox printed.
* Programs get LiveCodeBench's import prelude (``from math import *``, ``from typing import *`` ...).
* **Limits per test as LiveCodeBench's**: 6 s of wall clock per test (its `timeout=6`), the CPU
  bounded by the same 6 s; a completion's hard limit is (6 + 1) s per test + 5 s, LiveCodeBench's global
  timeout. LiveCodeBench sets no memory limit; here 4 GiB, and 32 MiB of output.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import zlib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Optional

TEST_TIMEOUT_S = 6  # LiveCodeBench's codegen_metrics(timeout=6)
LIMITS = {"wall_s": float(TEST_TIMEOUT_S), "cpu_s": TEST_TIMEOUT_S, "memory_mb": 4096, "output_kb": 32768}
MAX_DECODED_BYTES = 1 << 30
COMPARE = "livecodebench"
RESULT_MARK = "\n__r1_distill_livecodebench_result__\n"

# LiveCodeBench's `import_string` (lcb_runner/evaluation/testing_util.py): what its programs may assume
PRELUDE = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\nfrom random import *\n"
    "from statistics import *\nfrom itertools import *\nfrom functools import *\nfrom operator import *\n"
    "from io import *\nfrom sys import *\nfrom json import *\nfrom builtins import *\nfrom typing import *\n"
    "import string\nimport re\nimport datetime\nimport collections\nimport heapq\nimport bisect\nimport copy\n"
    "import math\nimport random\nimport statistics\nimport itertools\nimport functools\nimport operator\n"
    "import io\nimport sys\nimport json\nsys.setrecursionlimit(50000)\n")


class DataOnlyUnpickler(pickle.Unpickler):
    """An unpickler that builds plain data only: any global (a class, a function such as os.system) or
    persistent id is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused: the pickle names {module}.{name}; only plain data is read")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused: the pickle holds a persistent id; only plain data is read")


def _check_plain(value: Any, depth: int = 0) -> Any:
    if depth > 100:
        raise ValueError("nested too deep")
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, list):
        return [_check_plain(v, depth + 1) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _check_plain(v, depth + 1) for k, v in value.items()}
    raise ValueError(f"not plain data: {type(value).__name__}")


def data_only_loads(data: bytes) -> Any:
    """Unpickle `data` when it holds only str/list/dict/int/float/bool/None, else raise ValueError."""
    try:
        value = DataOnlyUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, KeyError) as exc:
        raise ValueError(f"private tests are not plain pickled data: {exc}") from None
    return _check_plain(value)


def decode_private_tests(encoded: str) -> list[dict]:
    """`private_test_cases` as LiveCodeBench ships it (base64 of zlib of a pickled JSON string, or plain
    JSON) -> the list of {input, output, testtype}."""
    text = (encoded or "").strip()
    if not text:
        return []
    if text.startswith("["):
        tests = json.loads(text)
    else:
        try:
            packed = base64.b64decode(text.encode("ascii"), validate=True)
            inflater = zlib.decompressobj()
            raw = inflater.decompress(packed, MAX_DECODED_BYTES)
        except (ValueError, zlib.error) as exc:
            raise ValueError(f"private tests are neither JSON nor base64 of zlib data: {exc}") from None
        if inflater.unconsumed_tail:
            raise ValueError(f"private tests decompress to more than {MAX_DECODED_BYTES >> 20} MiB")
        inner = data_only_loads(raw)
        tests = json.loads(inner) if isinstance(inner, str) else inner
    if not isinstance(tests, list) or not all(isinstance(t, dict) and {"input", "output"} <= t.keys() for t in tests):
        raise ValueError("private tests are not a list of {input, output, testtype}")
    return tests


def encode_private_tests(tests: list[dict]) -> str:
    """LiveCodeBench's encoding (for writing rows in its shape, e.g. test files)."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode("ascii")


def _json_field(row: dict, name: str, default: Any) -> Any:
    value = row.get(name)
    if value in (None, ""):
        return default
    return json.loads(value) if isinstance(value, str) else value


def row_tests(row: dict) -> list[dict]:
    """The row's public and private tests in the `code` check's shape: ``{input, output, compare}`` for
    stdin problems, ``{input, output, call}`` for functional ones."""
    func_name = _json_field(row, "metadata", {}).get("func_name")
    tests = list(_json_field(row, "public_test_cases", [])) + decode_private_tests(row.get("private_test_cases") or "")
    if not tests:
        raise ValueError(f"LiveCodeBench row {row.get('question_id')!r} has no tests")
    shaped = []
    for t in tests:
        functional = t.get("testtype") == "functional" or (func_name and t.get("testtype") != "stdin")
        if functional and not func_name:
            raise ValueError(f"LiveCodeBench row {row.get('question_id')!r}: a functional test without metadata.func_name")
        base = {"input": str(t["input"]), "output": str(t["output"])}
        shaped.append({**base, "call": func_name} if functional else {**base, "compare": COMPARE})
    return shaped


def row_reference(row: dict, store: Optional[Path] = None, inline_bytes: Optional[int] = None) -> str:
    """The `code` check's reference for a LiveCodeBench row (its tests and LiveCodeBench's limits); with
    `store`, large tests are kept in a file there (grading.code.code_reference)."""
    from .code import INLINE_BYTES, code_reference

    return code_reference(row_tests(row), limits=LIMITS, store=store,
                          inline_bytes=INLINE_BYTES if inline_bytes is None else inline_bytes)


# -- grading, in the code check ---------------------------------------------------------------------
def call_harness(program: str, func_name: str) -> str:
    """The program with LiveCodeBench's prelude and a driver that calls `func_name` with the JSON
    arguments on stdin (one a line) and prints the result's JSON after a mark."""
    owner = "Solution()" if "class Solution" in program else "None"
    return (f"{PRELUDE}\n{program}\n\n# -- LiveCodeBench call --\nimport json as _lcb_json, sys as _lcb_sys\n"
            f"_lcb_args = [_lcb_json.loads(_l) for _l in _lcb_sys.stdin.read().split('\\n')]\n"
            f"_lcb_owner = {owner}\n"
            f"_lcb_fn = getattr(_lcb_owner, {func_name!r}) if _lcb_owner is not None else globals()[{func_name!r}]\n"
            "_lcb_result = _lcb_fn(*_lcb_args)\n"
            "if isinstance(_lcb_result, tuple):\n    _lcb_result = list(_lcb_result)\n"
            f"_lcb_sys.stdout.write({RESULT_MARK!r} + _lcb_json.dumps(_lcb_result))\n")


def stdin_program(program: str) -> str:
    return f"{PRELUDE}\n{program}\n"


def call_result(stdout: str, expected: str) -> tuple[bool, str]:
    """Whether the printed result equals the expected JSON (a tuple counted as a list, as LiveCodeBench)."""
    at = stdout.rfind(RESULT_MARK)
    if at < 0:
        return False, "the function returned nothing (no result printed)"
    try:
        got = json.loads(stdout[at + len(RESULT_MARK):])
    except ValueError:
        return False, "the result is not JSON"
    want = json.loads(expected)
    if got == want:
        return True, "result matches"
    return False, f"wrong result: expected {expected[:60]!r}, got {json.dumps(got)[:60]!r}"


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _decimals(line: str) -> Optional[list[Decimal]]:
    try:
        return [Decimal(x) for x in line.split()]
    except (InvalidOperation, ValueError):
        return None


def same_output(got: str, expected: str) -> bool:
    """LiveCodeBench's stdin comparison: stripped lines equal, or each line's tokens equal as decimals."""
    mine, theirs = _lines(got), _lines(expected)
    if len(mine) != len(theirs):
        return False
    for a, b in zip(mine, theirs):
        if a == b:
            continue
        da, db = _decimals(a), _decimals(b)
        if da is None or db is None or da != db:
            return False
    return True
