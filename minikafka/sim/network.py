"""The simulated network between clients and the broker, and the broker's side of it.

Rules of this module:

1. One pump task delivers everything, in the order of a queue keyed by (time, source, target,
   sequence). trio runs ready tasks in an order of its own choosing, so no other order may
   decide what happens: the same seed and fault plan give the same trace.
2. A connection is FIFO, as TCP is: a message never overtakes an earlier one between the same
   two endpoints, so a delayed request holds back the ones behind it.
3. The broker is reached only through ``Broker.handle(request, now=current time)``, and its
   background work through ``tick``; answers it holds (JoinGroup, SyncGroup) are sent when
   ``take_delayed_responses`` has them.
4. Faults come from the plan, decided when a request is sent (its ``nth`` is known then) and
   written to the trace when applied. Clients learn of failures only as real ones do: a
   request times out, or the connection breaks.
5. A connection belongs to one client. A request timeout closes it (as Kafka's client does),
   failing everything else in flight on it; an answer that arrives on a closed connection is
   dropped. The next request opens a new connection.
6. Client faults go to the client's endpoint: a crash stops it at once (an ``after=`` crash
   takes the place of the answer it waited for, so the client never sees it); a pause holds
   its requests and the answers to it until the pause ends.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

import attrs
import trio

from minikafka.core import Broker
from minikafka.core.messages import ProduceRequest, Request, Response
from minikafka.sim.faults import Fault, FaultPlan

__all__ = [
    "BROKER",
    "ConnectionBroken",
    "Endpoint",
    "Network",
    "RequestTimedOut",
    "Ticket",
    "TraceEvent",
]

BROKER = "broker"
"""The broker's endpoint name."""
TICK_INTERVAL_S = 0.1
"""How often the broker's background work runs (flushes, timeouts, markers, group timers)."""


class ConnectionBroken(ConnectionError):
    """The connection to the broker broke (the broker crashed or is down)."""


class RequestTimedOut(TimeoutError):
    """No answer came within the request timeout: the request or its answer may be lost."""


@attrs.frozen(slots=True)
class TraceEvent:
    """One thing that happened, at simulated time ``time``."""

    time: float
    kind: str
    source: str
    target: str
    api: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        route = f"{self.source} -> {self.target}" if self.target else self.source
        parts = [f"{self.time:10.3f}", f"{self.kind:<9}", route]
        if self.api:
            parts.append(self.api)
        if self.detail:
            parts.append(self.detail)
        return "  ".join(parts)


@attrs.define(eq=False)
class Endpoint:
    """A client as the network knows it: what to do when the plan crashes or pauses it."""

    name: str
    on_crash: Callable[[str], None]
    """Called with the reason when a fault crashes the client."""
    crashed: bool = False
    connection: int = 0
    """Grows each time the client's connection closes; older answers are dropped."""
    paused_until: float = 0.0
    """Simulated time at which the client's current pause ends."""


@attrs.define(eq=False)
class _Pending:
    """A client's request waiting for its answer."""

    client: str
    api: str
    connection: int = 0
    done: trio.Event = attrs.Factory(trio.Event)
    response: Response | None = None
    broken: bool = False


Ticket = _Pending
"""What ``Network.send`` returns: the handle to wait on for the answer."""


@attrs.define(eq=False)
class _Envelope:
    kind: str  # "request", "response", "tick", "crash", "recover"
    source: str
    target: str
    payload: Any = None
    pending: _Pending | None = None
    drop_response: bool = False


