"""The simulated network between clients and the broker, and the broker's side of it.

Rules of this module:

1. Everything is delivered in the order of a queue keyed by (time, source, target,
   sequence). trio runs ready tasks in an order of its own choosing, so no other order may
   decide what happens: the same seed and fault plan give the same trace. A pump task
   delivers what comes due as time passes; ``send`` delivers what is due at once (its own
   request, if no fault holds it back, and the answer), so a round trip with no fault
   costs the sender no pass of trio's scheduler.
2. A connection is FIFO, as TCP is: a message never overtakes an earlier one on the same
   connection, so a delayed request holds back the ones behind it, and a lost one stalls
   its direction of the connection: nothing behind it gets through until the client gives
   up (a request timeout) and reconnects.
3. The broker is reached only through ``Broker.handle(request, now=current time)``, and its
   background work through ``tick``; answers it holds (JoinGroup, SyncGroup) are sent when
   ``take_delayed_responses`` has them.
4. Faults come from the plan, decided when a request is sent (its ``nth`` is known then) and
   written to the trace when applied. Clients learn of failures only as real ones do: a
   request times out, or the connection breaks. A broker crash loses every request still on
   the way to it, and every answer still on the way back.
5. A connection belongs to one client. A request timeout closes it (as Kafka's client does),
   failing everything else in flight on it; an answer that arrives on a closed connection is
   dropped. The next request opens a new connection.
6. Client faults go to the client's endpoint: a crash stops it at once (an ``after=`` crash
   takes the place of the answer it waited for, so the client never sees it); a pause freezes
   it: its requests, the answers to it and its request timeouts wait until the pause ends. A
   pause of a process (``register(process=)``) freezes every client in it.
7. Time: trio's clock is absolute; simulated time is seconds since the network started,
   rounded to the nanosecond, so that the broker, the trace and the clients agree on one value
   for each instant. A run is fixed by its seed and plan when its clock starts where the last
   one did (``minikafka.run`` and pytest-trio's clock start at 0): floats added to another
   starting point can round differently, and trio wakes tasks in the order of those floats.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from typing import Any

import attrs
import trio

from minikafka.core import Broker
from minikafka.core.messages import ProduceRequest, Request, Response, error_codes
from minikafka.sim.faults import MARKERS, Fault, FaultPlan

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
TIME_RESOLUTION_S = 1e-9
"""Simulated time is rounded to this (a nanosecond)."""
TICK_INTERVAL_S = 0.01
"""How long the broker's background work waits between two marker writes: 10 ms, about what
a marker write takes in Kafka (a replicated append), so the next transaction's first
AddPartitionsToTxn, retried after 20 ms, rarely has to wait twice."""
MARKERS_PER_TICK = 1
"""Markers written per tick: one partition at a time, as separate appends to separate logs
are, so a broker crash can fall between the markers of one transaction."""


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
    """A client as the network knows it: its connection, its pauses, and how to crash it."""

    name: str
    on_crash: Callable[[str], None]
    """Called with the reason when a fault crashes the client."""
    connection: int
    """The id of the client's current connection; answers on an older one are dropped."""
    crashed: bool = False
    process: str = ""
    """The process the client runs in (its own name unless ``register`` says otherwise): a
    pause of the process freezes every client in it."""
    paused_until: float = -math.inf
    """trio time at which the client's current pause ends."""
    pauses: list[tuple[float, float]] = attrs.Factory(list)
    """Every pause, as (start, end) in trio time: request timeouts do not count them."""

    def paused_seconds(self, since: float) -> float:
        """How long the client was (or will be, in pauses begun) frozen after ``since``."""
        return sum(max(0.0, end - max(start, since)) for start, end in self.pauses)


@attrs.define(eq=False)
class _Pending:
    """A client's request waiting for its answer."""

    client: str
    api: str
    endpoint: Endpoint | None
    connection: int
    done: trio.Event = attrs.Factory(trio.Event)
    response: Response | None = None
    broken: bool = False


Ticket = _Pending
"""What ``Network.send`` returns: the handle to wait on for the answer."""


@attrs.define(eq=False)
class _Envelope:
    kind: str  # request, response, tick, crash, recover, client_crash, pause, expire
    source: str
    target: str
    payload: Any = None
    pending: _Pending | None = None
    drop_response: bool = False
    incarnation: int = 0
    """For a request: the broker's life it was sent to (a crash loses what is on the way)."""


