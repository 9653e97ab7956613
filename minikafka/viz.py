"""Pictures of the broker's state, as people draw them on a whiteboard (rich renderables).

Pure functions from a ``Broker`` (read, never changed) to rich tables and text: a partition log
as a strip of offsets and a table of batches, with the high watermark and the last stable
offset marked; the coordinator's transactions; a group's committed and pending offsets.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from minikafka.core import Broker, ControlType, RecordBatch, TopicPartition
from minikafka.core.assignors import CONSUMER_PROTOCOL_TYPE, Assignment
from minikafka.core.groups import GroupState
from minikafka.core.log import PartitionLog
from minikafka.core.transactions import TransactionState
from minikafka.scenarios import ScenarioResult

__all__ = [
    "OUTCOME_STYLES",
    "batch_outcomes",
    "groups_table",
    "log_json",
    "offsets_table",
    "partition_view",
    "render_scenario",
    "scenario_json",
    "transactions_table",
]

COMMITTED, ABORTED, OPEN, PLAIN = "committed", "aborted", "open", "plain"
OUTCOME_STYLES = {
    COMMITTED: "black on green",
    ABORTED: "white on red",
    OPEN: "black on yellow",
    PLAIN: "black on bright_white",
    "COMMIT marker": "bold white on dark_green",
    "ABORT marker": "bold white on dark_red",
}
STATE_STYLES = {
    TransactionState.EMPTY: "dim",
    TransactionState.ONGOING: "yellow",
    TransactionState.PREPARE_COMMIT: "bold green",
    TransactionState.PREPARE_ABORT: "bold red",
    TransactionState.COMPLETE_COMMIT: "green",
    TransactionState.COMPLETE_ABORT: "red",
    TransactionState.DEAD: "dim",
    TransactionState.PREPARE_EPOCH_FENCE: "bold magenta",
}


def batch_outcomes(log: PartitionLog) -> list[str]:
    """For each batch of ``log``, in order: what became of it.

    A transactional batch is committed or aborted by its producer's next marker in this
    partition, and open until then; a marker is "COMMIT marker" or "ABORT marker"; anything
    else is plain.
    """
    outcomes: list[str] = []
    waiting: dict[int, list[int]] = {}
    for index, batch in enumerate(log.batches()):
        if batch.is_control:
            kind = batch.control_type.name if batch.control_type is not None else "?"
            outcomes.append(f"{kind} marker")
            decided = COMMITTED if batch.control_type is ControlType.COMMIT else ABORTED
            for earlier in waiting.pop(batch.producer_id, []):
                outcomes[earlier] = decided
        elif batch.is_transactional:
            outcomes.append(OPEN)
            waiting.setdefault(batch.producer_id, []).append(index)
        else:
            outcomes.append(PLAIN)
    return outcomes


def _sequences(batch: RecordBatch) -> str:
    if batch.base_sequence < 0:
        return "-"
    if batch.record_count == 1:
        return str(batch.base_sequence)
    return f"{batch.base_sequence}..{batch.last_sequence}"


def _offsets(batch: RecordBatch) -> str:
    if batch.record_count == 1:
        return str(batch.base_offset)
    return f"{batch.base_offset}..{batch.last_offset}"


def _strip(log: PartitionLog, outcomes: list[str]) -> Text:
    """One cell per offset, colored by outcome, and a ruler line that marks the LSO and HW."""
    cells = Text()
    for batch, outcome in zip(log.batches(), outcomes, strict=True):
        for offset in range(batch.base_offset, batch.next_offset):
            label = outcome[0].upper() if outcome.endswith("marker") else str(offset)
            cells.append(f"{label:^4}", style=OUTCOME_STYLES[outcome])
            cells.append(" ")
    marks = Text()
    lso, hw = log.last_stable_offset, log.high_watermark
    for offset in range(log.log_end_offset + 1):
        if offset == lso == hw:
            mark = "▲LSO=HW"
        elif offset == lso:
            mark = "▲LSO"
        elif offset == hw:
            mark = "▲HW"
        else:
            mark = ""
        marks.append(f"{mark:<5}", style="bold cyan" if mark else "")
    return Text.assemble(cells, "\n", marks)


def partition_view(log: PartitionLog) -> Group:
    """A partition log as people draw it: a strip of offsets, then its batches."""
    outcomes = batch_outcomes(log)
    title = (
        f"{log.topic}-{log.partition}: high watermark {log.high_watermark}, "
        f"last stable offset {log.last_stable_offset}, log end {log.log_end_offset}"
    )
    table = Table(title=title, header_style="bold", title_justify="left")
    for column in ("offsets", "producer", "epoch", "sequences", "records", "outcome"):
        table.add_column(column, justify="left" if column in ("records", "outcome") else "right")
    lso_drawn = False
    for batch, outcome in zip(log.batches(), outcomes, strict=True):
        if not lso_drawn and batch.base_offset >= log.last_stable_offset:
            table.add_row(
                "", "", "", "", Text("── last stable offset: read_committed stops here", "cyan")
            )
            lso_drawn = True
        if batch.is_control:
            records = Text(
                f"{outcome}: ends producer {batch.producer_id}'s transaction here",
                style="italic",
            )
        else:
            records = Text(
                ", ".join((r.value or b"").decode(errors="replace") for r in batch.records)
            )
        table.add_row(
            _offsets(batch),
            str(batch.producer_id) if batch.producer_id >= 0 else "-",
            str(batch.producer_epoch) if batch.producer_id >= 0 else "-",
            _sequences(batch),
            records,
            Text(outcome, style=OUTCOME_STYLES[outcome]),
        )
    if not lso_drawn:
        table.add_row("", "", "", "", Text("── last stable offset = high watermark", "cyan"))
    table.add_row(
        "", "", "", "", Text("── high watermark: read_uncommitted stops here", "bold cyan")
    )
    return Group(_strip(log, outcomes), table)


def transactions_table(broker: Broker) -> Table:
    """The coordinator's transactions: producer id, epoch, state, partitions, timing."""
    coordinator = broker.transaction_coordinator
    table = Table(title="Transaction coordinator (__transaction_state)", header_style="bold")
    for column in ("transactional id", "producer id", "epoch", "state", "partitions", "started"):
        table.add_column(column, justify="right" if column in ("producer id", "epoch") else "left")
    for metadata in coordinator.transactions.values():
        pending = coordinator.pending_markers.get(metadata.transactional_id)
        state = Text(metadata.state.title, style=STATE_STYLES[metadata.state])
        if pending is not None:
            state.append(f" ({len(pending.partitions)} markers to write)", style="dim")
        table.add_row(
            metadata.transactional_id,
            str(metadata.producer_id),
            str(metadata.producer_epoch),
            state,
            ", ".join(str(tp) for tp in metadata.partitions) or "-",
            f"t={metadata.start_ms / 1000:g}s" if metadata.start_ms >= 0 else "-",
        )
    return table


