"""Broker configuration and the safeguards a lesson can switch off.

Every setting has Kafka's name in snake case and Kafka's default unless the docstring says
why not. A bad value is refused when the config is built, with a message that says what to
do, so a broker never runs on a configuration that does not make sense.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

__all__ = ["BrokerConfig", "ConfigError", "Safeguard"]


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the choice closest to ``value``, or nothing if none is close."""
    hint = difflib.get_close_matches(value, list(choices), n=1)
    return f" Did you mean {hint[0]!r}?" if hint else ""


class ConfigError(ValueError):
    """A configuration value or key that cannot be used; the message says what to do."""


class Safeguard(enum.Enum):
    """A mechanism that protects a delivery guarantee and can be switched off to watch it fail."""

    PRODUCER_DEDUP = "producer-dedup"
    """The sequence check and the 5-batch duplicate window: without it, retries duplicate."""
    EPOCH_FENCING = "epoch-fencing"
    """Stale producer epochs are refused: without it, zombie producers write and commit."""
    LAST_STABLE_OFFSET = "last-stable-offset"
    """read_committed stops at the LSO and filters aborts: without it, dirty reads."""
    PENDING_TXN_OFFSETS = "pending-txn-offsets"
    """Transactional offsets wait for the marker: without it, aborted work counts as done."""
    GENERATION_FENCING = "generation-fencing"
    """Commits from stale group generations are refused: without it, zombie consumers commit."""
    ROLL_FORWARD = "roll-forward"
    """A recovered PrepareCommit finishes as a commit: without it, torn transactions."""

    @classmethod
    def from_name(cls, name: str) -> Safeguard:
        """Look a safeguard up by its kebab-case name (``producer-dedup``) or enum name."""
        for safeguard in cls:
            if name in (safeguard.value, safeguard.name):
                return safeguard
        choices = [safeguard.value for safeguard in cls]
        suggestion = did_you_mean(name, choices)
        raise ConfigError(
            f"unknown safeguard {name!r}.{suggestion} Choose one of: {', '.join(choices)}"
        )


def _to_safeguards(value: Iterable[Safeguard | str]) -> frozenset[Safeguard]:
    if isinstance(value, str | Safeguard):
        value = [value]
    return frozenset(
        item if isinstance(item, Safeguard) else Safeguard.from_name(item) for item in value
    )


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{attribute.name} must be a positive integer, not {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{attribute.name} must be an integer of 0 or more, not {value!r}")


@attrs.frozen(kw_only=True)
class BrokerConfig:
    """The broker's settings. Defaults are always the safe ones."""

    disabled_safeguards: frozenset[Safeguard] = attrs.field(
        default=frozenset(), converter=_to_safeguards
    )
    auto_create_topics_enable: bool = True
    """Kafka's default: a Metadata request for an unknown topic creates it."""
    num_partitions: int = attrs.field(default=1, validator=_positive)
    """Partitions of an auto-created topic."""
    max_partitions_per_topic: int = attrs.field(default=10_000, validator=_positive)
    """Simplified: a cap Kafka does not have, so a typo cannot allocate millions of logs."""
    log_flush_interval_ms: int = attrs.field(default=1000, validator=_non_negative)
    """How long an acks=0/1 append may stay unflushed (and so above the high watermark).

    Simplified: this stands for follower replication; acks="all" flushes before answering."""
    message_max_bytes: int = attrs.field(default=1_048_588, validator=_positive)
    """Kafka's default largest batch the broker accepts."""
    transaction_max_timeout_ms: int = attrs.field(default=900_000, validator=_positive)
    """Kafka's transaction.max.timeout.ms (15 minutes)."""
    group_min_session_timeout_ms: int = attrs.field(default=6_000, validator=_positive)
    """Kafka's group.min.session.timeout.ms: a JoinGroup asking for less is refused."""
    group_max_session_timeout_ms: int = attrs.field(default=1_800_000, validator=_positive)
    """Kafka's group.max.session.timeout.ms (30 minutes)."""
    sequence_check: Callable[[Any, Any], Any] | None = attrs.field(default=None, eq=False)
    """A plug-in for the classroom: ``check(entry, batch)`` decides each idempotent batch in
    place of the built-in sequence and epoch checks, given the producer's state on the
    partition (a ``ProducerStateEntry``, or None) and the batch; it returns ``APPEND``, a
    ``Duplicate`` or a ``Rejected`` (``minikafka.core.producer_state``)."""
    stable_offset: Callable[[int, tuple[int, ...]], int] | None = attrs.field(
        default=None, eq=False
    )
    """A plug-in for the classroom: ``stable_offset(high_watermark, open_first_offsets)``
    computes the last stable offset that read_committed fetches stop at, in place of the
    built-in rule."""
    group_initial_rebalance_delay_ms: int = attrs.field(default=3_000, validator=_non_negative)
    """Kafka's group.initial.rebalance.delay.ms: the first rebalance of an empty group waits
    this long (extended while members keep arriving) so that they join one generation."""

    def __attrs_post_init__(self) -> None:
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms:
            raise ConfigError(
                f"group_min_session_timeout_ms ({self.group_min_session_timeout_ms}) is above "
                f"group_max_session_timeout_ms ({self.group_max_session_timeout_ms}); "
                "lower the minimum or raise the maximum"
            )

    def enabled(self, safeguard: Safeguard) -> bool:
        return safeguard not in self.disabled_safeguards

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> BrokerConfig:
        """Build a config from keyword options, naming the closest valid key for a typo."""
        names = [field.name for field in attrs.fields(cls)]
        for key in options:
            if key not in names:
                raise ConfigError(f"unknown broker setting {key!r}.{did_you_mean(key, names)}")
        return cls(**options)
