"""The ``minikafka`` command line. Each subcommand is a thin shell over a module of its own."""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from minikafka import __version__
from minikafka.core import ConfigError, Safeguard

__all__ = ["main"]


def _explore_pipeline(args: argparse.Namespace, console: Console) -> int:
    from minikafka.pipelines import MODELS
    from minikafka.sim.faults import KINDS
    from minikafka.testing.pipelines import FAULTS_FOR, find_violation

    model = args.model
    if model not in MODELS:
        console.print(f"[red]unknown model {model!r}[/]; choose one of: {', '.join(MODELS)}")
        return 2
    try:
        broken = [Safeguard.from_name(name) for name in args.break_ or ()]
    except ConfigError as error:
        console.print(f"[red]{error}[/]")
        return 2
    # Each model is held to "every event exactly once": the search shows where a weaker
    # model falls short of it (a loss, a duplicate), and the database beside exactly-once.
    violations = ["lost", "duplicated"]
    if model == "exactly-once+external-db":
        violations.append("database-duplicated")
    options: dict[str, object] = {"max_examples": args.max_examples}
    if broken:
        options["disabled_safeguards"] = frozenset(broken)
    if args.faults is not None:
        kinds = _names(args.faults, KINDS, "fault kinds", console)
        if kinds is None:
            return 2
        options["kinds"] = tuple(kinds)
    elif broken:
        # Draw the faults the broken safeguards stand against.
        options["kinds"] = tuple(sorted({kind for s in broken for kind in FAULTS_FOR[s]}))
    with Progress(
        TextColumn(f"[bold]exploring {model}"),
        TextColumn("{task.completed} runs"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=args.json,
    ) as progress:
        task = progress.add_task("", total=None)
        found = find_violation(
            model,
            violations,
            on_run=lambda runs: progress.update(task, completed=runs),
            **options,  # type: ignore[arg-type]
        )
    if args.json:
        print(
            json.dumps(
                {
                    "model": model,
                    "broken": [safeguard.value for safeguard in broken],
                    "fault_kinds": list(options.get("kinds", KINDS)),  # type: ignore[call-overload]
                    "held": found is None,
                    "violation": found.violation if found else None,
                    "plan": repr(found.plan) if found else None,
                    "affected": found.affected if found else [],
                    "report": found.result.report.to_json() if found else None,
                },
                indent=2,
            )
        )
        return 0 if found is None else 1
    promise = MODELS[model].expectation
    if found is None:
        console.print(
            f"[green]held[/]: {model} applied every event exactly once under every plan "
            f"tried (expected: {promise})"
        )
        return 0
    console.print(
        f"[red]{found.violation}[/]: {model} (expected: {promise}): {', '.join(found.affected)}"
    )
    console.print("The shrunk fault plan, as code that replays it:")
    console.print(repr(found.plan), highlight=False, markup=False)
    console.print(found.result.report)
    console.print(
        found.story().timeline(title="what happened, from the first fault to the anomaly", limit=60)
    )
    return 1


def _explore(args: argparse.Namespace, console: Console) -> int:
    from minikafka.explore import MACHINES, explore, render

    if args.machine == "pipeline":
        if not args.model:
            console.print("[red]explore pipeline needs --model MODEL[/]")
            return 2
        return _explore_pipeline(args, console)
    for option, value in (("--model", args.model), ("--faults", args.faults)):
        if value is not None:
            console.print(f"[red]{option} is for explore pipeline[/]; the machines draw their own")
            return 2

    if args.machine not in MACHINES:
        console.print(
            f"[red]unknown machine {args.machine!r}[/]; choose one of: {', '.join(MACHINES)}"
        )
        return 2
    try:
        broken = [Safeguard.from_name(name) for name in args.break_ or ()]
    except ConfigError as error:
        console.print(f"[red]{error}[/]")
        return 2
    options = dict(
        broken=broken, max_examples=args.max_examples, step_count=args.steps, seed=args.seed
    )
    try:
        if args.json:
            result = explore(args.machine, **options)
        else:
            with Progress(
                TextColumn("[bold]exploring {task.fields[machine]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as progress:
                task = progress.add_task("", total=args.max_examples, machine=args.machine)

                def advance(count: int) -> None:
                    progress.update(task, completed=min(count, args.max_examples))

                result = explore(args.machine, on_example=advance, **options)
    except ValueError as error:
        console.print(f"[red]{error}[/]")
        return 2
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        console.print(render(result))
        if not result.held:
            again = f"minikafka explore {args.machine}"
            again += "".join(f" --break {name}" for name in result.broken)
            if args.seed is not None:
                again += f" --seed {args.seed}"
            console.print(f"Replay it with: [bold]{again}[/]")
    return 0 if result.held else 1


def _show(args: argparse.Namespace, console: Console) -> int:
    from minikafka.scenarios import SCENARIOS, run_scenario
    from minikafka.viz import render_scenario, scenario_json

    if args.scenario is None:
        table = Table(title="Scenarios: minikafka show NAME", header_style="bold")
        table.add_column("name", style="bold")
        table.add_column("what it shows")
        for scenario in SCENARIOS.values():
            table.add_row(scenario.name, scenario.summary)
        console.print(table)
        return 0
    try:
        result = run_scenario(args.scenario)
    except KeyError as error:
        console.print(f"[red]{error.args[0]}[/]")
        return 2
    if args.json:
        print(json.dumps(scenario_json(args.scenario, result), indent=2))
        return 0
    picture = render_scenario(result)
    if args.svg is None:
        console.print(picture)
        return 0
    recorder = Console(record=True, width=110, file=io.StringIO())
    recorder.print(picture)
    try:
        recorder.save_svg(args.svg, title=f"minikafka show {args.scenario}")
    except OSError as error:
        console.print(f"[red]cannot write {args.svg}: {error.strerror}[/]")
        return 2
    console.print(picture)
    console.print(f"Saved the picture to [bold]{args.svg}[/]")
    return 0


def _bench(args: argparse.Namespace, console: Console) -> int:
    from minikafka.bench import SUITES, run_suite

    if args.suite is not None and args.suite not in SUITES:
        console.print(
            f"[red]unknown suite {args.suite!r}[/]; this version has: {', '.join(SUITES)}"
        )
        return 2
    suites = [args.suite] if args.suite else list(SUITES)
    results = []
    # With --json the bars go to stderr, so that the output on stdout stays clean for machines.
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=Console(stderr=True) if args.json else console,
        transient=True,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(task: str, done: float, total: float) -> None:
            if task not in tasks:
                tasks[task] = bar.add_task(task, total=total)
            bar.update(tasks[task], completed=done, total=total)

        for suite in suites:
            result = run_suite(suite, progress=progress, quick=args.quick)
            results.append(result)
            if not args.json:
                bar.console.print(result.render())
    if args.json:
        found = [result.to_json() for result in results]
        print(json.dumps(found[0] if args.suite else {"suites": found}, indent=2))
        return 0
    met = sum(target.met for result in results for target in result.targets)
    total = sum(len(result.targets) for result in results)
    seconds = sum(result.seconds for result in results)
    console.print(
        f"{met} of {total} targets met, in {seconds:.0f} s. Figures vary with the machine; "
        "the targets are ratios or rates measured within this run."
    )
    return 0


def _lab(args: argparse.Namespace, console: Console) -> int:
    import os

    from minikafka.lab import PRODUCER_ROWS, run_lab
    from minikafka.pipelines import MODELS

    models = list(MODELS)
    if args.models is not None:
        chosen = _names(args.models, list(MODELS), "models", console)
        if chosen is None:
            return 2
        if len(set(chosen)) != len(chosen):
            console.print(f"[red]--models names a model twice[/]: {args.models}")
            return 2
        models = chosen
    if not 0.0 <= args.fault_rate <= 1.0:
        console.print(f"[red]--fault-rate is a probability from 0 to 1, not {args.fault_rate}[/]")
        return 2
    if args.svg is not None and not os.path.isdir(os.path.dirname(os.path.abspath(args.svg))):
        console.print(f"[red]cannot save the picture to {args.svg}[/]: no such folder")
        return 2
    workers = args.workers or min(2, os.cpu_count() or 1)
    rows = len(models) + len(PRODUCER_ROWS)
    with Progress(
        TextColumn("[bold]lab"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=args.json,
    ) as progress:
        task = progress.add_task("", total=rows)
        result = run_lab(
            events=args.events,
            seed=args.seed,
            fault_rate=args.fault_rate,
            models=models,
            workers=workers,
            on_row=lambda row: progress.update(task, advance=1, description=f"{row.name} done"),
        )
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        console.print(result)
    if args.svg is not None:
        recorder = Console(record=True, width=140, file=io.StringIO())
        recorder.print(result)
        try:
            recorder.save_svg(args.svg, title="minikafka lab")
        except OSError as error:
            console.print(f"[red]cannot save the picture to {args.svg}[/]: {error.strerror}")
            return 2
        if not args.json:
            console.print(f"saved the picture to {args.svg}")
    return 0 if result.promises_kept else 1


def _tutorial(args: argparse.Namespace, console: Console) -> int:
    from minikafka.tutorial import Lesson, find_tutorials, load_tutorial

    try:
        tutorials = find_tutorials()
    except FileNotFoundError as error:
        console.print(f"[red]{error}[/]")
        return 2
    if args.number is None:
        table = Table(title="Tutorials: minikafka tutorial N", header_style="bold")
        table.add_column("N", justify="right")
        table.add_column("what it teaches")
        table.add_column("file", style="dim")
        for info in tutorials:
            table.add_row(str(info.number), info.title, info.path.name)
        console.print(table)
        return 0
    chosen = [info for info in tutorials if info.number == args.number]
    if not chosen:
        numbers = ", ".join(str(info.number) for info in tutorials)
        console.print(f"[red]there is no tutorial {args.number}[/]; choose one of: {numbers}")
        return 2
    (info,) = chosen
    load_tutorial(info)(Lesson(info.title, console=console))
    return 0


def _exercises(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from minikafka.exercises import find_exercises, run_check

    exercises = find_exercises()
    if args.action is None:
        table = Table(title="Exercises: minikafka exercises check N [FILE]", header_style="bold")
        table.add_column("N", justify="right")
        table.add_column("level")
        table.add_column("exercise")
        table.add_column("starter file", style="dim")
        for exercise, _ in exercises.values():
            table.add_row(str(exercise.number), exercise.level, exercise.title, exercise.filename)
        console.print(table)
        return 0
    if args.action != "check" or args.number is None:
        console.print("[red]usage: minikafka exercises [check N [FILE]][/]")
        return 2
    path = Path(args.file) if args.file else None
    if path is not None and not path.is_file():
        console.print(f"[red]no such file: {path}[/]")
        return 2
    try:
        with console.status("checking ..."):
            verdict = run_check(args.number, path)
    except KeyError as error:
        console.print(f"[red]{error.args[0]}[/]")
        return 2
    style = "bold green" if verdict.passed else "bold red"
    console.print(
        Text.assemble(("passed" if verdict.passed else "not yet", style), ": ", verdict.message)
    )
    if verdict.counterexample:
        console.print("A counterexample that shows it:")
        console.print(verdict.counterexample, highlight=False, markup=False)
    return 0 if verdict.passed else 1


def _names(text: str, choices: Sequence[str], what: str, console: Console) -> list[str] | None:
    """The comma-separated names in ``text``, or None (said on the console) if any is not
    one of ``choices`` or there are none."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in choices]
    if unknown or not names:
        console.print(
            f"[red]unknown {what} {unknown or text!r}[/]; choose from: {', '.join(choices)}"
        )
        return None
    return names


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minikafka",
        description="A mini Kafka broker for learning what exactly-once really means.",
    )
    parser.add_argument("--version", action="version", version=f"minikafka {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    explore = commands.add_parser(
        "explore",
        help="run a hypothesis state machine against the broker and show what it finds",
        description="Run a hypothesis state machine. Exit 0 when the invariants held, 1 with "
        "a shrunk counterexample when they did not.",
    )
    explore.add_argument(
        "machine", help="which machine: dedup, atomic-commit, fencing, groups or pipeline"
    )
    explore.add_argument(
        "--model", help="with pipeline: the delivery model, e.g. at-least-once or exactly-once"
    )
    explore.add_argument(
        "--break",
        dest="break_",
        action="append",
        metavar="SAFEGUARD",
        help="switch a safeguard off, e.g. producer-dedup (repeatable)",
    )
    explore.add_argument(
        "--faults",
        metavar="KINDS",
        help="with pipeline: the fault kinds to draw, comma-separated (default: all; with "
        "--break, those the safeguard stands against)",
    )
    explore.add_argument("--max-examples", type=_positive, default=200, metavar="N")
    explore.add_argument(
        "--steps",
        type=_positive,
        default=50,
        metavar="N",
        help="the most steps in one example (default 50)",
    )
    explore.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed the search (default: derandomized, the same every run)",
    )
    explore.add_argument("--json", action="store_true", help="print the result as JSON")
    explore.set_defaults(run=_explore)
    show = commands.add_parser(
        "show",
        help="run a small scripted scenario and draw what it left behind",
        description="Run a scripted scenario and draw the partition logs, the transaction "
        "coordinator, the groups and the offsets it left. Without a name, list the scenarios.",
    )
    show.add_argument("scenario", nargs="?", help="which scenario (omit to list them)")
    show.add_argument("--svg", metavar="FILE", help="also save the picture as an SVG file")
    show.add_argument("--json", action="store_true", help="print the state as JSON")
    show.set_defaults(run=_show)
    lab = commands.add_parser(
        "lab",
        help="run every delivery model on the same events under the same faults, and compare",
        description="The seed article's table, measured: the five delivery models consume the "
        "same payment events under one seeded fault plan, and the producer runs alone with "
        "idempotence off and on. Exit 0 when every model kept its own promise, 1 otherwise.",
    )
    lab.add_argument("--events", type=_positive, default=1000, metavar="N")
    lab.add_argument("--seed", type=int, default=0, help="fixes the fault plan and the run")
    lab.add_argument(
        "--fault-rate",
        type=float,
        default=0.02,
        metavar="R",
        help="how often things go wrong (default 0.02; 0 for no faults)",
    )
    lab.add_argument(
        "--models", metavar="NAMES", help="comma-separated models to run (default: all five)"
    )
    lab.add_argument(
        "--workers",
        type=_positive,
        default=None,
        metavar="N",
        help="processes to run the models in (default: 2, or 1 on one core)",
    )
    lab.add_argument("--json", action="store_true", help="print the results as JSON")
    lab.add_argument("--svg", metavar="FILE", help="also save the table as an SVG file")
    lab.set_defaults(run=_lab)
    tutorial = commands.add_parser(
        "tutorial",
        help="list the tutorials, or run one",
        description="The tutorials follow the seed article, one idea each. Without a number, "
        "list them; with one, run it and narrate what happens.",
    )
    tutorial.add_argument("number", nargs="?", type=int, help="which tutorial (omit to list)")
    tutorial.set_defaults(run=_tutorial)
    exercises = commands.add_parser(
        "exercises",
        help="list the classroom exercises, or check a solution",
        description="Without arguments, list the exercises. 'check N [FILE]' runs exercise "
        "N's checker on FILE (by default its starter file) and says what is still wrong. "
        "Exit 0 when it passes, 1 when it does not.",
    )
    exercises.add_argument("action", nargs="?", choices=["check"], help="check a solution")
    exercises.add_argument("number", nargs="?", type=int, help="which exercise")
    exercises.add_argument("file", nargs="?", help="the file to check (default: the starter)")
    exercises.set_defaults(run=_exercises)
    bench = commands.add_parser(
        "bench",
        help="measure how fast the simulation runs (prints figures and targets, asserts nothing)",
        description="Run the benchmark suites (or one) and print their figures and targets, "
        "met or not. Suites: core (Broker.handle alone), scale (large logs, large "
        "transactions, memory), clients (a producer and a consumer through the simulated "
        "network, against mockafka-py if installed), eos (each delivery model against "
        "at-least-once), explore (hypothesis steps and pipeline examples per second).",
    )
    bench.add_argument("suite", nargs="?", help="which suite (default: all of them)")
    bench.add_argument(
        "--quick", action="store_true", help="smaller workloads: a fast, noisier look"
    )
    bench.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench.set_defaults(run=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=False)
    if not console.is_terminal:
        console = Console(stderr=False, width=max(console.width, 120))  # files and pipes
    code: int = args.run(args, console)
    return code


if __name__ == "__main__":
    sys.exit(main())
