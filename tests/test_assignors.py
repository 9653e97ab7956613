"""The consumer protocol's assignors and encodings: properties, Kafka's examples, and a control.

``check_assignment`` is the validity checker every property uses; the negative controls show
that it fails for assignors that lose or double-assign a partition.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Mapping

import attrs
import pytest
from hypothesis import find, given
from hypothesis import strategies as st

from minikafka.core.assignors import (
    ASSIGNORS,
    CONSUMER_PROTOCOL_TYPE,
    COOPERATIVE_ASSIGNORS,
    AssignFunction,
    Assignment,
    Subscription,
    assignor,
    cooperative_sticky_assign,
    range_assign,
    round_robin_assign,
    sticky_assign,
)
from minikafka.core.records import TopicPartition

Result = dict[str, tuple[TopicPartition, ...]]

MEMBER_IDS = [f"m{i}" for i in range(6)]
TOPICS = ["a", "b", "c", "d"]


@attrs.frozen
class Group:
    """An assignor's input: member id -> subscription, and topic -> partition count."""

    subscriptions: dict[str, Subscription]
    partitions_per_topic: dict[str, int]

    def assign(self, function: AssignFunction) -> Result:
        return function(self.subscriptions, self.partitions_per_topic)

    def owning(self, result: Mapping[str, tuple[TopicPartition, ...]], generation: int) -> Group:
        """The same members and topics, each now owning its share of ``result``."""
        subscriptions = {
            member: Subscription(sub.topics, result[member], generation)
            for member, sub in self.subscriptions.items()
        }
        return Group(subscriptions, self.partitions_per_topic)

    @property
    def next_generation(self) -> int:
        return 1 + max(sub.generation_id for sub in self.subscriptions.values())


def tp(name: str) -> TopicPartition:
    """``tp("t0p2")`` is partition 2 of topic t0, as Kafka's docs write it."""
    topic, partition = name.rsplit("p", 1)
    return TopicPartition(topic, int(partition))


def tps(*names: str) -> tuple[TopicPartition, ...]:
    return tuple(tp(name) for name in names)


ALL_PARTITIONS = [TopicPartition(topic, p) for topic in TOPICS for p in range(10)]

# Masks and tuples keep the draws few: generating a group is most of each example's cost.
member_masks = st.integers(1, 2 ** len(MEMBER_IDS) - 1)
topic_masks = st.integers(0, 2 ** len(TOPICS) - 1)
partition_counts = st.tuples(*[st.integers(-1, 8)] * len(TOPICS))  # -1: the topic is unknown
claims = st.lists(st.sampled_from(ALL_PARTITIONS), max_size=4)
generations = st.integers(-1, 3)


def pick(mask: int, names: list[str]) -> list[str]:
    return [name for i, name in enumerate(names) if mask >> i & 1]


@st.composite
def groups(draw: st.DrawFn, *, identical: bool | None = None, owned: bool = True) -> Group:
    """Up to six members; topics a-d with 0-8 partitions, or unknown. Subscriptions are
    identical or different; owned partitions are arbitrary claims (some invalid, some
    conflicting) with generations -1 to 3."""
    members = pick(draw(member_masks), MEMBER_IDS)
    counts = {t: n for t, n in zip(TOPICS, draw(partition_counts), strict=True) if n >= 0}
    if identical is None:
        identical = draw(st.booleans())
    shared = pick(draw(topic_masks), TOPICS)
    subscriptions = {}
    for member in members:
        topics = shared if identical else pick(draw(topic_masks), TOPICS)
        owned_partitions = draw(claims) if owned else []
        subscriptions[member] = Subscription(topics, owned_partitions, draw(generations))
    return Group(subscriptions, counts)


# --- The checker ---------------------------------------------------------------------------


def all_partitions(group: Group) -> set[TopicPartition]:
    """Every partition of a known topic that at least one member subscribes to."""
    subscribed = {t for sub in group.subscriptions.values() for t in sub.topics}
    return {
        TopicPartition(topic, p)
        for topic, count in group.partitions_per_topic.items()
        if topic in subscribed
        for p in range(count)
    }


