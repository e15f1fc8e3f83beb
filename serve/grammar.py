"""`response_format` to a llama.cpp grammar (GBNF), with llama-cpp-python's JSON grammar and its
JSON-schema converter, as llama-server does.

The grammar constrains the answer only: a reasoning model thinks freely first, and the grammar takes
over after ``</think>`` (the engine switches it on). A little whitespace (up to 4 characters) before the value is allowed, since
R1's answer usually opens with a blank line after ``</think>``.
"""

from __future__ import annotations

import json
import re


class GrammarError(ValueError):
    pass


def _lead_whitespace(gbnf: str) -> str:
    """The same grammar with optional leading whitespace: its root renamed, a new root in front."""
    if re.search(r"(?m)^r1-answer\s*::=", gbnf):
        raise GrammarError("the grammar already has a rule named r1-answer")
    renamed = re.sub(r"(?m)^root(\s*::=)", r"r1-answer\1", gbnf)
    return f'root ::= [ \\t\\n]{{0,4}} r1-answer\n{renamed}'


def response_format_grammar(response_format: dict | None) -> str | None:
    """GBNF for an OpenAI `response_format` ({"type": "text" | "json_object" | "json_schema"}), or None."""
    from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

    if not response_format or response_format.get("type") == "text":
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return _lead_whitespace(JSON_GBNF)
    if kind == "json_schema":
        schema = response_format["json_schema"].get("schema")
        if schema is None:
            schema = {}
        try:
            gbnf = json_schema_to_gbnf(json.dumps(schema))
        except RecursionError:
            raise GrammarError("the JSON schema nests too deeply") from None
        except Exception as exc:  # the converter raises plain exceptions on what it cannot express
            raise GrammarError(f"the JSON schema cannot be turned into a grammar: {exc}") from None
        return _lead_whitespace(gbnf)
    raise GrammarError(f"response_format type {kind!r} is not supported: use text, json_object or json_schema")