class Network:
    """Clients and one broker, connected by a network that follows a fault plan.

    Create it inside a trio run (its simulated time 0 is the moment it is created), start
    ``run`` in a nursery, and send with ``request``. ``trace`` records every send, delivery,
    fault, timeout, crash and recovery.
    """

    def __init__(self, broker: Broker, plan: FaultPlan | None = None) -> None:
        self.broker = broker
        self.plan = plan if plan is not None else FaultPlan()
        self.trace: list[TraceEvent] = []
        self._queue: list[tuple[float, str, str, int, _Envelope]] = []
        self._sequence = itertools.count()
        self._last: dict[tuple[str, str], float] = {}
        self._calls: dict[str, int] = {}
        self._client_calls: dict[tuple[str, str], int] = {}
        self._pending: list[_Pending] = []
        # Requests whose answers the broker holds, by the request object's id.
        self._held: dict[int, tuple[_Pending, bool]] = {}
        self._wakeup = trio.Event()
        self._start = trio.current_time()
        """Simulated time 0 of this network: the broker, the plan and the trace count from it."""
        self._endpoints: dict[str, Endpoint] = {}
        self._crash_after: list[Fault] = [
            f for f in self.plan if f.kind == "client_crash" and f.after is not None
        ]

    # --- endpoints ----------------------------------------------------------------------

    def register(self, name: str, on_crash: Callable[[str], None]) -> Endpoint:
        """Connect a client named ``name`` (its client_id); names are unique while alive."""
        old = self._endpoints.get(name)
        if old is not None and not old.crashed:
            raise ValueError(
                f"a client named {name!r} is already connected; give each client its own "
                "client_id, or close (or crash) the old one first"
            )
        endpoint = Endpoint(name, on_crash)
        self._endpoints[name] = endpoint
        return endpoint

    def unregister(self, name: str, *, crashed: bool) -> None:
        """The client closed (or crashed): its connection closes, its requests fail."""
        endpoint = self._endpoints.get(name)
        if endpoint is None or endpoint.crashed:
            return
        endpoint.crashed = True
        self._close_connection(endpoint, reason="crashed" if crashed else "closed")

    def disconnect(self, client: str) -> None:
        """Close ``client``'s connection (after a request timeout): in-flight requests fail."""
        endpoint = self._endpoints.get(client)
        if endpoint is not None:
            self._close_connection(endpoint, reason="request timed out")

    def _close_connection(self, endpoint: Endpoint, *, reason: str) -> None:
        endpoint.connection += 1
        self.note("disconnect", endpoint.name, reason)
        for waiting in self._pending:
            if waiting.client == endpoint.name and not waiting.done.is_set():
                waiting.broken = True
                waiting.done.set()

    async def wait_if_paused(self, client: str) -> None:
        """Return once ``client`` is not paused (at once if it is not)."""
        endpoint = self._endpoints.get(client)
        while endpoint is not None and endpoint.paused_until > self.now():
            await trio.sleep_until(self._start + endpoint.paused_until)

    def note(self, kind: str, source: str, detail: str = "", *, api: str | None = None) -> None:
        """Write an event of a client (a crash, a join, a transaction) into the trace."""
        self._note(self.now(), kind, source, "", api, detail)

    # --- the client's side --------------------------------------------------------------

    async def request(
        self, client: str, request: Request, *, timeout: float | None
    ) -> Response | None:
        """Send ``request`` from ``client`` and wait for the answer (None for acks=0).

        Raises ``ConnectionBroken`` when the broker is down, crashes meanwhile, or the client's
        connection closes, and ``RequestTimedOut`` (after closing the connection) when no
        answer comes within ``timeout`` seconds. With ``timeout=None`` the caller keeps its own
        clock and calls ``disconnect`` itself, as the producer's sender does.
        """
        await self.wait_if_paused(client)
        ticket = self.send(client, request)
        if ticket is None:
            return None
        return await self.wait(ticket, timeout=timeout)

    def send(self, client: str, request: Request) -> Ticket | None:
        """Put ``request`` on ``client``'s connection now, behind what it sent before.

        Returns the ticket to ``wait`` on, or None for a Produce with acks=0 (no answer
        comes). Raises ``ConnectionBroken`` if the broker is down. A sender with several
        requests in flight calls this in order, so the connection keeps them in order.
        """
        api = request.api_name
        now = self.now()
        endpoint = self._endpoints.get(client)
        if endpoint is not None and endpoint.crashed:
            raise ConnectionBroken(f"{client} is closed or crashed")
        if not self.broker.running:
            self._note(now, "refused", client, BROKER, api, "the broker is down")
            raise ConnectionBroken(f"{client}: cannot reach the broker (it is down)")
        self._calls[api] = self._calls.get(api, 0) + 1
        self._client_calls[(client, api)] = self._client_calls.get((client, api), 0) + 1
        faults = [
            fault
            for fault in self.plan.network_faults()
            if fault.hits(api, client, self._calls[api], self._client_calls[(client, api)])
        ]
        pending = _Pending(client, api, endpoint.connection if endpoint is not None else 0)
        self._pending.append(pending)
        self._note(now, "send", client, BROKER, api)
        copies = 1
        delay = 0.0
        drop_response = False
        for fault in faults:
            self._note(now, "fault", client, BROKER, api, repr(fault))
            if fault.kind == "drop_request":
                copies = 0
            elif fault.kind == "duplicate_request":
                copies = 2 if copies else 0
            elif fault.kind == "delay":
                delay += fault.seconds or 0.0
            elif fault.kind == "drop_response":
                drop_response = True
        for _ in range(copies):
            envelope = _Envelope("request", client, BROKER, request, pending, drop_response)
            self._enqueue(now + delay, envelope)
        if isinstance(request, ProduceRequest) and request.acks == 0:
            self._pending.remove(pending)
            return None  # nobody waits for an answer that never comes
        return pending

    async def wait(self, ticket: Ticket, *, timeout: float | None) -> Response:
        """Wait for the answer to a request ``send`` put on the wire (see ``request``)."""
        pending = ticket
        try:
            with trio.move_on_after(timeout if timeout is not None else float("inf")):
                await pending.done.wait()
        finally:
            self._pending.remove(pending)
        if pending.broken:
            raise ConnectionBroken(
                f"{pending.client}: the connection to the broker broke during {pending.api}"
            )
        if pending.response is None:
            self._note(self.now(), "timeout", pending.client, BROKER, pending.api)
            self.disconnect(pending.client)
            raise RequestTimedOut(
                f"{pending.client}: no answer to {pending.api} within {timeout} s"
            )
        return pending.response

    # --- the pump -----------------------------------------------------------------------

    def now(self) -> float:
        """Simulated seconds since the network started."""
        return trio.current_time() - self._start

    def at(self, time: float) -> float:
        """trio's clock reading for simulated time ``time`` (to sleep until it)."""
        return self._start + time

    def _enqueue(self, at: float, envelope: _Envelope) -> None:
        """Deliver ``envelope`` at simulated time ``at`` (or later, to keep its link FIFO)."""
        link = (envelope.source, envelope.target)
        when = max(self._start + at, self._last.get(link, 0.0))  # FIFO per connection
        self._last[link] = when
        order = (when, envelope.source, envelope.target, next(self._sequence), envelope)
        heapq.heappush(self._queue, order)
        self._wakeup.set()

    def _note(
        self, time: float, kind: str, source: str, target: str, api: str | None, detail: str = ""
    ) -> None:
        self.trace.append(TraceEvent(round(time, 6), kind, source, target, api, detail))

    async def run(self) -> None:
        """The pump: deliver messages in queue order, forever (cancel it to stop)."""
        for fault in self.plan.timed_faults():
            if fault.kind == "broker_crash":
                at = fault.at or 0.0
                self._enqueue(at, _Envelope("crash", "plan", BROKER, fault))
                down_for = fault.down_for or 0.0
                self._enqueue(at + down_for, _Envelope("recover", "plan", BROKER, fault))
            elif fault.kind in ("client_crash", "pause") and fault.client is not None:
                self._enqueue(fault.at or 0.0, _Envelope(fault.kind, "plan", fault.client, fault))
        self._enqueue(self.now(), _Envelope("tick", "clock", BROKER))
        while True:
            if not self._queue:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
                continue
            when = self._queue[0][0]  # absolute trio time, so no rounding can stall the pump
            if when > trio.current_time():
                self._wakeup = trio.Event()
                with trio.move_on_at(when):
                    await self._wakeup.wait()
                continue
            _, _, _, _, envelope = heapq.heappop(self._queue)
            self._deliver(envelope)
            await trio.lowlevel.checkpoint()

    def _deliver(self, envelope: _Envelope) -> None:
        now = self.now()
        if envelope.kind == "tick":
            if self.broker.running:
                self.broker.tick(now)
                self._send_held(now)
            self._enqueue(now + TICK_INTERVAL_S, envelope)
        elif envelope.kind == "crash":
            self.crash_broker("plan", repr(envelope.payload))
        elif envelope.kind == "recover":
            self.recover_broker("plan")
        elif envelope.kind == "request":
            self._deliver_request(envelope, now)
        elif envelope.kind in ("client_crash", "pause"):
            self._client_fault(envelope.target, envelope.payload, now)
        else:
            self._deliver_response(envelope, now)

    def crash_broker(self, source: str, detail: str = "") -> None:
        """The broker crashes now: held answers and every connection are lost."""
        if not self.broker.running:
            return
        self.broker.crash()
        self._held = {}
        self._note(self.now(), "crash", source, BROKER, None, detail)
        for endpoint in self._endpoints.values():
            endpoint.connection += 1
        for waiting in list(self._pending):
            waiting.broken = True
            waiting.done.set()

    def recover_broker(self, source: str) -> None:
        """The broker starts again and rebuilds its state from its logs."""
        if not self.broker.running:
            self.broker.recover()
            self._note(self.now(), "recover", source, BROKER, None)

    def _deliver_response(self, envelope: _Envelope, now: float) -> None:
        answered = envelope.pending
        assert answered is not None
        endpoint = self._endpoints.get(envelope.target)
        if endpoint is not None and (
            endpoint.crashed or endpoint.connection != answered.connection
        ):
            self._note(now, "lost", BROKER, envelope.target, answered.api, "connection closed")
            return
        if (
            endpoint is not None and endpoint.paused_until > now
        ):  # the client reads it when it wakes up
            self._enqueue(endpoint.paused_until, envelope)
            return
        self._note(now, "deliver", BROKER, envelope.target, answered.api)
        if not answered.done.is_set():
            answered.response = envelope.payload
            answered.done.set()

    def _client_fault(self, client: str, fault: Fault, now: float) -> None:
        endpoint = self._endpoints.get(client)
        if endpoint is None or endpoint.crashed:
            self._note(now, "missed", "plan", client, None, f"{fault!r}: no such client now")
            return
        self._note(now, "fault", "plan", client, None, repr(fault))
        if fault.kind == "pause":
            endpoint.paused_until = max(endpoint.paused_until, now + (fault.seconds or 0.0))
        else:
            self._crash_client(endpoint, repr(fault))

    def _crash_client(self, endpoint: Endpoint, reason: str) -> None:
        if endpoint.crashed:
            return
        endpoint.on_crash(reason)

    def _deliver_request(self, envelope: _Envelope, now: float) -> None:
        pending = envelope.pending
        assert pending is not None
        if not self.broker.running:
            self._note(now, "lost", envelope.source, BROKER, pending.api, "the broker is down")
            return
        self._note(now, "handle", envelope.source, BROKER, pending.api)
        response = self.broker.handle(envelope.payload, now=now)
        if response is None:
            self._held[id(envelope.payload)] = (pending, envelope.drop_response)
        else:
            self._answer(pending, envelope.source, response, envelope.drop_response, now)
        self._send_held(now)

    def _send_held(self, now: float) -> None:
        for request, response in self.broker.take_delayed_responses():
            held = self._held.pop(id(request), None)
            if held is not None:
                pending, drop = held
                self._answer(pending, pending.client, response, drop, now)

    def _answer(
        self, pending: _Pending, client: str, response: Response, drop: bool, now: float
    ) -> None:
        for fault in self._crash_after:
            if fault.client == client and fault.after == pending.api:
                # The client dies before it reads this answer; the broker did the work.
                self._crash_after.remove(fault)
                self._note(now, "answered", BROKER, client, pending.api, "not read: crash")
                self._enqueue(now, _Envelope("client_crash", "plan", client, fault))
                return
        if drop:
            self._note(now, "lost", BROKER, client, pending.api, "the answer was dropped")
            return
        self._enqueue(now, _Envelope("response", BROKER, client, response, pending))