def check_assignment(
    group: Group, result: Result, *, withheld: frozenset[TopicPartition] = frozenset()
) -> None:
    """Assert ``result`` is a valid assignment of ``group``, leaving out ``withheld``."""
    assert set(result) == set(group.subscriptions), "every member, and only members, appear"
    times = Counter(p for partitions in result.values() for p in partitions)
    for member, partitions in result.items():
        assert list(partitions) == sorted(partitions, key=lambda p: (p.topic, p.partition))
        for p in partitions:
            assert p.topic in group.subscriptions[member].topics, f"{member} got {p} unasked"
            assert 0 <= p.partition < group.partitions_per_topic.get(p.topic, 0), f"no {p}"
    for p in sorted(all_partitions(group), key=str):
        expected = 0 if p in withheld else 1
        assert times[p] == expected, f"{p} assigned {times[p]} times, expected {expected}"
    assert set(times) <= all_partitions(group)


def contested(group: Group, sticky: Result) -> frozenset[TopicPartition]:
    """Partitions the sticky assignment gives to a member while another member owns them."""
    return frozenset(
        p
        for member, partitions in sticky.items()
        for p in partitions
        for other, sub in group.subscriptions.items()
        if other != member and p in sub.owned_partitions
    )


def check_any(name: str, group: Group, result: Result) -> None:
    withheld = frozenset()
    if name in COOPERATIVE_ASSIGNORS:
        withheld = contested(group, group.assign(sticky_assign))
    check_assignment(group, result, withheld=withheld)


def spread(result: Result) -> int:
    counts = [len(partitions) for partitions in result.values()]
    return max(counts) - min(counts)


# --- Every assignor ------------------------------------------------------------------------


@given(group=groups(), data=st.data())
def test_every_assignor_is_valid_and_deterministic(group: Group, data: st.DataObject) -> None:
    """Same input, same output, whatever order the input mappings iterate in."""
    members = data.draw(st.permutations(sorted(group.subscriptions)), label="member order")
    topics = data.draw(st.permutations(sorted(group.partitions_per_topic)), label="topic order")
    shuffled = Group(
        {m: group.subscriptions[m] for m in members},
        {t: group.partitions_per_topic[t] for t in topics},
    )
    for name, function in ASSIGNORS.items():
        result = group.assign(function)
        check_any(name, group, result)
        assert group.assign(function) == result, name
        assert shuffled.assign(function) == result, name


def test_assignor_lookup() -> None:
    assert set(ASSIGNORS) == {"range", "roundrobin", "sticky", "cooperative-sticky"}
    assert {"cooperative-sticky"} == COOPERATIVE_ASSIGNORS
    assert set(ASSIGNORS) >= COOPERATIVE_ASSIGNORS
    assert assignor("range") is range_assign
    assert assignor("roundrobin") is round_robin_assign
    assert assignor("sticky") is sticky_assign
    assert assignor("cooperative-sticky") is cooperative_sticky_assign
    assert CONSUMER_PROTOCOL_TYPE == "consumer"


def test_unknown_assignor_names_the_choices() -> None:
    with pytest.raises(ValueError, match="Did you mean 'roundrobin'") as caught:
        assignor("round-robin")
    assert "range, roundrobin, sticky, cooperative-sticky" in str(caught.value)
    with pytest.raises(ValueError, match=r"unknown assignor 'zzz'\. Choose one of"):
        assignor("zzz")


def test_empty_group_gets_an_empty_assignment() -> None:
    for function in ASSIGNORS.values():
        assert function({}, {"a": 3}) == {}


def test_unknown_topics_and_empty_topics_get_nothing() -> None:
    group = Group({"m0": Subscription(["a", "gone"]), "m1": Subscription(["b"])}, {"a": 0})
    for function in ASSIGNORS.values():
        assert group.assign(function) == {"m0": (), "m1": ()}


# --- Balance -------------------------------------------------------------------------------


@given(group=groups(identical=True))
def test_identical_subscriptions_are_balanced(group: Group) -> None:
    """Roundrobin and sticky within one partition overall; range within one per topic."""
    assert spread(group.assign(round_robin_assign)) <= 1
    assert spread(group.assign(sticky_assign)) <= 1
    result = group.assign(range_assign)
    for topic in {p.topic for p in all_partitions(group)}:
        counts = [sum(p.topic == topic for p in partitions) for partitions in result.values()]
        assert max(counts) - min(counts) <= 1, topic


