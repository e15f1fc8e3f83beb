"""The demo's task family: multi-step integer word problems with a seeded generator.

A problem is a start count and two or three changes ("Ann has 7 pens. Ann gets 5 more. Ann loses 3.
How many pens does Ann have?"). Its arithmetic core (start, changes) is the problem's identity: the
train, prompt and held-out splits are cut from one shuffled pool of distinct cores, so no split
shares a problem with another, whatever the names and items.

Scripted cold-start traces think one line per change ("7 + 5 = 12"), then answer in \\boxed{}. Like
real cold-start data they are imperfect in two ways: a share carry one arithmetic slip, carried
through to a wrong final answer, and a share close the thinking without stating the result ("The
answer is in my reasoning above.", R1-Zero's readability problem in miniature). GRPO's correctness
reward has to train these away, and the filter has to catch them in the teacher's samples.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

NAMES = ["Ann", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lea"]
ITEMS = ["apples", "pens", "coins", "cards", "shells", "stamps", "books", "marbles"]
GAINS = ["gets {n} more", "buys {n} more", "finds {n} more"]
LOSSES = ["gives away {n}", "loses {n}", "sells {n}"]
SPLITS = ("train", "prompt", "heldout")


@dataclass(frozen=True)
class Problem:
    id: str
    split: str
    start: int
    changes: tuple[int, ...]
    name: str
    item: str
    phrasings: tuple[int, ...]

    @property
    def answer(self) -> int:
        return self.start + sum(self.changes)

    @property
    def text(self) -> str:
        sentences = [f"{self.name} has {self.start} {self.item}."]
        for change, phrasing in zip(self.changes, self.phrasings):
            template = (GAINS if change > 0 else LOSSES)[phrasing]
            sentences.append(f"{self.name} {template.format(n=abs(change))}.")
        sentences.append(f"How many {self.item} does {self.name} have?")
        return " ".join(sentences)

    def reasoning(self, slip: tuple[int, int] | None = None) -> str:
        """One line per change; `slip` = (step, error) puts an arithmetic error into that step."""
        lines, total = [], self.start
        for step, change in enumerate(self.changes):
            result = total + change
            if slip is not None and slip[0] == step:
                result = max(0, result + slip[1])
            lines.append(f"{total} {'+' if change > 0 else '-'} {abs(change)} = {result}")
            total = result
        lines.append(f"So {self.name} has {total} {self.item}.")
        return "\n".join(lines)

    @staticmethod
    def final(reasoning: str) -> str:
        return reasoning.rsplit("\n", 1)[-1].split(" has ")[1].split()[0]

    def as_prompt_row(self) -> dict:
        return {"id": self.id, "problem": self.text, "answer": str(self.answer)}


def _random_core(rng: random.Random, max_start: int, max_change: int, max_total: int) -> tuple[int, tuple[int, ...]]:
    while True:
        start = rng.randint(2, max_start)
        changes, total = [], start
        for _ in range(rng.choice((2, 3))):
            if total > 1 and rng.random() < 0.5:
                change = -rng.randint(1, min(max_change, total - 1))
            else:
                change = rng.randint(1, max_change)
            total += change
            changes.append(change)
        if 0 < total <= max_total:
            return start, tuple(changes)


def make_splits(sizes: dict[str, int], seed: int = 0, max_start: int = 12, max_change: int = 6,
                max_total: int = 20) -> dict[str, list[Problem]]:
    """Disjoint splits of distinct problems, the same for the same seed and sizes."""
    rng = random.Random(seed)
    cores, seen = [], set()
    need = sum(sizes[s] for s in SPLITS)
    while len(cores) < need:
        core = _random_core(rng, max_start, max_change, max_total)
        if core not in seen:
            seen.add(core)
            cores.append(core)
    splits, offset = {}, 0
    for split in SPLITS:
        problems = []
        for index, (start, changes) in enumerate(cores[offset: offset + sizes[split]]):
            problems.append(Problem(id=f"{split}-{index:05d}", split=split, start=start, changes=changes,
                                    name=rng.choice(NAMES), item=rng.choice(ITEMS),
                                    phrasings=tuple(rng.randrange(len(GAINS)) for _ in changes)))
        splits[split] = problems
        offset += sizes[split]
    return splits


VAGUE_ANSWER = "The answer is in my reasoning above."


def cold_start_traces(problems: list[Problem], slip_rate: float, vague_rate: float = 0.0, seed: int = 0) -> list[dict]:
    """Scripted traces (reasoning, answer) for the cold-start SFT: `slip_rate` of them carry one
    arithmetic slip, `vague_rate` of them answer without stating the result."""
    rng = random.Random(seed + 1)
    rows = []
    for problem in problems:
        slip = None
        if rng.random() < slip_rate:
            slip = (rng.randrange(len(problem.changes)), rng.choice((-2, -1, 1, 2)))
        reasoning = problem.reasoning(slip)
        vague = rng.random() < vague_rate
        answer = VAGUE_ANSWER if vague else f"{problem.name} has \\boxed{{{Problem.final(reasoning)}}} {problem.item}."
        rows.append({"problem": problem, "reasoning": reasoning, "answer": answer, "vague": vague,
                     "slipped": slip is not None and Problem.final(reasoning) != str(problem.answer)})
    return rows
