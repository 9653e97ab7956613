"""What every simulated client shares: its connection, its life, and a clean way to die.

A client lives inside an ``open_cluster`` block. ``start()`` connects it and starts its
background tasks (in the cluster's nursery, so they outlive the call that started them);
``close()`` ends it politely; ``crash()`` ends it at once. Every public call runs inside a
guard: a crash cancels the calls in progress, and they raise ``ClientCrashed``, as a process
that dies takes its application down with it.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import trio

from minikafka.client.errors import ClientCrashed, IllegalStateError, KafkaTimeoutError
from minikafka.core.config import ConfigError, did_you_mean
from minikafka.core.messages import Request, Response
from minikafka.sim.network import ConnectionBroken, Network, RequestTimedOut

if TYPE_CHECKING:
    from minikafka.client.cluster import Cluster

__all__ = ["ClientBase", "check_settings"]


def check_settings(kind: str, given: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    """Refuse an unknown setting, naming the closest valid one."""
    for key in given:
        if key not in defaults:
            raise ConfigError(
                f"unknown {kind} setting {key!r}.{did_you_mean(key, defaults)} "
                f"Valid settings: {', '.join(sorted(defaults))}"
            )


class _Life(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"
    CRASHED = "crashed"


class ClientBase:
    """A client of the simulated cluster: a name on the network and a set of tasks."""

    kind = "client"

    def __init__(self, cluster: Cluster, client_id: str) -> None:
        self.client_id = client_id
        self._cluster = cluster
        self._network: Network = cluster.network
        self._life = _Life.NEW
        self._background: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._calls: set[trio.CancelScope] = set()
        self._crash_reason = ""
        self._crash_listeners: list[Callable[[ClientBase], None]] = []
        self.process = client_id
        """The process this client runs in (set before ``start``): a pause planned for the
        process freezes the client."""

    # --- life ---------------------------------------------------------------------------

    @property
    def crashed(self) -> bool:
        return self._life is _Life.CRASHED

    @property
    def closed(self) -> bool:
        return self._life in (_Life.CLOSED, _Life.CRASHED)

    @property
    def running(self) -> bool:
        """Started, and neither closed nor crashed."""
        return self._life is _Life.RUNNING

    async def _connect(self) -> None:
        if self._life is not _Life.NEW:
            raise IllegalStateError(f"{self.client_id} was already started; create a new client")
        self._network.register(self.client_id, self._crash_from_plan, process=self.process)
        self._life = _Life.RUNNING
        await self._cluster.nursery.start(self._run_background)
        self._network.note("start", self.client_id, self.kind)

    async def _run_background(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as scope:
            self._background = scope
            if self.closed:  # a fault crashed the client while it was starting
                scope.cancel()
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                self._start_background(nursery)

    def _start_background(self, nursery: trio.Nursery) -> None:
        """Start the client's own background tasks (the sender, the heartbeat ...)."""

    def _disconnect(self, *, crashed: bool) -> None:
        self._life = _Life.CRASHED if crashed else _Life.CLOSED
        if self._background is not None:
            self._background.cancel()
        self._network.unregister(self.client_id, crashed=crashed)

    def crash(self, reason: str = "crash() was called") -> None:
        """Stop at once and forget everything: no flush, no commit, no goodbye to the group.

        The broker finds out only by timeouts. Calls in progress raise ``ClientCrashed``.
        """
        self._crash(reason)

    def _crash_from_plan(self, reason: str) -> None:
        self._crash(reason)

    def _crash(self, reason: str) -> None:
        if self.closed:
            return
        self._crash_reason = reason
        self._network.note("crash", self.client_id, reason)
        self._disconnect(crashed=True)
        for scope in self._calls:
            scope.cancel()
        self._on_crash()
        for listener in self._crash_listeners:
            listener(self)

    def when_crashed(self, listener: Callable[[ClientBase], None]) -> None:
        """Call ``listener(client)`` when this client crashes (a fault or ``crash()``).

        A client crash stops the client, not the code using it. A program that stands for a
        whole process (a pipeline worker) uses this to stop its own work too, as the death of
        a process would."""
        self._crash_listeners.append(listener)

    def _on_crash(self) -> None:
        """Drop in-memory state that waiters might still look at."""

    # --- calls --------------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._life is _Life.RUNNING:
            return
        if self._life is _Life.CRASHED:
            raise ClientCrashed(
                f"{self.client_id} crashed ({self._crash_reason}); create a new client to take over"
            )
        if self._life is _Life.NEW:
            raise IllegalStateError(
                f"{self.client_id} is not started: use it as `async with cluster.{self.kind}"
                "(...) as client:`, or await client.start() first"
            )
        raise IllegalStateError(f"{self.client_id} is closed; create a new client")

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Run a public call; a crash meanwhile turns into ``ClientCrashed``."""
        self._check_running()
        scope = trio.CancelScope()
        self._calls.add(scope)
        try:
            with scope:
                yield
        finally:
            self._calls.discard(scope)
        if scope.cancelled_caught:
            self._check_running()

    async def _request_once(self, request: Request, *, timeout: float | None) -> Response:
        response = await self._network.request(self.client_id, request, timeout=timeout)
        assert response is not None
        return response

    async def _request(
        self,
        request: Request | Callable[[], Request],
        *,
        timeout: float,
        deadline: float,
        backoff: float,
        retry_if: Callable[[Any], bool] | None = None,
        backoff_after: Callable[[Any], float | None] | None = None,
        limit: str = "",
    ) -> Response:
        """Send until an answer comes that ``retry_if`` (a function of the answer) does not
        reject, backing off between tries; ``KafkaTimeoutError`` once ``deadline`` passes
        (``limit`` names the setting that set it). ``backoff_after`` (a function of a
        rejected answer) may choose a backoff of its own for that answer; None keeps
        ``backoff``. Given a function instead of a request, it builds the request afresh
        for each try (so that it carries the current epoch)."""
        while True:
            attempt = request() if callable(request) else request
            pause = backoff
            try:
                response = await self._request_once(attempt, timeout=timeout)
            except (RequestTimedOut, ConnectionBroken) as error:
                reason = str(error)
            else:
                if retry_if is None or not retry_if(response):
                    return response
                reason = f"{attempt.api_name} answered {response!r}"
                chosen = backoff_after(response) if backoff_after is not None else None
                pause = backoff if chosen is None else chosen
            if self._network.now() + pause > deadline:
                within = f" within {limit}" if limit else ""
                raise KafkaTimeoutError(
                    f"{self.client_id}: {attempt.api_name} did not succeed{within} ({reason})"
                )
            await trio.sleep(pause)