def test_range_can_be_unbalanced_overall() -> None:
    """Kafka's known range behaviour: the first member gets the extra partition of each topic."""
    group = Group(
        {"m0": Subscription(["a", "b"]), "m1": Subscription(["a", "b"])}, {"a": 1, "b": 1}
    )
    assert group.assign(range_assign) == {"m0": tps("ap0", "bp0"), "m1": ()}


# --- Stickiness ----------------------------------------------------------------------------


@given(group=groups())
def test_sticky_has_no_improving_move_and_is_a_fixed_point(group: Group) -> None:
    """No member holds a partition that a subscribed member with two fewer could take (this
    is all the balance different subscriptions promise), and an unchanged group, owning its
    assignment, gets the same assignment again."""
    result = group.assign(sticky_assign)
    for member, partitions in result.items():
        for p in partitions:
            for other, sub in group.subscriptions.items():
                if p.topic in sub.topics:
                    assert len(result[other]) >= len(partitions) - 1, (p, member, other)
    again = group.owning(result, group.next_generation).assign(sticky_assign)
    assert again == result


@given(group=groups(identical=True), data=st.data())
def test_sticky_keeps_partitions_when_a_member_leaves_or_joins(
    group: Group, data: st.DataObject
) -> None:
    """Each member keeps its old partitions up to its new quota, giving up its highest first.

    Quotas are floor(P/M) and ceil(P/M); the P % M members that owned the most (ties by member
    id) are at the ceiling. So a member keeps everything unless it owned more than its quota,
    and then it keeps exactly quota-many, all of them its own.
    """
    before = group.assign(sticky_assign)
    settled = group.owning(before, group.next_generation)
    subscriptions = dict(settled.subscriptions)
    topics = next(iter(subscriptions.values())).topics
    if len(subscriptions) > 1 and data.draw(st.booleans(), label="leave (else join)"):
        del subscriptions[data.draw(st.sampled_from(sorted(subscriptions)), label="leaver")]
    else:
        newcomers = [f"m{i}" for i in range(7) if f"m{i}" not in subscriptions]
        subscriptions[data.draw(st.sampled_from(newcomers), label="joiner")] = Subscription(topics)
    changed = Group(subscriptions, group.partitions_per_topic)
    after = changed.assign(sticky_assign)
    check_assignment(changed, after)

    floor, at_ceiling = divmod(len(all_partitions(changed)), len(subscriptions))
    by_owned = sorted(subscriptions, key=lambda m: (-len(before.get(m, ())), m))
    for rank, member in enumerate(by_owned):
        quota = floor + (1 if rank < at_ceiling else 0)
        old, new = before.get(member, ()), after[member]
        assert len(new) == quota
        if len(old) <= quota:
            assert set(old) <= set(new), f"{member} lost partitions it could keep"
        else:
            assert new == old[:quota], f"{member} should keep its {quota} lowest partitions"


def test_sticky_only_p_mod_m_members_stay_at_the_ceiling() -> None:
    """7 partitions, m2 joins m0 (4) and m1 (3): quotas are 3, 2, 2. m1 owned no more than the
    ceiling of 3, yet gives up one, because only 7 % 3 = 1 member may sit at the ceiling."""
    before = {"m0": tps("ap0", "ap2", "ap4", "ap6"), "m1": tps("ap1", "ap3", "ap5")}
    group = Group(
        {
            "m0": Subscription(["a"], before["m0"], 1),
            "m1": Subscription(["a"], before["m1"], 1),
            "m2": Subscription(["a"]),
        },
        {"a": 7},
    )
    assert group.assign(sticky_assign) == {
        "m0": tps("ap0", "ap2", "ap4"),
        "m1": tps("ap1", "ap3"),
        "m2": tps("ap5", "ap6"),
    }


