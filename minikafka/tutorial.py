"""The tutorials' frame: a ``Lesson`` narrates with rich and records the facts it teaches, and
``minikafka tutorial`` finds and runs the numbered scripts of ``tutorials/``.

A tutorial is a script ``tutorials/NN_name.py`` whose docstring's first line is its title and
which defines ``main(lesson: Lesson | None = None) -> dict[str, Any]``: it runs its scenario,
narrates each step through the lesson, records each fact it teaches with ``lesson.fact(name,
value)`` and returns the facts. The test suite runs every tutorial quietly and checks those
facts, so a tutorial cannot drift from the code it describes.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import attrs
from rich.console import Console, RenderableType
from rich.markdown import Markdown
from rich.panel import Panel
from rich.rule import Rule

__all__ = [
    "Lesson",
    "TutorialInfo",
    "find_tutorials",
    "load_tutorial",
    "run_tutorial",
    "tutorials_dir",
]

T = TypeVar("T")


class Lesson:
    """Narration for one tutorial, and the facts it found.

    ``quiet=True`` prints nothing (the tests run tutorials so); the facts are kept either way.
    """

    def __init__(
        self, title: str = "", *, console: Console | None = None, quiet: bool = False
    ) -> None:
        self.title = title
        self.console = console or Console()
        self.quiet = quiet
        self.facts: dict[str, Any] = {}
        self._steps = 0
        if title and not quiet:
            self.console.print(Panel(title, style="bold", expand=False))

    def step(self, title: str) -> None:
        """Start the next numbered step."""
        self._steps += 1
        if not self.quiet:
            self.console.print()
            self.console.print(Rule(f"[bold]{self._steps}. {title}", align="left"))

    def say(self, text: str) -> None:
        """Narrate: a paragraph of plain text (rich markup and Markdown emphasis allowed)."""
        if not self.quiet:
            self.console.print(Markdown(text))

    def show(self, *renderables: RenderableType) -> None:
        """Show what there is to see: a table, a partition log, a timeline."""
        if not self.quiet:
            for renderable in renderables:
                self.console.print(renderable)

    def fact(self, name: str, value: T) -> T:
        """Record something the tutorial teaches (the tests check it); returns ``value``."""
        self.facts[name] = value
        return value

    def point(self, text: str) -> None:
        """The lesson's point, set apart at the end."""
        if not self.quiet:
            self.console.print()
            self.console.print(Panel(Markdown(text), title="what to remember", expand=False))


@attrs.frozen
class TutorialInfo:
    number: int
    path: Path
    title: str
    """The first line of the script's docstring."""


def tutorials_dir() -> Path:
    """Where the tutorials are: inside the installed package, or beside it in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "tutorials", here.parent / "tutorials"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        "no tutorials folder found: run from a checkout of minikafka, or install it with pip"
    )


_NAME = re.compile(r"^(\d\d)_[a-z0-9_]+\.py$")


def find_tutorials(folder: Path | None = None) -> list[TutorialInfo]:
    """The numbered tutorials, in order."""
    folder = folder or tutorials_dir()
    found = []
    for path in sorted(folder.iterdir()):
        match = _NAME.match(path.name)
        if match is None:
            continue
        found.append(TutorialInfo(int(match.group(1)), path, _title(path)))
    return found


def _title(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    match = re.search(r'"""(.+?)(?:\n|""")', text)
    return match.group(1).strip() if match else path.stem


def load_tutorial(info: TutorialInfo) -> Callable[[Lesson | None], dict[str, Any]]:
    """The tutorial's ``main``, loaded from its file."""
    spec = importlib.util.spec_from_file_location(
        f"minikafka_tutorial_{info.number:02d}", info.path
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {info.path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import does: dataclasses and pickling look here
    spec.loader.exec_module(module)
    main: Callable[[Lesson | None], dict[str, Any]] = module.main
    return main


def run_tutorial(number: int, lesson: Lesson | None = None) -> dict[str, Any]:
    """Run tutorial ``number`` with ``lesson`` (by default one that narrates under its title)
    and return the facts it recorded; ``KeyError`` names the tutorials there are."""
    tutorials = {info.number: info for info in find_tutorials()}
    info = tutorials.get(number)
    if info is None:
        numbers = ", ".join(str(n) for n in tutorials)
        raise KeyError(f"there is no tutorial {number}; choose one of: {numbers}")
    return load_tutorial(info)(lesson or Lesson(info.title))
