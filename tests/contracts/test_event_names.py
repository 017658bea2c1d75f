"""An event's name is written once, in ``cathouse.contracts.events``: anywhere else in the code a
string equal to one is a second spelling, which the next rename would miss."""

from __future__ import annotations

import ast
from pathlib import Path

import cathouse
from cathouse.contracts.events import NAMES

SOURCE = Path(cathouse.__file__).parent
CONTRACTS = SOURCE / "contracts"


def spellings(path: Path, root: Path = SOURCE.parent) -> list[str]:
    """Every string literal in ``path`` that is an event's name, as ``file:line "name"``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(root)
    return [
        f'{where}:{node.lineno} "{node.value}"'
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in NAMES
    ]


def test_no_event_name_is_spelled_outside_the_contracts() -> None:
    found = [s for path in sorted(SOURCE.rglob("*.py")) if CONTRACTS not in path.parents for s in spellings(path)]
    assert found == [], "spell these with the models in cathouse.contracts.events:\n" + "\n".join(found)


def test_the_scan_names_the_file_and_line_of_a_spelled_name(tmp_path: Path) -> None:
    # The scan passing means something only if it sees a name wherever a literal can hold one.
    module = tmp_path / "worker.py"
    module.write_text(
        'HANDLED = ("installation.created", "not.an.event")\n'
        "def handle(kind: str = 'cat.published') -> bool:\n"
        '    return kind == f"{kind}" or kind in {"review.created": 1}\n'
    )
    assert spellings(module, tmp_path) == [
        'worker.py:1 "installation.created"',
        'worker.py:2 "cat.published"',
        'worker.py:3 "review.created"',
    ]
