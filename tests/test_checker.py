"""The history checker: one hand-written history per anomaly, and a clean one that passes."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from rich.console import Console

from minikafka.check import EXPLANATIONS, History, Report, check
from minikafka.core.records import TopicPartition

TOPIC = "orders"
P0 = TopicPartition(TOPIC, 0)
P1 = TopicPartition(TOPIC, 1)

NAMES = [
    "lost-write",
    "duplicate",
    "aborted-read",
    "inconsistent-offsets",
    "poll-skip",
    "nonmonotonic-poll",
    "unseen",
    "lost-effect",
    "duplicate-effect",
]


def acked(h: History, value: bytes, partition: int, offset: int) -> None:
    h.send("producer", value, topic=TOPIC, outcome="ok", partition=partition, offset=offset)


def only(report: Report, name: str) -> dict[str, object]:
    """The evidence of the one anomaly ``report`` holds, which must be named ``name``."""
    assert report.counts() == {name: 1}, str(report)
    return report.anomalies[0].evidence


def test_a_clean_history_with_transactions_and_marker_gaps_is_not_flagged() -> None:
    h = History()
    acked(h, b"v1", 0, 0)
    acked(h, b"v2", 0, 1)
    h.send("producer", b"v3", topic=TOPIC, outcome="failed")  # never landed, never read
    h.send("producer", b"v4", topic=TOPIC, outcome="unknown")  # may have landed; not read
    # A committed transaction: a@0/2, b@1/0, markers at 0/3 and 1/1.
    h.txn("pipe", "t", "begin")
    h.send("pipe", b"a", topic=TOPIC, outcome="ok", partition=0, offset=2, txn="t")
    h.send("pipe", b"b", topic=TOPIC, outcome="ok", partition=1, offset=0, txn="t")
    h.commit("pipe", {P0: 2}, outcome="ok", txn="t")
    h.txn("pipe", "t", "commit")
    # The same transactional id again, aborted: x@0/4, marker at 0/5. Nobody reads x.
    h.txn("pipe", "t", "begin")
    h.send("pipe", b"x", topic=TOPIC, outcome="ok", partition=0, offset=4, txn="t")
    h.txn("pipe", "t", "abort")
    acked(h, b"v5", 0, 6)
    acked(h, b"v6", 1, 2)
    h.assign("c1", [P0, P1])
    h.poll("c1", [(P0, 0, b"v1"), (P0, 1, b"v2")])
    h.poll("c1", [(P0, 2, b"a"), (P1, 0, b"b")])
    h.poll("c1", [])
    h.poll("c1", [(P0, 6, b"v5"), (P1, 2, b"v6")])  # over 3..5 and 1: markers, aborted x
    h.commit("c1", {P0: 7, P1: 3}, outcome="ok")
    h.assign("c1", [P0])  # a rebalance: reading 0/2 again is allowed
    h.poll("c1", [(P0, 2, b"a")])
    h.assign("c2", [P1])
    h.poll("c2", [(P1, 2, b"v6")])
    h.effect("sink", "pay-1")
    h.effect("sink", "pay-2")

    report = check(h, expected_keys=["pay-1", "pay-2"])

    assert report.anomalies == (), str(report)
    assert report.ok
    assert report.effect_counts == {"pay-1": 1, "pay-2": 1}
    assert report.stats["acknowledged"] == 6
    assert report.stats["failed"] == 2
    assert report.stats["indefinite"] == 1
    assert str(report) == "history check: ok"


def test_duplicate_one_value_read_at_two_offsets() -> None:
    h = History()
    acked(h, b"v1", 0, 0)
    h.send("producer", b"v1", topic=TOPIC, outcome="unknown")  # the retry that also landed
    poll = h.poll("c1", [(P0, 0, b"v1"), (P0, 1, b"v1")])

    evidence = only(check(h), "duplicate")

    assert evidence == {
        "value": "v1",
        "positions": ["orders-0@0", "orders-0@1"],
        "ops": [0, poll.index],
    }


def test_duplicate_one_value_acknowledged_twice() -> None:
    h = History()
    acked(h, b"v1", 0, 0)
    acked(h, b"v1", 1, 0)
    h.poll("c1", [(P0, 0, b"v1"), (P1, 0, b"v1")])

    evidence = only(check(h), "duplicate")

    assert evidence["positions"] == ["orders-0@0", "orders-1@0"]
    assert evidence["ops"] == [0, 1]


def test_inconsistent_offsets_one_offset_two_values() -> None:
    h = History()
    acked(h, b"a", 0, 0)
    acked(h, b"b", 0, 0)  # the broker handed out offset 0 twice (say, after a truncation)
    h.poll("c1", [(P0, 0, b"a")])
    h.poll("c2", [(P0, 0, b"b")])

    evidence = only(check(h), "inconsistent-offsets")

    assert evidence == {"position": "orders-0@0", "values": ["a", "b"], "ops": [0, 1]}


def test_lost_write_an_acknowledged_value_that_polls_read_past() -> None:
    h = History()
    acked(h, b"v1", 0, 0)
    acked(h, b"v2", 0, 1)
    h.poll("c1", [(P0, 1, b"v2")])

    evidence = only(check(h), "lost-write")

    assert evidence == {"value": "v1", "position": "orders-0@0", "highest_polled": 1, "send": 0}


def test_unseen_acknowledged_values_nobody_read_past() -> None:
    h = History()
    acked(h, b"v1", 0, 0)
    acked(h, b"v2", 0, 1)
    acked(h, b"v3", 1, 0)
    h.poll("c1", [(P0, 0, b"v1")])

    report = check(h)
    evidence = only(report, "unseen")

    assert evidence == {
        "count": 2,
        "values": ["v2", "v3"],
        "positions": ["orders-0@1", "orders-1@0"],
        "sends": [1, 2],
    }
    assert report.anomalies[0].severity == "error"
    assert not report.ok
    # While consumers may still be catching up, unseen is only informational.
    late = check(h, final_polls_complete=False)
    assert late.anomalies[0].severity == "info"
    assert late.ok


def test_unseen_lists_at_most_five_examples() -> None:
    h = History()
    for offset in range(8):
        acked(h, f"v{offset}".encode(), 0, offset)

    evidence = only(check(h), "unseen")

    assert evidence["count"] == 8
    assert evidence["values"] == ["v0", "v1", "v2", "v3", "v4"]


def test_aborted_read_a_value_from_an_aborted_transaction() -> None:
    h = History()
    h.txn("pipe", "t", "begin")
    send = h.send("pipe", b"x", topic=TOPIC, outcome="ok", partition=0, offset=0, txn="t")
    h.txn("pipe", "t", "abort")
    poll = h.poll("c1", [(P0, 0, b"x")])

    evidence = only(check(h), "aborted-read")

    assert evidence == {
        "value": "x",
        "position": "orders-0@0",
        "sends": [send.index],
        "poll": poll.index,
    }


def test_aborted_read_a_value_whose_send_definitely_failed() -> None:
    h = History()
    send = h.send("producer", b"y", topic=TOPIC, outcome="failed")
    h.poll("c1", [(P0, 3, b"y")])

    evidence = only(check(h), "aborted-read")

    assert evidence["sends"] == [send.index]
    assert evidence["position"] == "orders-0@3"


def test_a_reused_transactional_id_without_begins_is_split_at_each_end() -> None:
    h = History()
    h.send("pipe", b"x", topic=TOPIC, outcome="ok", partition=0, offset=0, txn="t")
    h.txn("pipe", "t", "abort")
    h.send("pipe", b"y", topic=TOPIC, outcome="ok", partition=0, offset=2, txn="t")
    h.txn("pipe", "t", "commit")
    h.poll("c1", [(P0, 2, b"y")])
    assert check(h).anomalies == ()

    h.poll("c2", [(P0, 0, b"x")])
    assert check(h).counts() == {"aborted-read": 1}


def test_a_commit_with_an_unknown_outcome_leaves_its_sends_indefinite() -> None:
    h = History()
    h.txn("pipe", "t", "begin")
    h.send("pipe", b"x", topic=TOPIC, outcome="ok", partition=0, offset=0, txn="t")
    h.txn("pipe", "t", "commit", outcome="unknown")
    h.txn("pipe", "t", "begin")
    h.send("pipe", b"y", topic=TOPIC, outcome="ok", partition=0, offset=2, txn="t")
    h.txn("pipe", "t", "commit", outcome="failed")  # did not happen; y is still undecided
    # Reading x is not an aborted read, and not reading y is neither lost nor unseen.
    h.poll("c1", [(P0, 0, b"x")])

    report = check(h)

    assert report.anomalies == ()
    assert report.stats["indefinite"] == 2


def test_poll_skip_jumping_over_records_another_consumer_read() -> None:
    h = History()
    for offset in range(4):
        acked(h, f"v{offset}".encode(), 0, offset)
    first = h.poll("c1", [(P0, 0, b"v0")])
    second = h.poll("c1", [(P0, 3, b"v3")])
    h.poll("c2", [(P0, 0, b"v0"), (P0, 1, b"v1"), (P0, 2, b"v2"), (P0, 3, b"v3")])

    evidence = only(check(h), "poll-skip")

    assert evidence == {
        "process": "c1",
        "partition": "orders-0",
        "from_offset": 0,
        "to_offset": 3,
        "skipped": 2,
        "skipped_offsets": [1, 2],
        "ops": [first.index, second.index],
    }


def test_poll_skip_is_not_judged_across_an_assignment_or_over_unknown_offsets() -> None:
    h = History()
    acked(h, b"v0", 0, 0)
    acked(h, b"v3", 0, 3)
    h.poll("c1", [(P0, 0, b"v0")])
    h.poll("c1", [(P0, 3, b"v3")])  # 1 and 2 hold nothing anyone knows of (markers, say)
    acked(h, b"v4", 0, 4)
    acked(h, b"v5", 0, 5)
    h.assign("c1", [P0])
    h.poll("c1", [(P0, 5, b"v5")])  # skips 4, but after a reassignment
    h.poll("c2", [(P0, 4, b"v4")])

    assert check(h).anomalies == ()


def test_poll_skip_inside_one_poll() -> None:
    h = History()
    for offset in range(3):
        acked(h, f"v{offset}".encode(), 0, offset)
    h.poll("c1", [(P0, 0, b"v0"), (P0, 2, b"v2")])
    h.poll("c2", [(P0, 1, b"v1")])

    evidence = only(check(h), "poll-skip")

    assert evidence["ops"] == [3, 3]
    assert evidence["skipped_offsets"] == [1]


def test_nonmonotonic_poll_reading_an_offset_again() -> None:
    h = History()
    acked(h, b"v0", 0, 0)
    acked(h, b"v1", 0, 1)
    first = h.poll("c1", [(P0, 0, b"v0"), (P0, 1, b"v1")])
    second = h.poll("c1", [(P0, 1, b"v1")])
    h.assign("c1", [P0])
    h.poll("c1", [(P0, 0, b"v0")])  # going back after a reassignment is allowed

    evidence = only(check(h), "nonmonotonic-poll")

    assert evidence == {
        "process": "c1",
        "partition": "orders-0",
        "from_offset": 1,
        "to_offset": 1,
        "ops": [first.index, second.index],
    }


def test_effects_are_counted_per_key() -> None:
    h = History()
    h.effect("w1", "k1")
    first = h.effect("w1", "k2")
    second = h.effect("w2", "k2")
    h.effect("w2", "other")

    report = check(h, expected_keys=["k3", "k2", "k1"])

    assert report.effect_counts == {"k1": 1, "k2": 2, "k3": 0, "other": 1}
    assert report.counts() == {"lost-effect": 1, "duplicate-effect": 1}
    assert report.named("lost-effect")[0].evidence == {"key": "k3"}
    assert report.named("duplicate-effect")[0].evidence == {
        "key": "k2",
        "count": 2,
        "ops": [first.index, second.index],
    }


def test_the_topic_filter_ignores_other_topics() -> None:
    h = History()
    acked(h, b"v0", 0, 0)
    h.send("producer", b"elsewhere", topic="other", outcome="ok", partition=0, offset=0)
    h.poll("c1", [(P0, 0, b"v0")])

    assert check(h).counts() == {"unseen": 1}
    assert check(h, topic=TOPIC).anomalies == ()


def test_every_anomaly_name_has_a_one_line_explanation() -> None:
    assert sorted(EXPLANATIONS) == sorted(NAMES)
    for name, explanation in EXPLANATIONS.items():
        assert explanation and "\n" not in explanation, name
    h = History()
    acked(h, b"v1", 0, 0)
    report = check(h)
    assert report.anomalies[0].explanation == EXPLANATIONS["unseen"]


def test_history_json_round_trip() -> None:
    h = History()
    h.txn("pipe", "t", "begin", time=0.5)
    h.send("pipe", b"\xff\x00", topic=TOPIC, outcome="ok", partition=0, offset=0, txn="t")
    h.txn("pipe", "t", "commit")
    h.assign("c1", [P1, P0])
    h.poll("c1", [(P0, 0, b"\xff\x00"), (P1, 4, b"text")], time=1.25)
    h.commit("c1", {P0: 1}, outcome="unknown")
    h.effect("sink", "k")

    data = json.loads(h.dumps())
    again = History.from_json(data)

    assert list(again) == list(h)
    assert data[1]["value"] == {"hex": "ff00"}
    assert data[4] == {
        "type": "poll",
        "process": "c1",
        "time": 1.25,
        "records": [["orders", 0, 0, {"hex": "ff00"}], ["orders", 1, 4, "text"]],
    }
    assert [item["type"] for item in data] == [
        "txn",
        "send",
        "txn",
        "assign",
        "poll",
        "commit",
        "effect",
    ]


def test_report_json_round_trip() -> None:
    h = History()
    acked(h, b"v1", 0, 0)
    acked(h, b"v2", 0, 1)
    h.poll("c1", [(P0, 1, b"v2")])
    h.effect("sink", "k")
    report = check(h, expected_keys=["k", "j"])

    data = json.loads(report.dumps())

    assert data["ok"] is False
    assert data["counts"] == {"lost-write": 1, "lost-effect": 1}
    assert data["anomalies"][0] == {
        "name": "lost-write",
        "severity": "error",
        "explanation": EXPLANATIONS["lost-write"],
        "evidence": {"value": "v1", "position": "orders-0@0", "highest_polled": 1, "send": 0},
    }
    assert data["effect_counts"] == {"j": 0, "k": 1}
    assert Report.from_json(data) == report


def test_text_renderings() -> None:
    h = History()
    acked(h, b"v1", 0, 0)
    h.poll("consumer-1", [(P0, 0, b"v1")], time=2.0)
    h.poll("consumer-1", [(P0, i, b"v") for i in range(1, 10)])

    lines = h.text().splitlines()

    assert len(lines) == len(h) == 3
    assert lines[0] == "#0     T=   0.000 producer   send   orders-0@0 'v1' ok"
    assert lines[1] == "#1     T=   2.000 consumer-1 poll   orders-0@0 'v1'"
    assert lines[2].endswith("+3 more")
    report = check(h)
    assert str(report).splitlines()[0] == "history check: FAILED (duplicate x1)"


def test_rich_render_smoke() -> None:
    h = History()
    acked(h, b"v1", 0, 0)
    acked(h, b"v2", 0, 1)
    h.poll("c1", [(P0, 1, b"v2")])
    console = Console(file=StringIO(), width=100, color_system=None)

    console.print(check(h))
    console.print(check(History()))

    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "history check: FAILED" in out
    assert "lost-write" in out
    assert "history check: ok" in out


def rendered(report: Report, **options: int | None) -> str:
    """The table ``report.render(**options)`` draws, as plain text."""
    console = Console(file=StringIO(), record=True, width=120)
    console.print(report.render(**options))
    return console.export_text()


def test_the_table_shows_three_anomalies_of_a_name_and_counts_the_rest() -> None:
    h = History()
    h.effect("sink", "twice")
    h.effect("sink", "twice")
    report = check(h, expected_keys=["twice", *(f"k{i}" for i in range(5))])
    assert report.counts() == {"lost-effect": 5, "duplicate-effect": 1}

    text = rendered(report)

    assert [f"key='k{i}'" in text for i in range(5)] == [True, True, True, False, False]
    assert text.count("lost-effect") == 4  # three rows, and one that counts the rest
    assert text.count("... and") == 1 and "... and 2 more" in text
    assert "key='twice'" in text


def test_the_count_of_the_rest_covers_anomalies_past_the_limit() -> None:
    report = check(History(), expected_keys=[f"k{i}" for i in range(5)])

    text = rendered(report, limit=4)

    assert "... and 2 more" in text


def test_the_table_shows_every_anomaly_without_a_per_name_limit() -> None:
    report = check(History(), expected_keys=[f"k{i}" for i in range(5)])

    text = rendered(report, per_name=None)

    assert all(f"key='k{i}'" in text for i in range(5))
    assert "... and" not in text


def test_send_validation() -> None:
    h = History()
    with pytest.raises(ValueError, match="partition and offset"):
        h.send("p", b"v", topic=TOPIC, outcome="ok")
    with pytest.raises(ValueError, match="outcome"):
        h.send("p", b"v", topic=TOPIC, outcome="maybe")  # type: ignore[arg-type]
    assert len(h) == 0


def test_a_hundred_thousand_op_clean_history_has_no_anomaly() -> None:
    # How fast this checks is for `minikafka bench`, not for a timed assertion here.
    h = History()
    partitions = [TopicPartition(TOPIC, p) for p in range(4)]
    batch: list[tuple[TopicPartition, int, bytes]] = []
    for i in range(80_000):
        tp = partitions[i % 4]
        value = str(i).encode()
        acked(h, value, tp.partition, i // 4)
        batch.append((tp, i // 4, value))
        if len(batch) == 4:
            h.poll("c1", batch)
            batch = []
    assert len(h) == 100_000

    report = check(h)
    assert report.anomalies == ()
