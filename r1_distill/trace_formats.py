"""Readers for the public reasoning trace sets: each row of a known shape becomes trace records.

A file's format is detected from the columns of its first row (``--format NAME`` forces one); every row
then becomes one :class:`~r1_distill.traces.TraceRecord` per sampled completion, with the problem, the
reasoning and the answer split apart, the reference answer where the dataset has one, and where it came
from (``meta``: the format, the file, the row's index from 0). A problem's id is a hash of its text, the
same in every source, so the same problem read from two sets is one problem with several samples; the
samples of one problem are numbered 0..k-1 in reading order (OpenR1's ``generations[]`` of a row in
their order). Rows are read one at a time: JSONL line by line, Parquet by record batches.

=====================  ============================================================  ======================
format                 row shape                                                     reference
=====================  ============================================================  ======================
openr1-math            problem, answer, generations[], finish_reasons[], ...         answer
mixture-of-thoughts    messages[{role, content}], num_tokens, source                 none
openthoughts           system, conversations[{from, value}] (OpenThoughts-114k,       none
                       Bespoke-Stratos-17k, Sky-T1_data_17k)
openthoughts-metadata  problem, deepseek_reasoning, deepseek_solution,               ground_truth_solution's
                       ground_truth_solution (OpenThoughts-114k's metadata config)   final answer
openthoughts3          difficulty, source, domain, conversations[{from, value}]      none
s1k-1.1                question, solution, deepseek_thinking_trajectory,             solution's final answer
                       deepseek_attempt, ...
limo                   question, solution, answer                                    answer
am-deepseek-r1         messages[{role, content, info{...}}]                          info.reference_answer
llama-nemotron         input[{role, content}], output, system_prompt, category       none
messages               messages[{role, content[, reasoning_content]}] (any chat      reference_answer column
                       dataset; also what ``filter`` writes to dataset/)
=====================  ============================================================  ======================
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from .errors import UserError
from .reasoning import THINK_CLOSE, THINK_OPEN, split_reasoning
from .traces import TraceRecord

OWN_FORMAT = "r1-distill"  # our own TraceRecord rows, as generate and filter write them
DATASET_BACKEND = "dataset"  # the `backend` of a record read from a public set

THOUGHT_TAGS = ("<|begin_of_thought|>", "<|end_of_thought|>")  # OpenThoughts, Bespoke-Stratos, Sky-T1
ANSWER_WRAPPERS = (("<|begin_of_solution|>", "<|end_of_solution|>"), ("<answer>", "</answer>"))
ROLE_NAMES = {"human": "user", "gpt": "assistant"}  # ShareGPT's `from` values
PARQUET_BATCH_ROWS = 256  # a batch of R1 traces is a few MB
SHORT_SCALAR_CHARS = 200  # a row's scalar columns up to this long go into meta["columns"] (source, domain, uuid, ...)
READ_AS_TEXT = {"problem", "question", "answer", "solution", "output"}  # but not the trace's own texts


# -- the text of one completion --------------------------------------------------------------------------
CLOSED, OPEN, NO_THINKING = "closed", "open", "none"


@dataclass(frozen=True)
class Split:
    reasoning: str
    answer: str
    thinking: str  # CLOSED: a thinking block that ended; OPEN: one that never ended (cut off); NO_THINKING


def split_text(text: str) -> Split:
    """A completion with its thinking inline (`<think>` or OpenThoughts' thought markers) in its two parts."""
    if THOUGHT_TAGS[0] in text:
        reasoning, closed, answer = text.partition(THOUGHT_TAGS[0])[2].partition(THOUGHT_TAGS[1])
        return Split(reasoning.strip(), _unwrapped(answer), CLOSED if closed else OPEN)
    if THINK_CLOSE in text:  # with or without the opening tag (a forced `<think>\n` prompt leaves it out)
        parts = split_reasoning(text)
        return Split(parts.reasoning, _unwrapped(parts.answer), CLOSED)
    if text.lstrip().startswith(THINK_OPEN):
        return Split(text.lstrip()[len(THINK_OPEN):].strip(), "", OPEN)
    return Split("", _unwrapped(text), NO_THINKING)


def _unwrapped(answer: str) -> str:
    """The answer without the solution/answer markers some sets wrap it in."""
    answer = answer.strip()
    for opening, closing in ANSWER_WRAPPERS:
        if answer.startswith(opening):
            answer = answer[len(opening):].rsplit(closing, 1)[0].strip()
    return answer


def split_at_final_answer(text: str) -> Split:
    """A worked solution with no thinking markers (LIMO): the reasoning, then its final answer from the last
    '**Final Answer**' heading, else from the last paragraph with a \\boxed{} in it."""
    if THINK_CLOSE in text or THOUGHT_TAGS[0] in text:
        return split_text(text)
    text = text.strip()
    cut = text.rfind("**Final Answer**")
    if cut < 0:
        paragraphs = text.split("\n\n")
        boxed = [i for i, p in enumerate(paragraphs) if "\\boxed" in p]
        if not boxed or boxed[-1] == 0:
            return Split(text, "", OPEN)
        cut = len("\n\n".join(paragraphs[: boxed[-1]])) + 2
    return Split(text[:cut].strip(), text[cut:].strip(), CLOSED)


def final_answer(solution: Any) -> Optional[str]:
    """A reference answer from a worked solution: its last \\boxed{}, or the whole of a one-line solution
    (AIME's bare numbers); None for a solution with neither."""
    from .grading.parts import last_boxed

    text = _text(solution)
    if text is None:
        return None
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip() or None
    return text if "\n" not in text and len(text) <= 100 else None


def _text(value: Any) -> Optional[str]:
    """A cell as stripped text, None when empty or missing."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


# -- one row's samples -----------------------------------------------------------------------------------
@dataclass
class Sample:
    """What a row says about one completion, before it becomes a TraceRecord."""

    problem: str
    split: Split
    reference: Optional[str] = None
    finish_reason: Optional[str] = None
    problem_id: Optional[str] = None  # only where the row carries our own id (filter's dataset/ rows)
    sample_index: Optional[int] = None
    extra: dict[str, Any] = field(default_factory=dict)  # per-sample fields for meta


def _turns(messages: Any, role_key: str = "role", content_key: str = "content") -> list[dict]:
    """Chat turns as {"role", "content", ...}, ShareGPT's human/gpt named user/assistant."""
    if not isinstance(messages, list):
        return []
    return [{**m, "role": ROLE_NAMES.get(m.get(role_key), m.get(role_key)), "content": m.get(content_key) or ""}
            for m in messages if isinstance(m, dict)]


def _exchange(turns: list[dict]) -> tuple[dict, dict]:
    """The last assistant turn and the user turn before it."""
    last = max((i for i, t in enumerate(turns) if t["role"] == "assistant"), default=None)
    if last is None:
        raise ValueError("no assistant turn")
    user = next((t for t in reversed(turns[:last]) if t["role"] == "user"), None)
    if user is None:
        raise ValueError("no user turn before the assistant's")
    return user, turns[last]


def _assistant_split(turn: dict) -> Split:
    inline = split_text(turn["content"])
    reasoning = _text(turn.get("reasoning_content"))
    if reasoning is None:
        return inline
    # the thinking apart, as an API returns it; filter's dataset/ rows also keep it inline in the content
    return Split(reasoning, inline.answer if inline.thinking == CLOSED else _unwrapped(turn["content"]), CLOSED)


def _at(values: Any, i: int) -> Any:
    return values[i] if isinstance(values, list) and i < len(values) else None


def read_openr1_math(row: dict) -> Iterator[Sample]:
    for i, generation in enumerate(row["generations"] or []):
        yield Sample(problem=row["problem"], split=split_text(generation), reference=_text(row["answer"]),
                     finish_reason=_at(row.get("finish_reasons"), i),  # null in the default split
                     extra={key: _at(row.get(key), i) for key in
                            ("correctness_math_verify", "correctness_llama", "is_reasoning_complete") if key in row})


def read_messages(row: dict) -> Iterator[Sample]:
    user, assistant = _exchange(_turns(row["messages"]))
    index = row.get("sample_index")
    yield Sample(problem=user["content"], split=_assistant_split(assistant), reference=_text(row.get("reference_answer")),
                 problem_id=_text(row.get("problem_id")), sample_index=index if isinstance(index, int) else None)


def read_conversations(row: dict) -> Iterator[Sample]:
    user, assistant = _exchange(_turns(row["conversations"], role_key="from", content_key="value"))
    yield Sample(problem=user["content"], split=split_text(assistant["content"]))


def read_am(row: dict) -> Iterator[Sample]:
    user, assistant = _exchange(_turns(row["messages"]))
    asked, answered = user.get("info") or {}, assistant.get("info") or {}
    think, answer = _text(answered.get("think_content")), _text(answered.get("answer_content"))
    split = Split(think, _unwrapped(answer or ""), CLOSED) if think else split_text(assistant["content"])
    extra = {f"info.{k}": v for k, v in {**asked, **answered}.items()
             if k not in ("reference_answer", "test_case", "think_content", "answer_content") and _is_short_scalar(v)}
    yield Sample(problem=user["content"], split=split, reference=_text(asked.get("reference_answer")), extra=extra)


def read_s1k(row: dict) -> Iterator[Sample]:
    # the card calls `solution` the ground-truth solution: worked out, so its final answer is the reference
    yield Sample(problem=row["question"], reference=final_answer(row["solution"]),
                 split=Split(_text(row["deepseek_thinking_trajectory"]) or "", _unwrapped(row["deepseek_attempt"] or ""), CLOSED))


def read_openthoughts_metadata(row: dict) -> Iterator[Sample]:
    yield Sample(problem=row["problem"], reference=final_answer(row.get("ground_truth_solution")),
                 split=Split(_text(row["deepseek_reasoning"]) or "", _unwrapped(row["deepseek_solution"] or ""), CLOSED))


def read_limo(row: dict) -> Iterator[Sample]:
    yield Sample(problem=row["question"], split=split_at_final_answer(row["solution"] or ""),
                 reference=_text(row["answer"]))


LLAMA3_USER_HEADER, LLAMA3_END = "<|start_header_id|>user<|end_header_id|>", "<|eot_id|>"


def read_nemotron(row: dict) -> Iterator[Sample]:
    given = row["input"]
    if isinstance(given, str):  # v1.0 rows: the prompt rendered with Llama 3's template
        problem = given.rpartition(LLAMA3_USER_HEADER)[2].partition(LLAMA3_END)[0] if LLAMA3_USER_HEADER in given else given
    else:
        problem = next((t["content"] for t in reversed(_turns(given)) if t["role"] == "user"), None)
        if problem is None:
            raise ValueError("no user turn in `input`")
    output = (row["output"] or "").strip().removesuffix(LLAMA3_END)
    yield Sample(problem=problem.strip(), split=split_text(output))


# -- the table of formats ----------------------------------------------------------------------------------
def _messages_carry_info(row: dict) -> bool:
    return any(isinstance(m, dict) and "info" in m for m in row.get("messages") or [])


def _any_row(row: dict) -> bool:
    return True


@dataclass(frozen=True)
class TraceFormat:
    name: str
    columns: frozenset[str]  # every row of this shape has them
    read: Callable[[dict], Iterator[Sample]]
    fits: Callable[[dict], bool] = _any_row  # a closer look where the columns alone are ambiguous


def _format(name: str, columns: str, read, fits=_any_row) -> TraceFormat:
    return TraceFormat(name, frozenset(columns.split()), read, fits)


# detection takes the first that fits: a shape whose columns include another's comes before it
FORMATS = [
    _format("openr1-math", "problem answer generations", read_openr1_math),
    _format("openthoughts-metadata", "problem deepseek_reasoning deepseek_solution", read_openthoughts_metadata),
    _format("am-deepseek-r1", "messages", read_am, fits=_messages_carry_info),
    _format("mixture-of-thoughts", "messages num_tokens source", read_messages),
    _format("openthoughts3", "conversations difficulty domain", read_conversations),
    _format("openthoughts", "system conversations", read_conversations),
    _format("s1k-1.1", "question solution deepseek_thinking_trajectory deepseek_attempt", read_s1k),
    _format("limo", "question solution answer", read_limo),
    _format("llama-nemotron", "input output category", read_nemotron),
    _format("messages", "messages", read_messages),
]
FORMATS_BY_NAME = {f.name: f for f in FORMATS}
KNOWN_NAMES = [OWN_FORMAT, *FORMATS_BY_NAME]


def _known() -> str:
    return ", ".join(KNOWN_NAMES)


def format_named(name: str) -> Optional[TraceFormat]:
    """The format --format NAME asks for; None for our own records."""
    if name == OWN_FORMAT:
        return None
    if name not in FORMATS_BY_NAME:
        raise UserError(f"unknown --format {name}: known: {_known()}")
    return FORMATS_BY_NAME[name]


def detect_format(row: dict) -> Optional[TraceFormat]:
    return next((f for f in FORMATS if f.columns <= row.keys() and f.fits(row)), None)


def is_own_record(row: Optional[dict]) -> bool:
    """Our TraceRecord (valid or not: its reader names what is wrong), or an empty file."""
    if row is None or "completion" in row:
        return True
    return "problem_id" in row and detect_format(row) is None


def unknown_format_error(file: Path, row: dict) -> UserError:
    columns = list(row)
    shown = ", ".join(columns[:20]) + (f", ... ({len(columns)} in all)" if len(columns) > 20 else "")
    return UserError(f"unknown trace format in {file}: columns {shown}; known: {_known()} (or pass --format NAME)")


# -- rows of a file, one at a time ----------------------------------------------------------------------
def iter_rows(file: Path) -> Iterator[dict]:
    if file.suffix == ".parquet":
        return _parquet_rows(file)
    if file.suffix == ".json" and _starts_with(file, b"["):
        return _json_array_rows(file)
    return _jsonl_rows(file)


def first_row(file: Path) -> Optional[dict]:
    return next(iter_rows(file), None)


def _parquet_rows(file: Path) -> Iterator[dict]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(file).iter_batches(batch_size=PARQUET_BATCH_ROWS):
        yield from batch.to_pylist()


def _jsonl_rows(file: Path) -> Iterator[dict]:
    with open(file, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                if not line.endswith(b"\n"):
                    return  # an unterminated last line: a write cut short, never a row
                raise UserError(f"{file}:{number}: not a JSON line") from None
            if not isinstance(row, dict):
                raise UserError(f"{file}:{number}: a JSON line that is not an object (a row of columns)")
            yield row


def _starts_with(file: Path, prefix: bytes) -> bool:
    with open(file, "rb") as fh:
        return fh.read(4096).lstrip().startswith(prefix)


def _json_array_rows(file: Path) -> Iterator[dict]:
    # a JSON array (Sky-T1_data_17k.json) cannot be read a row at a time without a streaming parser: read whole
    with open(file, encoding="utf-8") as fh:
        rows = json.load(fh)
    for number, row in enumerate(rows):
        if not isinstance(row, dict):
            raise UserError(f"{file}: item {number} of the array is not an object (a row of columns)")
        yield row


# -- rows to records ---------------------------------------------------------------------------------------
def problem_hash(problem: str) -> str:
    """The same problem's id in every source: its text, whitespace aside, hashed."""
    return hashlib.sha256(" ".join(problem.split()).encode("utf-8")).hexdigest()[:16]


def _is_short_scalar(value: Any) -> bool:
    return isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= SHORT_SCALAR_CHARS)


class DatasetReader:
    """Reads files of the public sets as TraceRecords. One reader numbers the samples of each problem across
    all the files it reads (a set's shards), so keep one per input."""

    def __init__(self, format: Optional[str] = None):
        self.format_name = format
        self.forced_format = format_named(format) if format else None  # None also for our own format
        self._samples_seen: dict[str, int] = {}

    def reads_own(self, file: Path) -> bool:
        if self.format_name is not None:
            return self.format_name == OWN_FORMAT
        return is_own_record(first_row(file))

    def read(self, file: Path) -> Iterator[TraceRecord]:
        return self.read_rows(iter_rows(file), file)

    def read_rows(self, rows: Iterator[dict], origin: Any) -> Iterator[TraceRecord]:
        """The records of a stream of rows (a file's, or a hub dataset's streamed by `datasets`), its format
        detected from the first row; `origin` names the stream in meta and in errors."""
        rows = iter(rows)
        first = next(rows, None)
        if first is None:
            return
        fmt = self.forced_format or detect_format(first)
        if fmt is None:
            raise unknown_format_error(origin, first)
        for index, row in enumerate(itertools.chain([first], rows)):
            yield from self._records(fmt, row, origin, index)

    def _records(self, fmt: TraceFormat, row: dict, file: Path, index: int) -> list[TraceRecord]:
        missing = sorted(fmt.columns - row.keys())
        if missing:
            raise UserError(f"{file}: row {index} has no {', '.join(missing)} column: not a {fmt.name} row "
                            f"(its columns: {', '.join(row)})")
        columns = {k: v for k, v in row.items() if k not in READ_AS_TEXT and _is_short_scalar(v)}
        meta = {"source": fmt.name, "row": index, "file": str(file), **({"columns": columns} if columns else {})}
        try:
            return [self._record(fmt.name, sample, meta) for sample in fmt.read(row)]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # a cell of the wrong kind, a missing turn
            raise UserError(f"{file}: row {index} is not a {fmt.name} row: {exc}") from None

    def _record(self, source: str, sample: Sample, meta: dict) -> TraceRecord:
        problem = sample.problem.strip()
        problem_id = sample.problem_id or problem_hash(problem)
        index = sample.sample_index
        if index is None:
            index = self._samples_seen.get(problem_id, 0)
            self._samples_seen[problem_id] = index + 1
        fields = dict(problem_id=problem_id, problem=problem, prompt=problem, reference_answer=sample.reference,
                      sample_index=index, teacher=source, backend=DATASET_BACKEND, finish_reason=sample.finish_reason,
                      meta={**meta, **{k: v for k, v in sample.extra.items() if v is not None}})
        split = sample.split
        if split.thinking == OPEN:  # keep it unclosed, so that `filter`'s format check sees the cut
            return TraceRecord.from_completion(completion=split.reasoning, **fields)
        return TraceRecord.from_completion(reasoning=split.reasoning, completion=split.answer, **fields)