class Network:
    """Clients and one broker, connected by a network that follows a fault plan.

    Create it inside a trio run (its simulated time 0 is the moment it is created), start
    ``run`` in a nursery, and send with ``request`` (or ``send`` then ``wait``). ``trace``
    records every send, delivery, fault, timeout, crash and recovery.
    """

    def __init__(self, broker: Broker, plan: FaultPlan | None = None) -> None:
        self.broker = broker
        self.plan = plan if plan is not None else FaultPlan()
        self.trace: list[TraceEvent] = []
        self._queue: list[tuple[float, str, str, int, _Envelope]] = []
        self._sequence = itertools.count()
        self._connections = itertools.count(1)
        self._last: dict[tuple[str, str, int], float] = {}
        self._calls: dict[str, int] = {}
        self._client_calls: dict[tuple[str, str], int] = {}
        self._pending: list[_Pending] = []
        # Requests whose answers the broker holds, by the request object's id.
        self._held: dict[int, tuple[_Pending, bool]] = {}
        self._wakeup = trio.Event()
        self._start = trio.current_time()
        """trio time of simulated time 0: the broker, the plan and the trace count from it."""
        self._endpoints: dict[str, Endpoint] = {}
        # When the last planned pause ends (trio time): before that, no client is frozen, and
        # the check that every send makes is one comparison.
        self._pauses_end = -math.inf
        self._crash_after: list[Fault] = [
            f for f in self.plan if f.kind == "client_crash" and f.after is not None
        ]
        self._broker_crash_after: list[Fault] = [
            f for f in self.plan if f.kind == "broker_crash" and f.after is not None
        ]
        self._markers = 0
        """How many transaction markers the broker has written."""
        self._answered: dict[str, int] = {}
        """How many calls of each API have had their answer read by their client."""
        self._incarnation = 0
        self._down_until = -math.inf
        self._stalled: set[tuple[str, str, int]] = set()
        """(source, target, connection) of streams that lost a message: as on a TCP
        connection, nothing behind a lost message gets through until the client reconnects."""
        self._tick_at: float | None = None
        """trio time of the next planned broker tick, if one is planned."""
        self._delivering = False
        """Whether a delivery is under way (its own sends must not start another)."""
        self._pump_wakes_at = -math.inf
        """trio time at which the waiting pump wakes by itself; -inf while it runs."""

    # --- endpoints ----------------------------------------------------------------------

    def register(
        self, name: str, on_crash: Callable[[str], None], *, process: str | None = None
    ) -> Endpoint:
        """Connect a client named ``name`` (its client_id); names are unique while alive.
        ``process`` names the process it runs in: a pause planned for that name freezes it."""
        old = self._endpoints.get(name)
        if old is not None and not old.crashed:
            raise ValueError(
                f"a client named {name!r} is already connected; give each client its own "
                "client_id, or close (or crash) the old one first"
            )
        endpoint = Endpoint(name, on_crash, next(self._connections), process=process or name)
        self._endpoints[name] = endpoint
        return endpoint

    def is_paused(self, client: str) -> bool:
        """Whether the client of that name (or, if none, the process of that name) is frozen
        by a pause right now."""
        now = trio.current_time()
        return any(endpoint.paused_until > now for endpoint in self._named(client))

    def _named(self, name: str) -> list[Endpoint]:
        """The live client of that name; if there is none, the live clients of the process of
        that name."""
        endpoint = self._endpoints.get(name)
        if endpoint is not None and not endpoint.crashed:
            return [endpoint]
        return [e for e in self._endpoints.values() if not e.crashed and e.process == name]

    def _frozen_by(self, name: str) -> list[Endpoint]:
        """The live clients a pause planned for ``name`` freezes: the client of that name
        and every client of the process of that name."""
        return [
            endpoint
            for endpoint in self._endpoints.values()
            if not endpoint.crashed and name in (endpoint.name, endpoint.process)
        ]

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
        if endpoint is not None and not endpoint.crashed:
            self._close_connection(endpoint, reason="request timed out")

    def _unstall(self, client: str, connection: int) -> None:
        self._stalled.discard((client, BROKER, connection))
        self._stalled.discard((BROKER, client, connection))

    def _close_connection(self, endpoint: Endpoint, *, reason: str) -> None:
        self._unstall(endpoint.name, endpoint.connection)
        endpoint.connection = next(self._connections)
        self.note("disconnect", endpoint.name, reason)
        for waiting in self._pending:
            if waiting.endpoint is endpoint and not waiting.done.is_set():
                waiting.broken = True
                waiting.done.set()

    def pausing(self) -> bool:
        """Whether a planned pause is in force now, for any client (a cheap first check)."""
        end = self._pauses_end
        return end > -math.inf and end > trio.current_time()

    async def wait_if_paused(self, client: str) -> None:
        """Return once the client of that name (or, if none, the process) is not paused."""
        if not self.pausing():
            return  # no pause in force anywhere
        while frozen := [
            e for e in self._frozen_by(client) if e.paused_until > trio.current_time()
        ]:
            await self._sleep_through_pause(frozen[0])

    async def _sleep_through_pause(self, endpoint: Endpoint) -> None:
        paused = False
        while endpoint.paused_until > trio.current_time():
            paused = True
            await trio.sleep_until(endpoint.paused_until)
        if paused:
            # What arrived during the pause is delivered at its end; a hair later, the client
            # goes on, so it reads those answers before its timers act (as a process that
            # wakes from a pause finds its socket buffers full).
            await trio.sleep_until(trio.current_time() + TIME_RESOLUTION_S)

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
        connection = endpoint.connection if endpoint is not None else 0
        pending = _Pending(client, api, endpoint, connection)
        self._pending.append(pending)
        self._note(now, "send", client, BROKER, api)
        copies = 1
        delay = 0.0
        drop_response = False
        if (client, BROKER, connection) in self._stalled:
            copies = 0
            self._note(now, "lost", client, BROKER, api, "the connection is stalled")
        for fault in faults:
            self._note(now, "fault", client, BROKER, api, repr(fault))
            if fault.kind == "drop_request":
                copies = 0
                if not (isinstance(request, ProduceRequest) and request.acks == 0):
                    # (With acks=0 nothing waits for an answer, so nothing would notice the
                    # stall and reconnect: the lost request is simply gone.)
                    self._stalled.add((client, BROKER, connection))
            elif fault.kind == "duplicate_request":
                copies = 2 if copies else 0
            elif fault.kind == "delay":
                delay += fault.seconds or 0.0
            elif fault.kind == "drop_response":
                drop_response = True
        for _ in range(copies):
            envelope = _Envelope(
                "request", client, BROKER, request, pending, drop_response, self._incarnation
            )
            self._enqueue(trio.current_time() + delay, envelope, connection, wake=False)
        # The broker takes what is due now at once, this request included, and its answer
        # is back before the sender goes on: a round trip costs no pass of trio's scheduler.
        self._deliver_due()
        if isinstance(request, ProduceRequest) and request.acks == 0:
            self._pending.remove(pending)
            return None  # nobody waits for an answer that never comes
        return pending

    async def wait(self, ticket: Ticket, *, timeout: float | None) -> Response:
        """Wait for the answer to a request ``send`` put on the wire (see ``request``).

        Time the client spends paused does not count against ``timeout``, and whatever
        happens during a pause reaches the client when the pause ends.
        """
        pending = ticket
        begin = trio.current_time()
        budget = timeout if timeout is not None else math.inf
        try:
            while not pending.done.is_set():
                extra = pending.endpoint.paused_seconds(begin) if pending.endpoint else 0.0
                deadline = begin + budget + extra
                if deadline <= trio.current_time():
                    break
                with trio.move_on_at(deadline):
                    await pending.done.wait()
            if pending.endpoint is not None:
                await self._sleep_through_pause(pending.endpoint)
        except trio.Cancelled:
            # The caller gave up waiting (a poll's own timeout), but the request stays in
            # flight, as in Kafka's NetworkClient: if no answer comes within its timeout,
            # the connection is closed then, as for any request that timed out.
            if budget < math.inf and not pending.done.is_set():
                self._enqueue(begin + budget, _Envelope("expire", pending.client, BROKER, pending))
            raise
        finally:
            self._pending.remove(pending)
        if pending.broken:
            raise self._broken(pending)
        if pending.response is None:
            self._note(self.now(), "timeout", pending.client, BROKER, pending.api)
            if pending.endpoint is not None and pending.endpoint.connection == pending.connection:
                self.disconnect(pending.client)
            if pending.endpoint is None:  # a bare client: its next request reconnects
                self._unstall(pending.client, pending.connection)
            raise RequestTimedOut(
                f"{pending.client}: no answer to {pending.api} within {timeout} s"
            )
        return pending.response

    def answered(self, ticket: Ticket) -> Response | None:
        """The answer to a request that has it already (``send`` delivers at once what no
        fault holds back), taken without waiting; None while it has none: ``wait`` then.
        Raises ``ConnectionBroken`` if the connection broke under it."""
        pending = ticket
        if not pending.done.is_set():
            return None
        endpoint = pending.endpoint
        if endpoint is not None and endpoint.paused_until > trio.current_time():
            return None  # a paused client reads it when the pause ends (see ``wait``)
        self._pending.remove(pending)
        if pending.broken:
            raise self._broken(pending)
        assert pending.response is not None
        return pending.response

    @staticmethod
    def _broken(pending: _Pending) -> ConnectionBroken:
        return ConnectionBroken(
            f"{pending.client}: the connection to the broker broke during {pending.api}"
        )

    # --- the pump -----------------------------------------------------------------------

    def now(self) -> float:
        """Simulated seconds since the network started, rounded to the nanosecond."""
        return round(trio.current_time() - self._start, 9)

    def _trio_time(self, time: float) -> float:
        return self._start + time

    def at(self, time: float) -> float:
        """The trio time to sleep until for simulated time ``time``: a nanosecond after it,
        so that ``now()`` reads at least ``time`` on waking. Without that hair, a rounding
        error could wake a task just before its deadline, again and again, at one instant."""
        if time <= self.now():
            return trio.current_time()  # due already: no wait at all
        return self._start + time + TIME_RESOLUTION_S

    def _enqueue(
        self, when: float, envelope: _Envelope, connection: int | None = None, *, wake: bool = True
    ) -> None:
        """Deliver ``envelope`` at trio time ``when``; on a connection (``connection`` given),
        not before what was sent on it earlier. ``wake=False``: the caller delivers what is
        due itself, and wakes the pump after that if it must."""
        if connection is not None:
            link = (envelope.source, envelope.target, connection)
            when = max(when, self._last.get(link, -math.inf))  # FIFO per connection
            self._last[link] = when
        order = (when, envelope.source, envelope.target, next(self._sequence), envelope)
        heapq.heappush(self._queue, order)
        if wake and not self._delivering:
            self._wake_pump()

    def _wake_pump(self) -> None:
        """Wake the pump if the queue now holds something due before the pump would wake by
        itself (a wake-up it does not need costs a pass of trio's scheduler)."""
        if self._queue and self._queue[0][0] < self._pump_wakes_at:
            self._wakeup.set()

    def _note(
        self, time: float, kind: str, source: str, target: str, api: str | None, detail: str = ""
    ) -> None:
        self.trace.append(TraceEvent(round(time, 6), kind, source, target, api, detail))

    async def run(self) -> None:
        """The pump: deliver messages in queue order, forever (cancel it to stop)."""
        for fault in self.plan.timed_faults():
            at = self._trio_time(fault.at or 0.0)
            if fault.kind == "broker_crash":
                self._enqueue(at, _Envelope("crash", "plan", BROKER, fault))
            elif fault.kind in ("client_crash", "pause") and fault.client is not None:
                self._enqueue(at, _Envelope(fault.kind, "plan", fault.client, fault))
        self._schedule_tick()
        while True:
            if not self._queue:
                self._wakeup = trio.Event()
                self._pump_wakes_at = math.inf
                await self._wakeup.wait()
                self._pump_wakes_at = -math.inf
                continue
            when = self._queue[0][0]
            if when > trio.current_time():
                self._wakeup = trio.Event()
                self._pump_wakes_at = when
                with trio.move_on_at(when):
                    await self._wakeup.wait()
                self._pump_wakes_at = -math.inf
                continue
            # Everything due now goes in one pass (a request, then the answer it made, due at
            # once) before the pump waits again: a yield between them cost a pass of trio's
            # scheduler per message. The tasks the pass woke run before time moves, since
            # the clock jumps only when every task waits.
            self._deliver_due()

    def _deliver_due(self) -> None:
        """Deliver every message due now, in queue order (not from inside a delivery)."""
        if self._delivering:
            return
        self._delivering = True
        try:
            now = trio.current_time()
            while self._queue and self._queue[0][0] <= now:
                _, _, _, _, envelope = heapq.heappop(self._queue)
                self._deliver(envelope)
        finally:
            self._delivering = False
        self._wake_pump()

    def _deliver(self, envelope: _Envelope) -> None:
        now = self.now()
        if envelope.kind == "tick":
            if envelope.payload != self._tick_at:
                return  # replaced by an earlier tick
            self._tick_at = None
            if self.broker.running:
                for marker in self.broker.tick(now, marker_limit=MARKERS_PER_TICK):
                    tp = marker.partition
                    self._note(
                        now,
                        "marker",
                        BROKER,
                        f"{tp.topic}-{tp.partition}",
                        None,
                        f"{marker.result.name} of {marker.transactional_id}",
                    )
                    self._markers += 1
                    for fault in self._broker_crash_after:
                        if fault.after == MARKERS and fault.nth == self._markers:
                            self._planned_crash(fault, now)
                if self.broker.running:
                    self._send_held(now)
            self._schedule_tick()
        elif envelope.kind == "crash":
            fault = envelope.payload
            self._planned_crash(fault, now)
        elif envelope.kind == "recover":
            if trio.current_time() >= self._down_until:
                self.recover_broker("plan")
        elif envelope.kind == "request":
            self._deliver_request(envelope, now)
        elif envelope.kind in ("client_crash", "pause"):
            self._client_fault(envelope.target, envelope.payload, now)
        elif envelope.kind == "expire":
            self._expire(envelope.payload, now)
        else:
            self._deliver_response(envelope, now)

    def _planned_crash(self, fault: Fault, now: float) -> None:
        until = trio.current_time() + (fault.down_for or 0.0)
        if not self.broker.running:
            # Already down: the outage lasts until the later of the two recoveries.
            self._note(now, "fault", "plan", BROKER, None, f"{fault!r}: already down")
        else:
            self.crash_broker("plan", repr(fault))
        if until > self._down_until:
            self._down_until = until
            self._enqueue(until, _Envelope("recover", "plan", BROKER, fault))

    def crash_broker(self, source: str, detail: str = "") -> None:
        """The broker crashes now: held answers, messages on the way and connections are lost."""
        if not self.broker.running:
            return
        self.broker.crash()
        self._incarnation += 1
        self._held = {}
        self._note(self.now(), "crash", source, BROKER, None, detail)
        for endpoint in self._endpoints.values():
            if not endpoint.crashed:
                endpoint.connection = next(self._connections)
        for waiting in list(self._pending):
            if not waiting.done.is_set():
                waiting.broken = True
                waiting.done.set()

    def recover_broker(self, source: str) -> None:
        """The broker starts again and rebuilds its state from its logs."""
        if not self.broker.running:
            self.broker.recover()
            self._note(self.now(), "recover", source, BROKER, None)
            self._schedule_tick()

    def _schedule_tick(self) -> None:
        """Make sure the broker's background work runs when it is next due.

        The broker says when that is (``next_tick``): at once while markers wait (paced by
        ``TICK_INTERVAL_S``, as a marker writer would be), else at the first flush or
        timeout. Ticking only then, not every interval, keeps an idle simulation cheap."""
        now = self.now()
        due = self.broker.next_tick(now)
        if due is None:
            return
        if due <= now:
            due = now + TICK_INTERVAL_S
        when = self._trio_time(due)
        if when <= trio.current_time():
            # Due by the clock but not by the broker, whose ``now`` is rounded to the
            # nanosecond: a nanosecond later it is due by both. Planning it again for this
            # instant would repeat forever, and the pump would never yield.
            when = self.at(due)
        if self._tick_at is not None and self._tick_at <= when:
            return  # an earlier tick is already planned; it plans the next one
        self._tick_at = when
        self._enqueue(when, _Envelope("tick", "clock", BROKER, when))

    def _current(self, pending: _Pending) -> bool:
        """Whether ``pending``'s connection is still open."""
        endpoint = pending.endpoint
        return endpoint is None or (
            not endpoint.crashed
            and endpoint.connection == pending.connection
            and self._endpoints.get(endpoint.name) is endpoint
        )

    def _deliver_response(self, envelope: _Envelope, now: float) -> None:
        answered = envelope.pending
        assert answered is not None
        if not self._current(answered):
            self._note(now, "lost", BROKER, envelope.target, answered.api, "connection closed")
            return
        endpoint = answered.endpoint
        if endpoint is not None and endpoint.paused_until > trio.current_time():
            # The client reads it when it wakes up.
            self._enqueue(endpoint.paused_until, envelope, answered.connection)
            return
        failed = sorted({code.name for code in error_codes(envelope.payload) if code})
        self._note(now, "deliver", BROKER, envelope.target, answered.api, ", ".join(failed))
        if answered.done.is_set():
            return  # a duplicate's second answer: nobody reads it
        answered.response = envelope.payload
        answered.done.set()
        count = self._answered[answered.api] = self._answered.get(answered.api, 0) + 1
        for fault in self._broker_crash_after:
            if fault.after == answered.api and fault.nth == count:
                # The client has its answer; the broker's background work after it is lost.
                self._planned_crash(fault, now)

    def _expire(self, pending: _Pending, now: float) -> None:
        """An abandoned request reached its timeout: if it never got its answer and its
        connection is still open, close the connection (Kafka's request timeout)."""
        endpoint = pending.endpoint
        if pending.done.is_set() or endpoint is None or endpoint.crashed:
            return
        if endpoint.connection != pending.connection:
            return
        if endpoint.paused_until > trio.current_time():
            self._enqueue(
                endpoint.paused_until, _Envelope("expire", pending.client, BROKER, pending)
            )
            return
        self._note(now, "timeout", pending.client, BROKER, pending.api, "abandoned by its caller")
        self.disconnect(pending.client)

    def _client_fault(self, client: str, fault: Fault, now: float) -> None:
        endpoint = self._endpoints.get(client)
        frozen = self._frozen_by(client) if fault.kind == "pause" else []
        if not frozen and (endpoint is None or endpoint.crashed):
            self._note(now, "missed", "plan", client, None, f"{fault!r}: no such client now")
            return
        self._note(now, "fault", "plan", client, None, repr(fault))
        if fault.kind == "pause":
            begin = trio.current_time()
            end = begin + (fault.seconds or 0.0)
            for each in frozen:
                each.pauses.append((begin, end))
                each.paused_until = max(each.paused_until, end)
            self._pauses_end = max(self._pauses_end, end)
        elif endpoint is not None:
            endpoint.on_crash(repr(fault))

    def _deliver_request(self, envelope: _Envelope, now: float) -> None:
        pending = envelope.pending
        assert pending is not None
        if not self.broker.running or envelope.incarnation != self._incarnation:
            self._note(now, "lost", envelope.source, BROKER, pending.api, "the broker crashed")
            return
        self._note(now, "handle", envelope.source, BROKER, pending.api)
        response = self.broker.handle(envelope.payload, now=now)
        if response is None:
            self._held[id(envelope.payload)] = (pending, envelope.drop_response)
        else:
            self._answer(pending, envelope.source, response, envelope.drop_response, now)
        self._send_held(now)
        self._schedule_tick()

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
            if (
                fault.client == client
                and fault.after == pending.api
                and (fault.at is None or now >= fault.at)
                and self._current(pending)
            ):
                # The client dies before it reads this answer; the broker did the work.
                self._crash_after.remove(fault)
                self._note(now, "answered", BROKER, client, pending.api, "not read: crash")
                self._client_fault(client, fault, now)
                return
        if drop:
            self._note(now, "lost", BROKER, client, pending.api, "the answer was dropped")
            self._stalled.add((BROKER, client, pending.connection))
            return
        if (BROKER, client, pending.connection) in self._stalled:
            self._note(now, "lost", BROKER, client, pending.api, "the connection is stalled")
            return
        self._enqueue(
            trio.current_time(),
            _Envelope("response", BROKER, client, response, pending),
            pending.connection,
        )
