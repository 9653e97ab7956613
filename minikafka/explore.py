"""``minikafka explore``: run a hypothesis state machine and show what it found.

A person runs this to watch an invariant hold, or, with ``--break``, to watch hypothesis find and
shrink the counterexample that a missing safeguard allows. The search itself is hypothesis's;
this module picks the machine, counts examples for the progress bar, and draws the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs
import hypothesis
from hypothesis import HealthCheck, settings
from hypothesis.reporting import with_reporter
from hypothesis.stateful import get_state_machine_test
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from minikafka.core import Safeguard
from minikafka.core.groups import OFFSETS_TOPIC
from minikafka.testing.dedup import IdempotenceMachine
from minikafka.testing.groups import GroupMachine
from minikafka.testing.profiles import SEARCH_PHASES
from minikafka.testing.story import LogRow, TransactionRow
from minikafka.testing.transactions import AtomicCommitMachine, FencingMachine

__all__ = ["MACHINES", "ExploreResult", "LogRow", "explore", "render"]


@attrs.frozen
class MachineInfo:
    machine: type[Any]
    safeguards: tuple[Safeguard, ...]
    """The safeguards whose absence this machine can show."""
    promise: str


MACHINES: dict[str, MachineInfo] = {
    "dedup": MachineInfo(
        IdempotenceMachine,
        (Safeguard.PRODUCER_DEDUP,),
        "every record a producer sends lands once, acknowledged ones at the offset the "
        "acknowledgement gave, in send order",
    ),
    "atomic-commit": MachineInfo(
        AtomicCommitMachine,
        (Safeguard.LAST_STABLE_OFFSET, Safeguard.PENDING_TXN_OFFSETS, Safeguard.ROLL_FORWARD),
        "a transaction's records and offsets become visible all together or not at all; "
        "read_committed never sees aborted or open records, and sees every committed one "
        "below the last stable offset",
    ),
    "fencing": MachineInfo(
        FencingMachine,
        (Safeguard.EPOCH_FENCING,),
        "once a transactional id's epoch is bumped, nothing its older instances send is "
        "accepted, and their transactions stay atomic",
    ),
    "groups": MachineInfo(
        GroupMachine,
        (Safeguard.GENERATION_FENCING,),
        "after every rebalance each partition has exactly one owner among the live members; "
        "only a partition's current owner (or a consumer outside the group while it is Empty) "
        "can commit its offset, so a zombie consumer cannot overwrite anyone's progress",
    ),
}


@attrs.frozen
class ExploreResult:
    machine: str
    broken: tuple[str, ...]
    held: bool
    examples: int
    max_examples: int
    seed: int | None
    error: str | None = None
    steps: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    healing: tuple[str, ...] = ()
    log: tuple[LogRow, ...] = ()
    transactions: tuple[TransactionRow, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def explore(
    name: str,
    *,
    broken: Iterable[Safeguard] = (),
    max_examples: int = 200,
    step_count: int = 50,
    seed: int | None = None,
    on_example: Callable[[int], None] | None = None,
) -> ExploreResult:
    """Run machine ``name`` (with ``broken`` safeguards off) and return what happened."""
    info = MACHINES[name]
    broken = tuple(broken)
    for safeguard in broken:
        if safeguard not in info.safeguards:
            choices = ", ".join(s.value for s in info.safeguards)
            raise ValueError(
                f"the {name} machine does not exercise {safeguard.value}; it can break: {choices}"
            )
    machine_cls = info.machine.breaking(*broken) if broken else info.machine
    runs: list[Any] = []
    count = [0]

    def factory() -> Any:
        machine = machine_cls()
        runs[:] = [machine]
        count[0] += 1
        if on_example is not None:
            on_example(count[0])
        return machine

    chosen = settings(
        max_examples=max_examples,
        stateful_step_count=step_count,
        deadline=None,
        database=None,
        derandomize=seed is None,
        print_blob=False,
        report_multiple_bugs=False,
        phases=SEARCH_PHASES,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    # hypothesis takes any zero-argument callable that returns a machine.
    test = get_state_machine_test(factory, settings=chosen)  # type: ignore[arg-type]
    if seed is not None:
        test = hypothesis.seed(seed)(test)
    report: list[object] = []
    result = dict(
        machine=name,
        broken=tuple(s.value for s in broken),
        max_examples=max_examples,
        seed=seed,
    )
    try:
        with with_reporter(report.append):
            test()
    except AssertionError as failure:
        minimal = runs[-1]
        return ExploreResult(
            held=False,
            examples=count[0],
            error=(str(failure) or f"an assertion failed: {failure!r}").splitlines()[0],
            steps=tuple(line.text for line in minimal.steps),
            setup=tuple(line.text for line in minimal.story if line.phase == "setup"),
            healing=tuple(line.text for line in minimal.story if line.phase == "heal"),
            log=minimal.log_rows(),
            transactions=minimal.transaction_rows() if hasattr(minimal, "transaction_rows") else (),
            **result,  # type: ignore[arg-type]
        )
    return ExploreResult(held=True, examples=count[0], **result)  # type: ignore[arg-type]


def render(result: ExploreResult) -> Group:
    """The verdict, and for a counterexample its steps and the partition log."""
    info = MACHINES[result.machine]
    off = ", ".join(result.broken) if result.broken else "none"
    if result.held:
        verdict = Panel(
            Text.assemble(
                ("The invariants held", "bold green"),
                f" over {result.examples} runs.\n",
                f"Promise: {info.promise}.\nSafeguards switched off: {off}.",
            ),
            title=f"explore {result.machine}",
            border_style="green",
        )
        return Group(verdict)
    parts: list[Any] = [
        Panel(
            Text.assemble(
                ("Counterexample found", "bold red"),
                f" after {result.examples} runs (shrunk to {len(result.steps)} steps):\n",
                (result.error or "", "red"),
                f"\nSafeguards switched off: {off}.",
            ),
            title=f"explore {result.machine}",
            border_style="red",
        )
    ]
    steps = Table(title="The shortest failing run", show_header=False, box=None, padding=(0, 1))
    steps.add_column(justify="right", style="bold")
    steps.add_column()
    for line in result.setup:
        steps.add_row("set-up", line)
    for number, line in enumerate(result.steps, 1):
        steps.add_row(f"{number}.", line)
    for line in result.healing:
        steps.add_row("then", Text(line, style="dim"))
    parts.append(steps)
    internal = bool(result.log) and all(row.topic == OFFSETS_TOPIC for row in result.log)
    if internal:
        # The groups machine leaves no data, only the group's records: no producer columns.
        log = Table(title=f"{OFFSETS_TOPIC} after the run", header_style="bold")
        for column in ("offset", "record", "note"):
            log.add_column(column, justify="right" if column == "offset" else "left")
        for row in result.log:
            log.add_row(str(row.offset), row.value, row.note, style="bold red" if row.bad else None)
        parts.append(log)
        return Group(*parts)
    log = Table(title="The partition logs after the run", header_style="bold")
    for column in ("partition", "offset", "value", "pid", "epoch", "seq", "note"):
        log.add_column(
            column, justify="left" if column in ("value", "note") else "right", no_wrap=True
        )
    for row in result.log:
        log.add_row(
            f"{row.topic}-{row.partition}",
            str(row.offset),
            row.value,
            str(row.producer_id),
            str(row.producer_epoch),
            str(row.sequence),
            row.note,
            style="bold red" if row.bad else None,
        )
    parts.append(log)
    if result.transactions:
        coordinator = Table(title="The transaction coordinator after the run", header_style="bold")
        for column in ("transactional id", "pid", "epoch", "state", "partitions", "markers due"):
            coordinator.add_column(
                column, justify="right" if column in ("pid", "epoch") else "left"
            )
        for txn in result.transactions:
            coordinator.add_row(
                txn.transactional_id,
                str(txn.producer_id),
                str(txn.producer_epoch),
                txn.state,
                ", ".join(txn.partitions) or "-",
                str(txn.markers_pending) if txn.markers_pending else "-",
            )
        parts.append(coordinator)
    return Group(*parts)


def print_result(result: ExploreResult, console: Console) -> None:
    console.print(render(result))
