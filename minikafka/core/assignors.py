"""The consumer protocol: subscriptions, assignments, and the assignors that compute them.

An *assignor* decides which member of a consumer group reads which partition. The broker
never runs one: the group coordinator treats each member's metadata as opaque bytes, names
one member the leader, and the leader (a consumer) decodes every member's ``Subscription``,
runs the assignor the group agreed on, and sends back one ``Assignment`` per member in its
SyncGroup. Every assignor here is a pure function of the subscriptions and the partition
counts: no I/O, no randomness, and it iterates only in sorted order, so every leader computes
the same answer.

The four assignors, by Kafka's protocol names:

- ``range``: per topic, the subscribed members (sorted by member id) get contiguous ranges of
  partitions. Balanced per topic, but the same members get the extra partition of every
  topic, so it can be unbalanced overall.
- ``roundrobin``: all partitions, sorted by topic and partition, are dealt to the members in
  turn. Balanced overall when every member subscribes to the same topics.
- ``sticky``: balanced like roundrobin, but each member keeps the partitions it owns now as far
  as balance allows, so a rebalance moves few partitions.
- ``cooperative-sticky``: the sticky assignment, minus every partition that moves from one
  member to another. Its owner revokes it first and it reaches its new owner in a follow-up
  rebalance (incremental cooperative rebalancing, KIP-429), so members keep reading the
  partitions they keep while the group rebalances; the eager three make every member give up
  everything first.

Simplified: Kafka encodes subscriptions and assignments with a binary schema; here they are
compact JSON with sorted keys. Kafka's user data and rack ids are left out.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

import attrs

from minikafka.core.records import TopicPartition

__all__ = [
    "ASSIGNORS",
    "CONSUMER_PROTOCOL_TYPE",
    "COOPERATIVE_ASSIGNORS",
    "AssignFunction",
    "Assignment",
    "Subscription",
    "assignor",
    "cooperative_sticky_assign",
    "range_assign",
    "round_robin_assign",
    "sticky_assign",
]

CONSUMER_PROTOCOL_TYPE = "consumer"
"""The protocol type consumers send in JoinGroup (Kafka's ``ConsumerProtocol.PROTOCOL_TYPE``)."""


def _tp_key(tp: TopicPartition) -> tuple[str, int]:
    return (tp.topic, tp.partition)


def _sorted_topics(topics: Iterable[str]) -> tuple[str, ...]:
    if isinstance(topics, str):
        raise TypeError(f"topics must be a collection of topic names, not the string {topics!r}")
    return tuple(sorted(set(topics)))


def _sorted_partitions(partitions: Iterable[TopicPartition]) -> tuple[TopicPartition, ...]:
    return tuple(sorted(partitions, key=_tp_key))


# --- Encoding ------------------------------------------------------------------------------


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _show(value: object) -> str:
    """A decoded value as JSON writes it, for error messages."""
    return json.dumps(value)


def _load_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
        raise ValueError(f"malformed {what}: not UTF-8 JSON ({exc})") from None
    except RecursionError:
        raise ValueError(f"malformed {what}: JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise ValueError(f"malformed {what}: expected a JSON object, got {_json_type(value)}")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _encode_partitions(partitions: Iterable[TopicPartition]) -> list[dict[str, Any]]:
    """Partitions grouped by topic, as Kafka's schema groups them: ``[{topic, partitions}]``."""
    grouped: dict[str, list[int]] = {}
    for tp in partitions:
        grouped.setdefault(tp.topic, []).append(tp.partition)
    return [{"topic": topic, "partitions": numbers} for topic, numbers in grouped.items()]


def _decode_partitions(value: object, what: str, key: str) -> list[TopicPartition]:
    if not isinstance(value, list):
        raise ValueError(f"malformed {what}: {key} must be an array, got {_json_type(value)}")
    partitions = []
    for i, entry in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(
                f"malformed {what}: {where} must be an object with topic and partitions, "
                f"got {_json_type(entry)}"
            )
        topic = entry.get("topic")
        numbers = entry.get("partitions")
        if not isinstance(topic, str):
            raise ValueError(
                f"malformed {what}: {where}.topic must be a string, got {_show(topic)}"
            )
        if not isinstance(numbers, list):
            raise ValueError(
                f"malformed {what}: {where}.partitions must be an array, got {_show(numbers)}"
            )
        for j, number in enumerate(numbers):
            if not _is_int(number) or number < 0:
                raise ValueError(
                    f"malformed {what}: {where}.partitions[{j}] must be a non-negative "
                    f"integer, got {_show(number)}"
                )
            partitions.append(TopicPartition(topic, number))
    return partitions


@attrs.frozen(slots=True)
class Subscription:
    """What a consumer sends as its JoinGroup metadata: its topics and what it owns now.

    ``owned_partitions`` are the partitions the member holds, and ``generation_id`` is the
    generation in which it got them (-1: none). The sticky assignors use both to keep
    partitions where they are and to ignore stale claims (Kafka's subscription v1 and v2).
    """

    topics: tuple[str, ...] = attrs.field(converter=_sorted_topics)
    owned_partitions: tuple[TopicPartition, ...] = attrs.field(
        default=(), converter=_sorted_partitions
    )
    generation_id: int = -1

    def to_bytes(self) -> bytes:
        return _dump(
            {
                "topics": list(self.topics),
                "owned_partitions": _encode_partitions(self.owned_partitions),
                "generation_id": self.generation_id,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Subscription:
        """Decode ``to_bytes`` output. Malformed input raises ValueError saying what is wrong.

        ``owned_partitions`` and ``generation_id`` may be missing (an older subscription);
        keys this version does not know are ignored.
        """
        what = "consumer subscription"
        value = _load_object(data, what)
        if "topics" not in value:
            raise ValueError(f"malformed {what}: the topics key is missing")
        topics = value["topics"]
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            raise ValueError(f"malformed {what}: topics must be an array of strings")
        owned = _decode_partitions(value.get("owned_partitions", []), what, "owned_partitions")
        generation_id = value.get("generation_id", -1)
        if not _is_int(generation_id) or generation_id < -1:
            raise ValueError(
                f"malformed {what}: generation_id must be an integer >= -1, "
                f"got {_show(generation_id)}"
            )
        return cls(topics, owned, generation_id)


@attrs.frozen(slots=True)
class Assignment:
    """What the leader hands a member in SyncGroup: the partitions it should read."""

    partitions: tuple[TopicPartition, ...] = attrs.field(converter=_sorted_partitions)

    def to_bytes(self) -> bytes:
        return _dump({"assigned_partitions": _encode_partitions(self.partitions)})

    @classmethod
    def from_bytes(cls, data: bytes) -> Assignment:
        """Decode ``to_bytes`` output; malformed input raises ValueError saying what is wrong.

        Empty bytes are the empty assignment: the coordinator hands ``b""`` to a member the
        leader's SyncGroup left out, as Kafka does.
        """
        if not data:
            return cls(())
        what = "consumer assignment"
        value = _load_object(data, what)
        if "assigned_partitions" not in value:
            raise ValueError(f"malformed {what}: the assigned_partitions key is missing")
        return cls(_decode_partitions(value["assigned_partitions"], what, "assigned_partitions"))


# --- Assignors -----------------------------------------------------------------------------

AssignFunction: TypeAlias = Callable[
    [Mapping[str, Subscription], Mapping[str, int]], dict[str, tuple[TopicPartition, ...]]
]
"""An assignor: (member id -> subscription, topic -> partition count) -> member id -> partitions.

Topics missing from the partition counts are unknown and get no partitions. The result has an
entry for every member, possibly empty, with its partitions sorted.
"""


def _known_topics(
    subscriptions: Mapping[str, Subscription], partitions_per_topic: Mapping[str, int]
) -> list[str]:
    """Sorted topics that some member subscribes to and that have partitions."""
    subscribed = {topic for sub in subscriptions.values() for topic in sub.topics}
    return sorted(t for t in subscribed if partitions_per_topic.get(t, 0) > 0)


def _finish(
    assigned: Mapping[str, Iterable[TopicPartition]],
) -> dict[str, tuple[TopicPartition, ...]]:
    return {member: _sorted_partitions(assigned[member]) for member in sorted(assigned)}


def range_assign(
    subscriptions: Mapping[str, Subscription], partitions_per_topic: Mapping[str, int]
) -> dict[str, tuple[TopicPartition, ...]]:
    """Kafka's RangeAssignor: per topic, contiguous ranges to the members sorted by id.

    With ``n`` partitions and ``m`` subscribed members, each member gets ``n // m`` and the
    first ``n % m`` members one more.
    """
    assigned: dict[str, list[TopicPartition]] = {member: [] for member in sorted(subscriptions)}
    for topic in _known_topics(subscriptions, partitions_per_topic):
        members = [m for m in sorted(subscriptions) if topic in subscriptions[m].topics]
        share, extra = divmod(partitions_per_topic[topic], len(members))
        start = 0
        for i, member in enumerate(members):
            length = share + (1 if i < extra else 0)
            assigned[member].extend(TopicPartition(topic, p) for p in range(start, start + length))
            start += length
    return _finish(assigned)


def round_robin_assign(
    subscriptions: Mapping[str, Subscription], partitions_per_topic: Mapping[str, int]
) -> dict[str, tuple[TopicPartition, ...]]:
    """Kafka's RoundRobinAssignor: deal the sorted partitions to the sorted members in turn.

    The turn passes over members that do not subscribe to a partition's topic, and it carries
    on from where it stopped for the next partition.
    """
    members = sorted(subscriptions)
    assigned: dict[str, list[TopicPartition]] = {member: [] for member in members}
    turn = 0
    for topic in _known_topics(subscriptions, partitions_per_topic):
        for partition in range(partitions_per_topic[topic]):
            while topic not in subscriptions[members[turn % len(members)]].topics:
                turn += 1
            assigned[members[turn % len(members)]].append(TopicPartition(topic, partition))
            turn += 1
    return _finish(assigned)


def _valid_owned(
    subscriptions: Mapping[str, Subscription], partitions_per_topic: Mapping[str, int]
) -> dict[str, list[TopicPartition]]:
    """Each member's owned partitions that it may keep, sorted.

    A claim is valid when the member still subscribes to the topic and the partition exists.
    Of the valid claims on a partition, the one from the highest generation wins; when two
    members claim it at that same generation, neither keeps it. Kafka's path for identical
    subscriptions goes further: it drops every claim of a member from an older generation.
    """
    claims: dict[TopicPartition, tuple[int, list[str]]] = {}
    for member in sorted(subscriptions):
        sub = subscriptions[member]
        for tp in dict.fromkeys(sub.owned_partitions):  # sorted already; drop repeats
            if tp.topic not in sub.topics:
                continue
            if not 0 <= tp.partition < partitions_per_topic.get(tp.topic, 0):
                continue
            best = claims.get(tp)
            if best is None or sub.generation_id > best[0]:
                claims[tp] = (sub.generation_id, [member])
            elif sub.generation_id == best[0]:
                best[1].append(member)
    owned: dict[str, list[TopicPartition]] = {member: [] for member in sorted(subscriptions)}
    for tp in sorted(claims, key=_tp_key):
        claimants = claims[tp][1]
        if len(claimants) == 1:
            owned[claimants[0]].append(tp)
    return owned


def _assignable_topics(
    sub: Subscription, partitions_per_topic: Mapping[str, int]
) -> frozenset[str]:
    return frozenset(t for t in sub.topics if partitions_per_topic.get(t, 0) > 0)


def _sticky_same_topics(
    members: list[str],
    partitions: list[TopicPartition],
    owned: Mapping[str, list[TopicPartition]],
) -> dict[str, list[TopicPartition]]:
    """Every member can take every partition: quotas floor(P/M) and ceil(P/M).

    The ``P % M`` members that own the most (ties by member id) get the ceiling. A member
    keeps its lowest owned partitions up to its quota; the rest go, in order, to the member
    below its quota with the fewest partitions (ties by member id).
    """
    floor, at_ceiling = divmod(len(partitions), len(members))
    by_owned = sorted(members, key=lambda m: (-len(owned[m]), m))
    quota = {m: floor + (1 if i < at_ceiling else 0) for i, m in enumerate(by_owned)}
    assigned = {m: list(owned[m][: quota[m]]) for m in members}
    taken = {tp for kept in assigned.values() for tp in kept}
    for tp in partitions:
        if tp in taken:
            continue
        member = min(
            (m for m in members if len(assigned[m]) < quota[m]),
            key=lambda m: (len(assigned[m]), m),
        )
        assigned[member].append(tp)
    return assigned


def _sticky_different_topics(
    members: list[str],
    partitions: list[TopicPartition],
    owned: Mapping[str, list[TopicPartition]],
    eligible: Mapping[TopicPartition, list[str]],
) -> dict[str, list[TopicPartition]]:
    """Members that subscribe to different topics: keep what is owned, then even out counts.

    The partitions nobody keeps, those with the fewest eligible members first, go to the
    eligible member with the fewest partitions (ties by member id). Then chains of moves
    (``_evening_chain``) even the counts out, first moving only those partitions, and owned
    ones only if that is not enough. The counts end as even as the subscriptions allow, so an
    assignment fed back as owned partitions comes back unchanged, and one with some partitions
    revoked keeps all the rest: that is why cooperative rebalancing converges in one more round.
    Simplified: Kafka's sticky algorithm for different subscriptions is a different search,
    with more rules for choosing which partitions move.
    """
    assigned = {m: list(owned[m]) for m in members}
    kept = {tp for tps in assigned.values() for tp in tps}
    free = sorted(
        (tp for tp in partitions if tp not in kept),
        key=lambda tp: (len(eligible[tp]), *_tp_key(tp)),
    )
    for tp in free:
        member = min(eligible[tp], key=lambda m: (len(assigned[m]), m))
        assigned[member].append(tp)
    for movable in (lambda tp: tp not in kept, lambda tp: True):
        # Each chain lowers the sum of squared counts by at least 2, so the loop ends.
        while chain := _evening_chain(members, assigned, eligible, kept, movable):
            for tp, giver, taker in chain:
                assigned[giver].remove(tp)
                assigned[taker].append(tp)
    return assigned


def _evening_chain(
    members: list[str],
    assigned: Mapping[str, list[TopicPartition]],
    eligible: Mapping[TopicPartition, list[str]],
    kept: set[TopicPartition],
    movable: Callable[[TopicPartition], bool],
) -> list[tuple[TopicPartition, str, str]]:
    """Moves (partition, giver, taker) that take one partition off a member and add one to a
    member with at least two fewer; every member in between gives one and takes one.

    A breadth-first search from the members with the most partitions, over movable partitions
    (newly handed out ones first, the highest first). Empty when the counts are as even as
    the movable partitions allow: no single move and no chain of moves evens them further.
    """
    for start in sorted(members, key=lambda m: (-len(assigned[m]), m)):
        reached: dict[str, tuple[TopicPartition, str] | None] = {start: None}
        frontier = [start]
        while frontier:
            following = []
            for giver in frontier:
                order = sorted(assigned[giver], key=lambda tp: (tp not in kept, _tp_key(tp)))
                for tp in reversed(order):
                    if not movable(tp):
                        continue
                    for taker in eligible[tp]:
                        if taker not in reached:
                            reached[taker] = (tp, giver)
                            following.append(taker)
            frontier = following
        limit = len(assigned[start]) - 2
        ends = [m for m in reached if len(assigned[m]) <= limit]
        if not ends:
            continue
        end = min(ends, key=lambda m: (len(assigned[m]), m))
        chain = []
        while (step := reached[end]) is not None:
            tp, giver = step
            chain.append((tp, giver, end))
            end = giver
        return chain[::-1]
    return []


def sticky_assign(
    subscriptions: Mapping[str, Subscription], partitions_per_topic: Mapping[str, int]
) -> dict[str, tuple[TopicPartition, ...]]:
    """Kafka's StickyAssignor: balanced, and keeping owned partitions where balance allows.

    Owned partitions are kept when valid (see ``_valid_owned``) and balance allows. When every
    member subscribes to the same topics (unknown and empty topics aside), the result is
    balanced within one partition and members over their quota give up their highest
    partitions first; otherwise counts are as even as the subscriptions allow
    (``_sticky_different_topics``).
    """
    members = sorted(subscriptions)
    if not members:
        return {}
    owned = _valid_owned(subscriptions, partitions_per_topic)
    topics = _known_topics(subscriptions, partitions_per_topic)
    partitions = [TopicPartition(t, p) for t in topics for p in range(partitions_per_topic[t])]
    topic_sets = {_assignable_topics(subscriptions[m], partitions_per_topic) for m in members}
    if len(topic_sets) <= 1:
        assigned = _sticky_same_topics(members, partitions, owned)
    else:
        eligible = {
            tp: [m for m in members if tp.topic in subscriptions[m].topics] for tp in partitions
        }
        assigned = _sticky_different_topics(members, partitions, owned, eligible)
    return _finish(assigned)


def cooperative_sticky_assign(
    subscriptions: Mapping[str, Subscription], partitions_per_topic: Mapping[str, int]
) -> dict[str, tuple[TopicPartition, ...]]:
    """Kafka's CooperativeStickyAssignor: the sticky assignment minus partitions that move.

    A partition that the sticky assignment gives to one member while another member lists it
    in ``owned_partitions`` is left out: its owner sees it gone and revokes it, rejoins, and
    the next rebalance, where nobody owns it, gives it to its new owner (KIP-429).
    Stricter than Kafka: a partition that two members claim is withheld from both.
    """
    claimants: dict[TopicPartition, set[str]] = {}
    for member in sorted(subscriptions):
        for tp in subscriptions[member].owned_partitions:
            claimants.setdefault(tp, set()).add(member)

    def owned_by_another(tp: TopicPartition, member: str) -> bool:
        return bool(claimants.get(tp, set()) - {member})

    sticky = sticky_assign(subscriptions, partitions_per_topic)
    return {
        member: tuple(tp for tp in partitions if not owned_by_another(tp, member))
        for member, partitions in sticky.items()
    }


ASSIGNORS: dict[str, AssignFunction] = {
    "range": range_assign,
    "roundrobin": round_robin_assign,
    "sticky": sticky_assign,
    "cooperative-sticky": cooperative_sticky_assign,
}
"""The assignors by Kafka's protocol names (what ``partition.assignment.strategy`` selects)."""

COOPERATIVE_ASSIGNORS: frozenset[str] = frozenset({"cooperative-sticky"})
"""Assignors whose members keep their partitions through a rebalance (KIP-429)."""


def assignor(name: str) -> AssignFunction:
    """The assignor with Kafka's protocol name ``name``; an unknown name raises ValueError."""
    if name in ASSIGNORS:
        return ASSIGNORS[name]
    choices = list(ASSIGNORS)
    hint = difflib.get_close_matches(name, choices, n=1)
    suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
    raise ValueError(f"unknown assignor {name!r}.{suggestion} Choose one of: {', '.join(choices)}")