def offsets_table(broker: Broker, groups: tuple[str, ...]) -> Table:
    """Committed offsets per group and partition, and transactional ones still pending."""
    coordinator = broker.group_coordinator
    producers = {
        metadata.producer_id: metadata.transactional_id
        for metadata in broker.transaction_coordinator.transactions.values()
    }
    table = Table(title="Group offsets (__consumer_offsets)", header_style="bold")
    for column in ("group", "partition", "committed", "pending (waiting for a marker)"):
        table.add_column(column)
    for group in groups:
        committed = coordinator.committed.get(group, {})
        pending = coordinator.pending.get(group, {})
        partitions: set[TopicPartition] = set(committed)
        for offsets in pending.values():
            partitions.update(offsets)
        for tp in sorted(partitions):
            found = committed.get(tp)
            waiting = [
                f"{offsets[tp].offset} from {producers.get(pid, f'producer {pid}')}"
                for pid, offsets in pending.items()
                if tp in offsets
            ]
            table.add_row(
                group,
                str(tp),
                str(found.offset) if found else "-",
                Text(", ".join(waiting) or "-", style="yellow" if waiting else ""),
            )
    return table


GROUP_STATE_STYLES = {
    GroupState.EMPTY: "dim",
    GroupState.PREPARING_REBALANCE: "bold yellow",
    GroupState.COMPLETING_REBALANCE: "yellow",
    GroupState.STABLE: "green",
    GroupState.DEAD: "dim",
}


def _partitions(group_protocol: str | None, data: bytes) -> tuple[TopicPartition, ...] | None:
    """A member's assigned partitions, or None if they are not a consumer assignment."""
    if group_protocol != CONSUMER_PROTOCOL_TYPE:
        return None
    try:
        return Assignment.from_bytes(data).partitions
    except ValueError:  # the leader may send any bytes; the coordinator never reads them
        return None


def _assignment(group_protocol: str | None, data: bytes) -> str:
    partitions = _partitions(group_protocol, data)
    if partitions is None:
        return "-" if not data else "(not a consumer assignment)"
    return ", ".join(str(tp) for tp in partitions) or "(none)"


def groups_table(broker: Broker, groups: tuple[str, ...]) -> Table:
    """Each group's state and generation, and its members with what they were assigned."""
    table = Table(title="Consumer groups (group coordinator)", header_style="bold")
    for column in ("group", "state", "generation", "member", "role", "assignment"):
        table.add_column(column, justify="right" if column == "generation" else "left")
    for snapshot in broker.group_coordinator.snapshot():
        if snapshot.group_id not in groups:
            continue
        state = Text(snapshot.state.value, style=GROUP_STATE_STYLES[snapshot.state])
        head = (snapshot.group_id, state, str(snapshot.generation_id))
        if not snapshot.members:
            table.add_row(*head, "-", "-", "-")
        for number, member in enumerate(snapshot.members):
            role = "leader" if member.member_id == snapshot.leader_id else "follower"
            if member.awaiting_join:
                role += " (rejoining)"
            elif member.awaiting_sync:
                role += " (waiting for its assignment)"
            table.add_row(
                *(head if number == 0 else ("", "", "")),
                member.member_id,
                role,
                _assignment(snapshot.protocol_type, member.assignment),
            )
    return table