def test_sticky_matches_kafkas_documented_example() -> None:
    """The StickyAssignor example (KIP-54): three members, t0-t3 with two partitions each,
    then C1 leaves and C0 and C2 keep everything they had."""
    topics = ["t0", "t1", "t2", "t3"]
    counts = dict.fromkeys(topics, 2)
    group = Group({m: Subscription(topics) for m in ["C0", "C1", "C2"]}, counts)
    first = group.assign(sticky_assign)
    assert first == {
        "C0": tps("t0p0", "t1p1", "t3p0"),
        "C1": tps("t0p1", "t2p0", "t3p1"),
        "C2": tps("t1p0", "t2p1"),
    }
    left = Group(
        {m: Subscription(topics, first[m], 1) for m in ["C0", "C2"]},
        counts,
    )
    assert left.assign(sticky_assign) == {
        "C0": tps("t0p0", "t1p1", "t2p0", "t3p0"),
        "C2": tps("t0p1", "t1p0", "t2p1", "t3p1"),
    }


def test_sticky_evens_counts_out_along_a_chain() -> None:
    """A subscribes to y, B to x and y, C to x. The greedy leaves A 3, B 2, C 1, and no single
    move helps (A can only give to B, which would then hold 3); moving a y from A to B and an
    x from B to C does."""
    group = Group(
        {"A": Subscription(["y"]), "B": Subscription(["x", "y"]), "C": Subscription(["x"])},
        {"x": 3, "y": 3},
    )
    result = group.assign(sticky_assign)
    assert [len(result[m]) for m in "ABC"] == [2, 2, 2]
    assert group.owning(result, 1).assign(cooperative_sticky_assign) == result


def test_sticky_ignores_stale_and_conflicting_claims() -> None:
    """The claim from the highest generation wins; a tie at that generation keeps nothing."""
    counts = {"a": 2}
    stale = Group(
        {"m0": Subscription(["a"], tps("ap0"), 5), "m1": Subscription(["a"], tps("ap0"), 4)},
        counts,
    )
    assert stale.assign(sticky_assign) == {"m0": tps("ap0"), "m1": tps("ap1")}
    tied = Group(
        {"m0": Subscription(["a"], tps("ap1"), 3), "m1": Subscription(["a"], tps("ap1"), 3)},
        counts,
    )
    # Neither keeps a1, so both are handed out in order: a0 to m0, a1 to m1.
    assert tied.assign(sticky_assign) == {"m0": tps("ap0"), "m1": tps("ap1")}
    unsubscribed = Group(
        {"m0": Subscription(["b"], tps("ap0", "ap1"), 3), "m1": Subscription(["a"])}, counts
    )
    assert unsubscribed.assign(sticky_assign) == {"m0": (), "m1": tps("ap0", "ap1")}


# --- Cooperative ---------------------------------------------------------------------------


@given(group=groups())
def test_cooperative_withholds_moving_partitions_and_converges(group: Group) -> None:
    """No partition goes to a member while another member owns it: the result is the sticky
    assignment minus such partitions. Fed back as owned partitions, it gives the full sticky
    assignment in one more round, and that assignment is a fixed point."""
    first = group.assign(cooperative_sticky_assign)
    sticky = group.assign(sticky_assign)
    for member, partitions in first.items():
        assert set(partitions) <= set(sticky[member])
        for p in partitions:
            for other, sub in group.subscriptions.items():
                assert other == member or p not in sub.owned_partitions, (p, member, other)
    if not any(sub.owned_partitions for sub in group.subscriptions.values()):
        assert first == sticky

    revoked = group.owning(first, group.next_generation)
    second = revoked.assign(cooperative_sticky_assign)
    assert second == revoked.assign(sticky_assign)
    check_assignment(revoked, second)
    settled = revoked.owning(second, revoked.next_generation)
    assert settled.assign(cooperative_sticky_assign) == second


def test_cooperative_moves_a_partition_in_two_rebalances() -> None:
    """m2 joins m0 and m1, which own a0-a1 and a2-a3: m1 revokes a3 first, m2 gets it next."""
    topics = ["a"]
    group = Group(
        {
            "m0": Subscription(topics, tps("ap0", "ap1"), 1),
            "m1": Subscription(topics, tps("ap2", "ap3"), 1),
            "m2": Subscription(topics),
        },
        {"a": 4},
    )
    assert group.assign(sticky_assign) == {
        "m0": tps("ap0", "ap1"),
        "m1": tps("ap2"),
        "m2": tps("ap3"),
    }
    first = group.assign(cooperative_sticky_assign)
    assert first == {"m0": tps("ap0", "ap1"), "m1": tps("ap2"), "m2": ()}
    second = group.owning(first, 2).assign(cooperative_sticky_assign)
    assert second == {"m0": tps("ap0", "ap1"), "m1": tps("ap2"), "m2": tps("ap3")}


