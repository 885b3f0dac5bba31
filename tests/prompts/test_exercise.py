"""The programming exercise layout and its parser (used by the generation stream)."""

from __future__ import annotations

from phicorpus.prompts import EXERCISE_LAYOUT, parse_exercise

GOOD = """### Problem
Write `second_largest(xs)` returning the second largest distinct value, or None.

### Solution
```python
def second_largest(xs):
    values = sorted(set(xs))
    return values[-2] if len(values) >= 2 else None
```

### Tests
```python
assert second_largest([1, 3, 2]) == 2
assert second_largest([5, 5]) is None
assert second_largest([]) is None
```
"""


def test_parses_the_layout_and_runs() -> None:
    ex = parse_exercise(GOOD)
    assert ex is not None
    assert ex.entry_point == "second_largest"
    assert ex.problem.startswith("Write `second_largest(xs)`")
    assert ex.solution_code.startswith("def second_largest")
    assert ex.tests_code.count("assert") == 3
    namespace: dict[str, object] = {}
    exec(ex.solution_code, namespace)
    exec(ex.tests_code, namespace)  # the reference solution passes its tests


def test_the_layout_names_every_heading() -> None:
    for heading in ("### Problem", "### Solution", "### Tests", "```python", "assert"):
        assert heading in EXERCISE_LAYOUT


def test_tolerates_py_fence_and_prose_around_blocks() -> None:
    text = GOOD.replace("```python\ndef", "Here it is:\n```py\ndef").replace("### Tests", "### Tests:")
    ex = parse_exercise(text)
    assert ex is not None and ex.entry_point == "second_largest"


def test_rejects_broken_answers() -> None:
    assert parse_exercise("") is None
    assert parse_exercise(GOOD.replace("### Tests", "### Checks")) is None  # missing section
    assert parse_exercise(GOOD.replace("### Problem", "### Solution", 1)) is None  # wrong order
    assert parse_exercise(GOOD.replace("assert ", "print(")) is None  # no assert
    assert parse_exercise(GOOD.replace("def second_largest(xs):", "def second_largest(xs)")) is None  # syntax
    assert parse_exercise(GOOD.replace("def second_largest(xs):", "second_largest = lambda xs: (")) is None
    assert parse_exercise(GOOD.replace("```python\ndef", "def", 1)) is None  # no code block
    assert parse_exercise(GOOD + "\n### Problem\nagain\n") is None  # a heading twice
