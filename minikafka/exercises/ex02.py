"""Exercise 2: an idempotent consumer with a dedup store. The checker draws delivery sequences
with repeats (hypothesis), and crashes the process before any one database statement, then
checks that the balance counts every transaction id exactly once and that ``apply_once`` says
True for a first delivery and False for a repeat."""

from __future__ import annotations

import importlib.util
import sqlite3
from types import ModuleType
from typing import Any

import attrs
from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from minikafka.exercises import Exercise, Verdict

EXERCISE = Exercise(
    2, "Make a consumer idempotent with a dedup store", "easy-medium", "02_dedup_store.py"
)

POOL = 3
"""Transaction ids are drawn from t0, t1, t2: few enough that repeats are common."""
MAX_EXAMPLES = 150


class SimulatedCrash(BaseException):
    """The consumer process dies here (a BaseException, so ``except Exception`` cannot catch
    it, as nothing catches a kill -9)."""


@attrs.define
class CrashingConnection:
    """A connection that counts the statements run through it and, at statement number
    ``crash_at`` (0-based), dies before running it, and on every statement after that."""

    db: sqlite3.Connection
    crash_at: int | None
    count: int = 0
    crashed: bool = False
    crashed_before: str = ""
    """The statement the process died before running."""

    def _tick(self, statement: object) -> None:
        if self.crashed:
            raise SimulatedCrash("the process is dead")
        if self.count == self.crash_at:
            self.crashed = True
            self.crashed_before = " ".join(str(statement).split())
            raise SimulatedCrash(f"crash before statement {self.count}")
        self.count += 1

    def execute(self, *args: Any) -> sqlite3.Cursor:
        self._tick(args[0] if args else "")
        return self.db.execute(*args)

    def executemany(self, *args: Any) -> sqlite3.Cursor:
        self._tick(args[0] if args else "")
        return self.db.executemany(*args)

    def executescript(self, *args: Any) -> sqlite3.Cursor:
        self._tick(args[0] if args else "")
        return self.db.executescript(*args)

    def commit(self) -> None:
        self._tick("commit()")
        self.db.commit()

    def cursor(self, *args: Any) -> CrashingCursor:
        return CrashingCursor(self, self.db.cursor(*args))

    def __enter__(self) -> CrashingConnection:
        self.db.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self.db.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


@attrs.define
class CrashingCursor:
    connection: CrashingConnection
    cursor: sqlite3.Cursor

    def execute(self, *args: Any) -> CrashingCursor:
        self.connection._tick(args[0] if args else "")
        self.cursor.execute(*args)
        return self

    def executemany(self, *args: Any) -> CrashingCursor:
        self.connection._tick(args[0] if args else "")
        self.cursor.executemany(*args)
        return self

    def __iter__(self) -> Any:
        return iter(self.cursor)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cursor, name)


@attrs.frozen
class Case:
    """A run: the deliveries in order, and the statement the process dies before (if any)."""

    deliveries: tuple[tuple[str, int], ...]
    crash_at: int | None = None

    def __str__(self) -> str:
        lines = [
            "deliveries, in order: "
            + ", ".join(f"{tid} (+{amount})" for tid, amount in self.deliveries)
        ]
        if self.crash_at is not None:
            lines.append(
                f"the process crashes just before its database statement number "
                f"{self.crash_at + 1} (counting every execute and commit in apply_once), "
                "restarts, and the interrupted delivery comes again"
            )
        return "\n".join(lines)

    def code(self) -> str:
        return f"deliveries={list(self.deliveries)!r}, crash_before_statement={self.crash_at!r}"


@st.composite
def cases(draw: st.DrawFn, crashes: bool) -> Case:
    amounts = draw(st.lists(st.integers(1, 50), min_size=POOL, max_size=POOL))
    picks = draw(st.lists(st.integers(0, POOL - 1), min_size=1, max_size=8))
    deliveries = tuple((f"t{pick}", amounts[pick]) for pick in picks)
    crash_at = draw(st.integers(0, 20)) if crashes else None
    return Case(deliveries, crash_at)


def _restarted(module: ModuleType) -> ModuleType:
    """The student's module loaded afresh: a restart forgets everything held in memory."""
    spec = module.__spec__
    if spec is None or spec.loader is None:
        return module
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    return fresh