# --- Kafka's documented examples -----------------------------------------------------------


def test_range_matches_kafkas_documented_example() -> None:
    group = Group(
        {"C0": Subscription(["t0", "t1"]), "C1": Subscription(["t0", "t1"])},
        {"t0": 3, "t1": 3},
    )
    assert group.assign(range_assign) == {
        "C0": tps("t0p0", "t0p1", "t1p0", "t1p1"),
        "C1": tps("t0p2", "t1p2"),
    }


def test_round_robin_matches_kafkas_documented_examples() -> None:
    same = Group(
        {"C0": Subscription(["t0", "t1"]), "C1": Subscription(["t0", "t1"])},
        {"t0": 3, "t1": 3},
    )
    assert same.assign(round_robin_assign) == {
        "C0": tps("t0p0", "t0p2", "t1p1"),
        "C1": tps("t0p1", "t1p0", "t1p2"),
    }
    different = Group(
        {
            "C0": Subscription(["t0"]),
            "C1": Subscription(["t0", "t1"]),
            "C2": Subscription(["t0", "t1", "t2"]),
        },
        {"t0": 1, "t1": 2, "t2": 3},
    )
    assert different.assign(round_robin_assign) == {
        "C0": tps("t0p0"),
        "C1": tps("t1p0"),
        "C2": tps("t1p1", "t2p0", "t2p1", "t2p2"),
    }


# --- Negative controls: the checker can fail -----------------------------------------------


def drop_last(
    subscriptions: Mapping[str, Subscription], partitions_per_topic: Mapping[str, int]
) -> Result:
    """Broken on purpose: the member with the most partitions loses its last one."""
    result = sticky_assign(subscriptions, partitions_per_topic)
    biggest = max(sorted(result), key=lambda m: len(result[m]))
    return {**result, biggest: result[biggest][:-1]}


def give_twice(
    subscriptions: Mapping[str, Subscription], partitions_per_topic: Mapping[str, int]
) -> Result:
    """Broken on purpose: every member also gets every partition of its first topic."""
    result = range_assign(subscriptions, partitions_per_topic)
    for member, sub in subscriptions.items():
        if sub.topics:
            topic = sub.topics[0]
            extra = {TopicPartition(topic, p) for p in range(partitions_per_topic.get(topic, 0))}
            result[member] = tuple(
                sorted(set(result[member]) | extra, key=lambda p: (p.topic, p.partition))
            )
    return result


def fails_check(function: AssignFunction, group: Group) -> bool:
    try:
        check_assignment(group, group.assign(function))
    except AssertionError:
        return True
    return False


def test_checker_catches_a_lost_partition() -> None:
    """Hypothesis finds, and shrinks to one member and one partition, an input on which the
    checker rejects ``drop_last``."""
    found = find(groups(identical=True, owned=False), lambda group: fails_check(drop_last, group))
    assert not fails_check(sticky_assign, found)
    assert len(found.subscriptions) == 1
    assert len(all_partitions(found)) == 1


def test_checker_rejects_a_doubled_partition() -> None:
    group = Group({"m0": Subscription(["a"]), "m1": Subscription(["a"])}, {"a": 3})
    with pytest.raises(AssertionError, match="assigned 2 times"):
        check_assignment(group, give_twice(group.subscriptions, group.partitions_per_topic))
    with pytest.raises(AssertionError, match="assigned 0 times"):
        check_assignment(group, drop_last(group.subscriptions, group.partitions_per_topic))


# --- Encoding ------------------------------------------------------------------------------

