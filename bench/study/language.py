"""The study's task language: checkable instructions, two answer styles, two prompt wordings.

Four tasks, each with an in-distribution (ID) wording, the only one the distillation data uses,
and an out-of-distribution (OOD) wording that the teacher and the student's pretraining know
but the teacher responses given to the student never show:

    count     "Count from 3 to 6."   | "List the numbers from 3 to 6."
    repeat    "Repeat: red tree"     | "Say again: red tree"    (2-3 words)
    fruit     "Name a fruit."        | "Which fruit do you like?"      (several valid answers)
    describe  "Describe a fox."      | "Tell me about the fox."         (several valid answers)

Two answer styles share vocabulary and templates (one language family):
  teacher  "3, 4, 5, 6."; fruits apple/banana/cherry/plum with weights .55/.25/.12/.08;
           two distinct adjectives out of 8.
  generic  "3 4 5 6"; any of 8 fruits uniformly; two distinct adjectives out of 14.
The teacher LM is trained on teacher-style text (both wordings); the student is "pretrained" on
generic-style text (both wordings), never on teacher outputs. Validity is the task's rule, i.e.
the teacher's style, for either wording: `is_valid`.
"""

from __future__ import annotations

import random
import re

ANIMALS = ["cat", "dog", "horse", "owl", "fox", "bear", "frog", "whale"]
TEACHER_ADJECTIVES = ["small", "quick", "quiet", "brave", "gentle", "clever", "strong", "calm"]
GENERIC_ADJECTIVES = TEACHER_ADJECTIVES + ["happy", "tall", "wild", "proud", "shy", "warm"]
TEACHER_FRUITS = {"apple": 0.55, "banana": 0.25, "cherry": 0.12, "plum": 0.08}
GENERIC_FRUITS = list(TEACHER_FRUITS) + ["pear", "grape", "lemon", "mango"]
WORDS = ["red", "blue", "green", "stone", "river", "cloud", "light", "tree", "sand", "wind"]
TASKS = ("count", "repeat", "fruit", "describe")
WORDINGS = {
    "count": ("Count from {a} to {b}.", "List the numbers from {a} to {b}."),
    "repeat": ("Repeat: {w}", "Say again: {w}"),
    "fruit": ("Name a fruit.", "Which fruit do you like?"),
    "describe": ("Describe a {animal}.", "Tell me about the {animal}."),
}
FRUIT_PROMPTS = {"id": WORDINGS["fruit"][0], "ood": WORDINGS["fruit"][1]}


def fruit_answer(fruit: str) -> str:
    return f"A good fruit is the {fruit}."


def make_prompt(rng: random.Random, wording: str, task: str | None = None) -> tuple[str, str, dict]:
    """(task, prompt, parameters) with the ID (wording='id') or OOD ('ood') wording."""
    task = task or rng.choice(TASKS)
    form = WORDINGS[task][0 if wording == "id" else 1]
    if task == "count":
        a = rng.randint(1, 6)
        params = {"a": a, "b": a + rng.randint(2, 5)}
        return task, form.format(**params), params
    if task == "repeat":
        params = {"w": " ".join(rng.sample(WORDS, rng.randint(2, 3)))}
        return task, form.format(**params), params
    if task == "fruit":
        return task, form, {}
    params = {"animal": rng.choice(ANIMALS)}
    return task, form.format(**params), params


def make_answer(rng: random.Random, task: str, params: dict, style: str) -> str:
    teacher = style == "teacher"
    if task == "count":
        nums = [str(i) for i in range(params["a"], params["b"] + 1)]
        return ", ".join(nums) + "." if teacher else " ".join(nums)
    if task == "repeat":
        return params["w"]
    if task == "fruit":
        if teacher:
            fruit = rng.choices(list(TEACHER_FRUITS), weights=list(TEACHER_FRUITS.values()))[0]
        else:
            fruit = rng.choice(GENERIC_FRUITS)
        return fruit_answer(fruit)
    a1, a2 = rng.sample(TEACHER_ADJECTIVES if teacher else GENERIC_ADJECTIVES, 2)
    return f"The {params['animal']} is {a1} and {a2}."


def corpus(seed: int, n: int, style: str) -> list[dict]:
    """n prompt/response rows, half of the prompts in each wording."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        task, prompt, params = make_prompt(rng, rng.choice(["id", "ood"]))
        rows.append({"prompt": prompt, "response": make_answer(rng, task, params, style)})
    return rows


def prompts(seed: int, n: int, wording: str) -> list[str]:
    rng = random.Random(seed)
    return [make_prompt(rng, wording)[1] for _ in range(n)]


_PATTERNS = [
    ("count", re.compile(r"(?:Count|List the numbers) from (\d+) to (\d+)\.")),
    ("repeat", re.compile(r"(?:Repeat|Say again): (.+)")),
    ("fruit", re.compile(r"Name a fruit\.|Which fruit do you like\?")),
    ("describe", re.compile(r"(?:Describe a|Tell me about the) (\w+)\.")),
]


def parse_prompt(prompt: str) -> tuple[str, tuple]:
    for task, pattern in _PATTERNS:
        if m := pattern.fullmatch(prompt.strip()):
            return task, m.groups()
    raise ValueError(f"not a prompt of the study's language: {prompt!r}")


def is_valid(prompt: str, answer: str) -> bool:
    """The task's rule (the teacher's style), whatever the prompt's wording."""
    task, groups = parse_prompt(prompt)
    answer = answer.strip()
    if task == "count":
        a, b = int(groups[0]), int(groups[1])
        return answer == ", ".join(str(i) for i in range(a, b + 1)) + "."
    if task == "repeat":
        return answer == groups[0]
    if task == "fruit":
        return answer in {fruit_answer(f) for f in TEACHER_FRUITS}
    m = re.fullmatch(rf"The {groups[0]} is (\w+) and (\w+)\.", answer)
    return bool(m) and m.group(1) in TEACHER_ADJECTIVES and m.group(2) in TEACHER_ADJECTIVES \
        and m.group(1) != m.group(2)


def task_of(prompt: str) -> str:
    return parse_prompt(prompt)[0]