def _balance(db: sqlite3.Connection) -> int:
    rows = db.execute("SELECT amount FROM balance").fetchall()
    if len(rows) != 1:
        raise AssertionError(f"the balance table must hold one row, and holds {len(rows)}")
    return int(rows[0][0])


def run_case(module: ModuleType, case: Case) -> str | None:
    """Run ``case`` through the student's code; what went wrong, in words, or None."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    try:
        return _run(module, case, db)
    except Exception as error:
        return f"On these deliveries your code raised {type(error).__name__}: {error}"
    finally:
        db.close()


def _run(module: ModuleType, case: Case, db: sqlite3.Connection) -> str | None:
    module.setup(db)
    if db.in_transaction:
        db.execute("COMMIT")
    wrapper = CrashingConnection(db, case.crash_at)
    applied: dict[str, int] = {}  # transaction id -> amount, for those counted in the balance
    history: list[str] = []

    def story() -> str:
        return "; ".join(history)

    queue = list(case.deliveries)
    while queue:
        tid, amount = queue.pop(0)
        expected_result = tid not in applied
        before = _balance(db)
        try:
            result = module.apply_once(wrapper, tid, amount)
        except SimulatedCrash:
            result = None
        if wrapper.crashed:  # even if the code caught the crash: a dead process does nothing
            # The process died. The database rolls back what it had not committed; the
            # consumer restarts and the same delivery comes again.
            if db.in_transaction:
                db.execute("ROLLBACK")
            module = _restarted(module)
            history.append(
                f"{tid} (+{amount}) crashed just before running {wrapper.crashed_before!r}, "
                f"leaving the balance at {_balance(db)} (then a restart)"
            )
            wrapper.crash_at, wrapper.crashed = None, False
            after = _balance(db)
            if after == before + amount and tid not in applied:
                applied[tid] = amount  # the whole transaction committed before the crash
            elif after != before:
                return (
                    f"Deliveries {story()}: the crash left the balance at {after}, neither "
                    f"{before} (nothing applied) nor {before + amount} (applied once)."
                )
            queue.insert(0, (tid, amount))
            continue
        if db.in_transaction:
            return (
                f"Deliveries {story() or '(none before)'}, then {tid} (+{amount}): apply_once "
                f"returned {result!r} with a database transaction still open. End every "
                "path with COMMIT or ROLLBACK."
            )
        if expected_result:
            applied[tid] = amount
        after = _balance(db)
        history.append(f"{tid} (+{amount}) returned {result!r}, balance {after}")
        expected_balance = sum(applied.values())
        fresh_hint = (
            " Every run starts from a fresh, empty database: remember the ids in the "
            "database, not in Python."
            if expected_result and result is False and len(history) == 1
            else ""
        )
        if after != expected_balance:
            seen = ", ".join(sorted(applied)) or "none"
            return (
                f"Deliveries {story()}. The balance is {after}, but it should be "
                f"{expected_balance}: the sum over the distinct transaction ids ({seen}), "
                "each counted once."
                + (
                    " A crash left the id recorded without its money, or the money without "
                    "its id: the id's insert and the balance update must commit together, "
                    "in one transaction."
                    if case.crash_at is not None
                    else fresh_hint
                )
            )
        if result is not expected_result:
            what = "a first delivery" if expected_result else "a repeat"
            return (
                f"Deliveries {story()}. apply_once returned {result!r} for {tid}, which was "
                f"{what} (after any crash, counting what the database kept): it should "
                f"return {expected_result!r}." + fresh_hint
            )
    return None


def _smallest_failure(module: ModuleType, crashes: bool) -> Case | None:
    chosen = settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    try:
        return find(
            cases(crashes), lambda case: run_case(module, case) is not None, settings=chosen
        )
    except NoSuchExample:
        return None


def check(module: ModuleType) -> Verdict:
    for crashes in (False, True):
        case = _smallest_failure(module, crashes)
        if case is None:
            continue
        problem = run_case(module, case) or "the check failed on this input"
        if crashes:
            problem = "With no crash your code is right, but a crash breaks it. " + problem
        return Verdict(False, problem, counterexample=f"{case}\n({case.code()})")
    return Verdict(
        True,
        f"Every delivery sequence counted each transaction id exactly once, through up to "
        f"{MAX_EXAMPLES} sequences with repeats and as many with a crash before any one "
        "database statement: your consumer is idempotent.",
    )


check.needs = ("setup", "apply_once")  # type: ignore[attr-defined]