topic_names = st.text(min_size=1, max_size=5)
subscriptions = st.builds(
    Subscription,
    st.lists(topic_names, max_size=4),
    st.lists(st.builds(TopicPartition, topic_names, st.integers(0, 2**31 - 1)), max_size=5),
    st.integers(-1, 2**31 - 1),
)
assignments = st.builds(
    Assignment, st.lists(st.builds(TopicPartition, topic_names, st.integers(0, 99)), max_size=6)
)


@given(subscription=subscriptions, assignment=assignments)
def test_encoding_round_trips(subscription: Subscription, assignment: Assignment) -> None:
    assert Subscription.from_bytes(subscription.to_bytes()) == subscription
    assert Assignment.from_bytes(assignment.to_bytes()) == assignment


def test_encoding_is_compact_json_with_sorted_keys() -> None:
    subscription = Subscription(["b", "a", "b"], [tp("bp1"), tp("ap2"), tp("ap0")], 4)
    assert subscription.topics == ("a", "b")
    assert subscription.owned_partitions == tps("ap0", "ap2", "bp1")
    assert subscription.to_bytes() == (
        b'{"generation_id":4,"owned_partitions":[{"partitions":[0,2],"topic":"a"},'
        b'{"partitions":[1],"topic":"b"}],"topics":["a","b"]}'
    )
    assert Assignment([tp("bp0"), tp("ap1")]).to_bytes() == (
        b'{"assigned_partitions":[{"partitions":[1],"topic":"a"},{"partitions":[0],"topic":"b"}]}'
    )


def test_empty_bytes_are_the_empty_assignment() -> None:
    assert Assignment.from_bytes(b"") == Assignment(())


def test_old_subscription_without_owned_partitions_decodes() -> None:
    assert Subscription.from_bytes(b'{"topics":["a"],"later":1}') == Subscription(["a"])


def test_topics_must_not_be_one_string() -> None:
    with pytest.raises(TypeError, match="not the string 'abc'"):
        Subscription("abc")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not UTF-8 JSON"),
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"{topics", "not UTF-8 JSON"),
        (b"[" * 100_000, "JSON nested too deeply"),
        (b'["a"]', "expected a JSON object, got array"),
        (b"{}", "the topics key is missing"),
        (b'{"topics":"a"}', "topics must be an array of strings"),
        (b'{"topics":[1]}', "topics must be an array of strings"),
        (b'{"topics":[],"owned_partitions":{}}', "owned_partitions must be an array, got object"),
        (b'{"topics":[],"owned_partitions":[3]}', r"owned_partitions\[0\] must be an object"),
        (b'{"topics":[],"owned_partitions":[{"partitions":[]}]}', r"\[0\].topic must be a str"),
        (b'{"topics":[],"owned_partitions":[{"topic":"a"}]}', r"\[0\].partitions must be an a"),
        (
            b'{"topics":[],"owned_partitions":[{"topic":"a","partitions":[0,-1]}]}',
            r"owned_partitions\[0\].partitions\[1\] must be a non-negative integer, got -1",
        ),
        (
            b'{"topics":[],"owned_partitions":[{"topic":"a","partitions":[true]}]}',
            "must be a non-negative integer, got true",
        ),
        (b'{"topics":[],"generation_id":"1"}', 'generation_id must be an integer >= -1, got "1"'),
        (b'{"topics":[],"generation_id":-2}', "generation_id must be an integer >= -1"),
    ],
)
def test_malformed_subscription_says_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        Subscription.from_bytes(data)
    assert str(caught.value).startswith("malformed consumer subscription: ")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00", "not UTF-8 JSON"),
        (b"null", "expected a JSON object, got null"),
        (b'{"partitions":[]}', "the assigned_partitions key is missing"),
        (b'{"assigned_partitions":[{"topic":"a","partitions":[1.5]}]}', "got 1.5"),
    ],
)
def test_malformed_assignment_says_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        Assignment.from_bytes(data)
    assert str(caught.value).startswith("malformed consumer assignment: ")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["a", "topics"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["topics", "owned_partitions", "generation_id", "topic", "partitions"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=8,
)


@given(data=st.binary(max_size=40) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_decode_or_raise_value_error(data: bytes) -> None:
    for decode in (Subscription.from_bytes, Assignment.from_bytes):
        with contextlib.suppress(ValueError):
            decode(data)
