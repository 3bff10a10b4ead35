"""Where the CPU goes: runs a benchmark and samples each of our processes with py-spy
while it runs, then prints, per process, the share of samples by kind of work.

    .venv/bin/python -m bench.profile --after "placements ready" --seconds 15 \\
        e2e_latency --rates 100 --realms 10 --seconds 15

Sampling starts when the benchmark prints a line containing ``--after`` (so set-up is
left out) and lasts ``--seconds``. py-spy reads the processes' memory from outside (run as
root, or with ptrace allowed) and does not pause them (``--nonblocking``). The collapsed
stacks are kept as ``bench/results/profile-<process>.txt`` (flamegraph.pl or speedscope
read them).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import time
from pathlib import Path

import psutil

RESULTS = Path(__file__).resolve().parent / "results"
PROCESSES = {
    "gateway": "gateway",
    "integration": "services.integration",
    "matcher": "services.matcher",
}

# (kind, test on the innermost frames) in order: the first that matches names a sample.
KINDS: list[tuple[str, tuple[str, ...]]] = [
    ("waiting (event loop idle)", ("selectors.py", "EpollSelector", "uvloop/loop")),
    ("sending a statement or reply (socket write)", ("Transport.write",)),
    ("SQLAlchemy (ORM, compiling, results)", ("sqlalchemy/",)),
    ("asyncpg (protocol)", ("asyncpg/",)),
    ("gRPC (calls, serving)", ("grpc/", "Handle._run")),
    ("protobuf", ("protobuf/",)),
    ("aiohttp", ("aiohttp/",)),
    ("JSON", ("json/", "orjson", "fastjson")),
    ("our code", ("services/", "gateway/", "aicollect/")),
]


def kind_of(frames: list[str]) -> str:
    inner = frames[-3:]
    for kind, marks in KINDS:
        if any(mark in frame for frame in inner for mark in marks):
            return kind
    return "other (interpreter, threads, standard library)"


def summary(path: Path) -> list[tuple[str, float]]:
    counts: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack:
            counts[kind_of(stack.split(";"))] += int(n)
    total = sum(counts.values()) or 1
    return [(kind, 100 * n / total) for kind, n in counts.most_common()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--after", required=True, help="start once the benchmark prints this")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("benchmark")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    bench = subprocess.Popen(
        [sys.executable, "-m", f"bench.{ns.benchmark}", *ns.args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert bench.stdout is not None
    spies: dict[str, subprocess.Popen[bytes]] = {}
    for line in bench.stdout:
        print(line, end="", flush=True)
        if ns.after in line and not spies:
            children = psutil.Process(bench.pid).children()
            for name, module in PROCESSES.items():
                pid = next(c.pid for c in children if c.cmdline()[-2:] == ["-m", module])
                spies[name] = subprocess.Popen(
                    [
                        str(Path(sys.executable).with_name("py-spy")),
                        "record",
                        "--nonblocking",
                        "--rate",
                        "200",
                        "--duration",
                        str(int(ns.seconds)),
                        "--format",
                        "raw",
                        "--output",
                        str(RESULTS / f"profile-{name}.txt"),
                        "--pid",
                        str(pid),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            started = time.monotonic()
    bench.wait()
    for spy in spies.values():
        spy.wait()
    if not spies:
        raise SystemExit(f"the benchmark never printed {ns.after!r}")
    print(f"\nwhere the samples went ({time.monotonic() - started:.0f} s after the trigger):")
    for name in spies:
        print(f"  {name}:")
        for kind, share in summary(RESULTS / f"profile-{name}.txt"):
            print(f"    {share:5.1f} %  {kind}")


if __name__ == "__main__":
    main()
