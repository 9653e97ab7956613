"""The trace of a simulation: what happened, when, between whom, as data and as a picture.

``Trace`` is a read-only sequence of ``TraceEvent`` (simulated time, kind, source, target, API,
detail). ``text()`` is the canonical form that two runs of the same seed and plan must share
byte for byte; ``to_json()`` is for machines; printing one with rich draws a timeline in which
faults, crashes and lost messages stand out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

from rich.table import Table
from rich.text import Text

from minikafka.sim.network import TraceEvent

__all__ = ["Trace", "TraceEvent"]

STYLES = {
    "fault": "bold red",
    "crash": "bold red",
    "lost": "red",
    "missed": "dim red",
    "timeout": "yellow",
    "disconnect": "yellow",
    "refused": "yellow",
    "recover": "bold green",
    "answered": "magenta",
    "send": "dim",
    "handle": "cyan",
    "deliver": "dim",
    "marker": "blue",
}
"""How each kind of event looks in the timeline (kinds not listed are plain)."""
ROUTINE_KINDS = frozenset({"send", "handle", "deliver"})
"""What every request does on its way: the story keeps only the handling of other APIs."""
ROUTINE_APIS = frozenset(
    {"Fetch", "Heartbeat", "Metadata", "Produce", "ListOffsets", "FindCoordinator"}
)
"""APIs whose traffic keeps a client going but rarely explains an anomaly by itself."""


class Trace(Sequence[TraceEvent]):
    """The events of one run, in the order they happened."""

    def __init__(self, events: Iterable[TraceEvent]) -> None:
        self._events = tuple(events)

    @overload
    def __getitem__(self, index: int) -> TraceEvent: ...
    @overload
    def __getitem__(self, index: slice) -> Trace: ...
    def __getitem__(self, index: int | slice) -> TraceEvent | Trace:
        if isinstance(index, slice):
            return Trace(self._events[index])
        return self._events[index]

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self._events)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Trace):
            return self._events == other._events
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._events)

    def __repr__(self) -> str:
        return f"Trace({len(self._events)} events)"

    def kinds(self) -> list[str]:
        return [event.kind for event in self._events]

    def select(
        self, *, kind: str | None = None, api: str | None = None, source: str | None = None
    ) -> Trace:
        """The events that match every criterion given."""
        return Trace(
            e
            for e in self._events
            if (kind is None or e.kind == kind)
            and (api is None or e.api == api)
            and (source is None or e.source == source)
        )

    def around(self, time: float, *, seconds: float = 1.0) -> Trace:
        """The events within ``seconds`` of ``time``."""
        return Trace(e for e in self._events if abs(e.time - time) <= seconds)

    def between(self, start: float, end: float) -> Trace:
        """The events from ``start`` to ``end`` (simulated seconds, both included)."""
        return Trace(e for e in self._events if start <= e.time <= end)

    def story(self, *, keep: Iterable[str] = ()) -> Trace:
        """The events that tell what happened: no request's way there and back (its send and
        its delivery), and no handling of the APIs that only keep things going (unless named
        in ``keep``); faults, crashes, losses, transactions, markers, polls and rebalances
        all stay."""
        routine = ROUTINE_APIS - set(keep)
        return Trace(
            e
            for e in self._events
            if e.kind not in ROUTINE_KINDS
            or (e.kind == "handle" and e.api is not None and e.api not in routine)
        )

    def text(self) -> str:
        """One line per event: the form two runs with the same seed and plan share exactly."""
        return "".join(f"{event}\n" for event in self._events)

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "time": e.time,
                "kind": e.kind,
                "source": e.source,
                "target": e.target,
                "api": e.api,
                "detail": e.detail,
            }
            for e in self._events
        ]

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)

    def timeline(self, *, title: str = "trace", limit: int | None = None) -> Table:
        """A rich table: time, who to whom, what, with faults and crashes in red."""
        table = Table(title=title, show_lines=False, header_style="bold")
        table.add_column("t (s)", justify="right", style="bright_black")
        table.add_column("event")
        table.add_column("from -> to")
        table.add_column("API")
        table.add_column("detail", overflow="fold")
        events = self._events if limit is None else self._events[-limit:]
        for e in events:
            style = STYLES.get(e.kind, "")
            route = f"{e.source} -> {e.target}" if e.target else e.source
            table.add_row(
                f"{e.time:.3f}",
                Text(e.kind, style=style),
                route,
                e.api or "",
                Text(e.detail, style=style if e.kind in ("fault", "crash") else ""),
            )
        return table

    def __rich__(self) -> Table:
        return self.timeline()
