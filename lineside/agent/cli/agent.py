"""Commands that check, run and watch the agent: check, run, simulate, status, tail, demo.

Each imports what it runs when it runs, so that `lineside stock` does not load paho,
pymodbus or the simulators."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from lineside.agent.bootstrap import open_ledger
from lineside.agent.cli.options import as_json, config, count_arg, decimal_arg
from lineside.agent.cli.shared import UsageError, load_config, print_json
from lineside.agent.cli.table import arg, command
from lineside.agent.config import ConfigInvalid
from lineside.agent.yamlsource import Source
from lineside.cli_options import EXIT_OK, EXIT_OTHER
from lineside.clock import utc_now

SECONDS = arg("--seconds", type=decimal_arg, help="stop by itself after this long")


@command("check", "validate a config file without touching devices", config)
def _run_check(args: argparse.Namespace) -> int:
    from lineside.agent.ledger.retention import archive_problems
    from lineside.agent.sync.client import check_files, file_warnings

    loaded = load_config(args)
    errors = check_files(loaded) + archive_problems(loaded)
    if errors:
        raise ConfigInvalid(errors)
    cfg = loaded.config
    for warning in [*loaded.warnings, *file_warnings(loaded)]:
        print(f"{args.config}: warning: {warning}", file=sys.stderr)
    print(
        f"{args.config}: ok ({len(cfg.items)} items, {len(cfg.boms)} BOMs, "
        f"{len(cfg.work_centers)} work centers, {len(cfg.meters)} meters, "
        f"{len(cfg.devices)} devices); ledger in {loaded.data_dir}"
    )
    return EXIT_OK


@command("run", "run the agent: poll devices, backflush, sync (the systemd service)", config)
def _run_run(args: argparse.Namespace) -> int:
    from lineside.agent.daemon import StartupError, run

    loaded = load_config(args)
    try:
        return run(loaded)
    except StartupError as exc:
        print(f"lineside: cannot start: {exc}", file=sys.stderr)
        return EXIT_OTHER


@command(
    "simulate",
    "stand in for every device of a config (PLCs, scanners, meters)",
    config,
    arg(
        "--scenario",
        help="scenario file (YAML: device name -> what it does); default: every device idle at 0",
    ),
    SECONDS,
)
def _run_simulate(args: argparse.Namespace) -> int:
    import threading

    from lineside.simulators.run import scenario_problems, start_all

    loaded = load_config(args)
    source, scenario = _scenario(args.scenario) if args.scenario else (None, {})
    problems = scenario_problems(loaded.config, scenario)
    if problems:
        what = f"{args.config} with {args.scenario}" if args.scenario else args.config
        if source is not None:
            problems = [f"{args.scenario}:{_line_of(source, p)}: {p}" for p in problems]
        raise UsageError(f"cannot simulate {what}:\n  " + "\n  ".join(problems))
    stop = threading.Event()
    failures: list[str] = []

    def failed(name: str, exc: Exception) -> None:
        failures.append(f"simulator {name} stopped: {exc}")
        stop.set()

    threads = start_all(loaded.config, scenario, stop, failed)
    print(f"simulating {len(loaded.config.devices)} devices of {args.config}; Ctrl-C stops")
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait(None if args.seconds is None else float(args.seconds))
    stop.set()
    for thread in threads:
        thread.join(10)
    for failure in failures:
        print(f"lineside: {failure}", file=sys.stderr)
    return EXIT_OTHER if failures else EXIT_OK


def _scenario(path: str) -> tuple[Source, dict[str, Any]]:
    """A scenario file read as strictly as a config (size, UTF-8, YAML limits, duplicate
    keys, each refused at file:line); an empty one is the same as none."""
    from lineside.agent.config import read_file, read_sections

    source, data, errors = read_sections(read_file(path), path, empty_ok=True)
    if errors:
        raise ConfigInvalid(errors)
    return source, data


def _line_of(source: Source, problem: str) -> int:
    """The line of a scenario problem, from the key path it starts with (name.key.0: ...)."""
    where = problem.split(": ", 1)[0].split(".")
    return source.line_of(tuple(int(p) if p.isdecimal() else p for p in where))


@command(
    "status",
    "devices, orders, held events, outbox backlog and broker at a glance",
    config,
    as_json,
)
def _run_status(args: argparse.Namespace) -> int:
    from lineside.agent.status import gather, render_status

    loaded = load_config(args)
    ledger = open_ledger(loaded)
    data = gather(loaded, ledger, utc_now())
    if args.json:
        print_json(data)
    else:
        print(render_status(data))
    return EXIT_OK


@command(
    "tail",
    "subscribe as a central system would and check what arrives",
    config,
    arg("--count", type=count_arg, help="stop after N messages (any topic)"),
    arg("--timeout", type=decimal_arg, help="stop after this many seconds"),
    as_json,
)
def _run_tail(args: argparse.Namespace) -> int:
    from lineside.agent.sync.tail import tail_main

    timeout = None if args.timeout is None else float(args.timeout)
    return tail_main(load_config(args), args.json, args.count, timeout)


@command(
    "demo",
    "run the agent on built-in simulators with a local broker, live",
    SECONDS,
    arg(
        "--story",
        action="store_true",
        help="print the backflush story on a throw-away ledger and exit",
    ),
)
def _run_demo(args: argparse.Namespace) -> int:
    from lineside.agent.demo import run_demo

    return run_demo(args)