def _timeline_line(line: str) -> Text:
    style = ""
    if "refused" in line or "removed" in line:
        style = "bold red"
    elif "rebalance started" in line or "freezes" in line or "wakes up" in line:
        style = "yellow"
    elif "generation" in line and "coordinator" in line:
        style = "bold green"
    return Text(line, style=style)


def legend() -> Text:
    text = Text("legend: ")
    for name, style in OUTCOME_STYLES.items():
        text.append(f" {name} ", style=style)
        text.append(" ")
    return text


def log_json(log: PartitionLog) -> dict[str, Any]:
    """A partition log as plain data, with each batch's outcome."""
    return {
        "topic": log.topic,
        "partition": log.partition,
        "high_watermark": log.high_watermark,
        "last_stable_offset": log.last_stable_offset,
        "log_end_offset": log.log_end_offset,
        "batches": [
            {
                "base_offset": batch.base_offset,
                "last_offset": batch.last_offset,
                "producer_id": batch.producer_id,
                "producer_epoch": batch.producer_epoch,
                "base_sequence": batch.base_sequence,
                "transactional": batch.is_transactional,
                "control": batch.is_control,
                "values": [
                    None if batch.is_control else (r.value or b"").decode(errors="replace")
                    for r in batch.records
                ],
                "outcome": outcome,
            }
            for batch, outcome in zip(log.batches(), batch_outcomes(log), strict=True)
        ],
    }


def render_scenario(result: ScenarioResult) -> Group:
    """Everything a scenario left: its story, its partition logs, coordinator and offsets."""
    story = Table(title="What happened", show_header=False, box=None, title_justify="left")
    story.add_column()
    for line in result.story:
        story.add_row(_timeline_line(line))
    parts: list[Any] = [story]
    if result.topics:
        parts.append(legend())
    for topic in result.topics:
        for partition in range(result.broker.topics()[topic]):
            parts.append(partition_view(result.broker.log(topic, partition)))
    if result.broker.transaction_coordinator.transactions:
        parts.append(transactions_table(result.broker))
    if result.groups:
        if any(g.members or g.generation_id for g in result.broker.group_coordinator.snapshot()):
            parts.append(groups_table(result.broker, result.groups))
        parts.append(offsets_table(result.broker, result.groups))
    if result.trace is not None:
        parts.append(
            result.trace.story(keep=result.timeline_keeps).timeline(
                title="Timeline (faults and crashes in red)", limit=80
            )
        )
    return Group(*parts)


def scenario_json(name: str, result: ScenarioResult) -> dict[str, Any]:
    broker = result.broker
    return {
        "scenario": name,
        "story": list(result.story),
        "timeline": [] if result.trace is None else result.trace.story().to_json(),
        "partitions": [
            log_json(broker.log(topic, partition))
            for topic in result.topics
            for partition in range(broker.topics()[topic])
        ],
        "transactions": [
            {
                "transactional_id": metadata.transactional_id,
                "producer_id": metadata.producer_id,
                "producer_epoch": metadata.producer_epoch,
                "state": metadata.state.title,
                "partitions": [str(tp) for tp in metadata.partitions],
            }
            for metadata in broker.transaction_coordinator.transactions.values()
        ],
        "groups": [
            {
                "group": group.group_id,
                "state": group.state.value,
                "generation": group.generation_id,
                "protocol": group.protocol_name,
                "leader": group.leader_id,
                "members": [
                    {
                        "member_id": member.member_id,
                        "client_id": member.client_id,
                        "assignment": [
                            str(tp)
                            for tp in _partitions(group.protocol_type, member.assignment) or ()
                        ],
                    }
                    for member in group.members
                ],
            }
            for group in broker.group_coordinator.snapshot()
            if group.group_id in result.groups
        ],
        "offsets": [
            {
                "group": group,
                "partition": str(tp),
                "committed": offset.offset,
            }
            for group in result.groups
            for tp, offset in sorted(broker.group_coordinator.committed.get(group, {}).items())
        ],
        "pending_offsets": [
            {"group": group, "producer_id": pid, "partition": str(tp), "offset": offset.offset}
            for group in result.groups
            for pid, offsets in broker.group_coordinator.pending.get(group, {}).items()
            for tp, offset in sorted(offsets.items())
        ],
    }
