"""grading.livecodebench: LiveCodeBench's private tests (base64 of zlib of a pickled JSON string) are decoded
without ever running what a pickle names: plain data is read, a payload that would run code is refused."""

import base64
import json
import os
import pickle
import zlib
from pathlib import Path

import pytest

from r1_distill.grading.livecodebench import decode_private_tests, encode_private_tests, row_tests


class _RunsCode:
    """What a hostile row could ship: unpickling it calls os.system."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _shipped(obj) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(obj))).decode()


def test_plain_private_tests_decode_as_livecodebench_ships_them():
    tests = [{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]
    assert decode_private_tests(encode_private_tests(tests)) == tests
    assert decode_private_tests(json.dumps(tests)) == tests  # some releases ship plain JSON
    assert decode_private_tests("") == []


@pytest.mark.parametrize("wrap", [lambda p: p, lambda p: [p], lambda p: {"tests": p}])
def test_a_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path, wrap):
    marker = tmp_path / "pwned"
    payload = _shipped(wrap(_RunsCode(f"touch {marker}")))
    assert not marker.exists()
    with pytest.raises(ValueError, match="refused"):
        decode_private_tests(payload)
    row = {"question_id": "x", "public_test_cases": "[]", "private_test_cases": payload, "metadata": "{}"}
    with pytest.raises(ValueError, match="refused"):
        row_tests(row)
    assert not marker.exists()


def test_the_marker_appears_when_plain_pickle_is_used(tmp_path):
    """The payload is real: unpickled with plain pickle (in a child process) it runs the command."""
    marker = tmp_path / "ran"
    payload = _shipped(_RunsCode(f"touch {marker}"))
    pid = os.fork()
    if pid == 0:
        try:
            pickle.loads(zlib.decompress(base64.b64decode(payload)))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert Path(marker).exists()


def test_other_objects_are_refused_too():
    import collections

    with pytest.raises(ValueError):
        decode_private_tests(_shipped(collections.OrderedDict(a=1)))
    with pytest.raises(ValueError):
        decode_private_tests(_shipped(b"bytes are not text"))
