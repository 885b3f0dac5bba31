"""The machine-readable answer layout of programming exercises, and its parser.

A prompt whose ``answer_format`` is ``python-tests`` asks the model to answer in exactly this
layout (:data:`EXERCISE_LAYOUT`, inserted into the prompt as ``{{layout}}``)::

    ### Problem
    <the task in prose: what the function takes, returns, and its edge cases>

    ### Solution
    ```python
    def function_name(...):
        ...
    ```

    ### Tests
    ```python
    assert function_name(...) == ...
    assert ...
    ```

:func:`parse_exercise` splits such an answer into problem, solution code and test code (the
generation stream runs the tests against the solution in a sandbox and keeps passing samples).

Example:
    >>> ex = parse_exercise(
    ...     "### Problem\\nAdd.\\n### Solution\\n```python\\ndef add(a, b):\\n    return a + b\\n```\\n"
    ...     "### Tests\\n```python\\nassert add(1, 2) == 3\\n```\\n")
    >>> ex.entry_point, ex.tests_code
    ('add', 'assert add(1, 2) == 3')
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

__all__ = ["ANSWER_PYTHON_TESTS", "ANSWER_TEXT", "EXERCISE_LAYOUT", "Exercise", "parse_exercise"]

#: ``answer_format`` of prompts whose answer follows :data:`EXERCISE_LAYOUT` (checkable by tests).
ANSWER_PYTHON_TESTS = "python-tests"
#: ``answer_format`` of every other prompt (free text).
ANSWER_TEXT = "text"

EXERCISE_LAYOUT = """\
Answer in exactly this layout, with these three Markdown headings in this order and nothing
before the first heading:

### Problem
The task in prose: what the function is called, what it takes and returns, and the edge cases
it must handle.

### Solution
One ```python code block that defines the function (standard library only, no input() or
printing, no network or file access).

### Tests
One ```python code block of at least three plain `assert` statements that call the function
and pass when the solution is right (no test framework, no printing)."""

_HEADING = re.compile(r"^###[ \t]+(Problem|Solution|Tests)[ \t]*:?[ \t]*$", re.MULTILINE | re.IGNORECASE)
_FENCE = re.compile(r"^```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Exercise:
    """A programming exercise parsed from a model's answer."""

    problem: str
    solution_code: str
    tests_code: str
    entry_point: str
    """The name of the first function the solution defines."""


def parse_exercise(text: str) -> Exercise | None:
    """Split an answer in :data:`EXERCISE_LAYOUT` into its parts; ``None`` if it does not follow it.

    It follows the layout when the three headings appear once each and in order, the solution
    section holds a ``python`` code block that parses and defines a function, and the tests
    section holds a code block that parses and contains at least one ``assert`` statement.
    Text outside the code blocks of the solution and tests sections is ignored.
    """
    headings = list(_HEADING.finditer(text))
    names = [m.group(1).lower() for m in headings]
    if names != ["problem", "solution", "tests"]:
        return None
    problem = text[headings[0].end() : headings[1].start()].strip()
    solution = _code_block(text[headings[1].end() : headings[2].start()])
    tests = _code_block(text[headings[2].end() :])
    if not problem or solution is None or tests is None:
        return None
    try:
        solution_tree = ast.parse(solution)
        tests_tree = ast.parse(tests)
    except (SyntaxError, ValueError):
        return None
    functions = [n for n in solution_tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not functions or not any(isinstance(n, ast.Assert) for n in ast.walk(tests_tree)):
        return None
    return Exercise(problem, solution, tests, functions[0].name)


def _code_block(section: str) -> str | None:
    match = _FENCE.search(section)
    if match is None:
        return None
    code = match.group(1).strip("\n")
    return code if code.strip() else None
