"""A reference consumer of the matcher's outreach stream, for the main backend to copy.

What it shows, in this order of importance:

* **At least once, idempotent by event id.** An event is handled first and its cursor saved
  after. A crash in between hands the same event again on restart, so the handler must do
  nothing the second time (this one remembers the event ids it wrote). Saving the cursor
  first would lose the event instead: a debtor who paid could go on being dunned.
* **The cursor is saved atomically** (a temporary file, fsync, rename), so a crash never
  leaves half a cursor. In the main backend it belongs in the same database transaction as
  the handler's own writes; then nothing is ever handled twice.
* **It resumes, never starts over.** After a deploy or a network break (UNAVAILABLE, the
  stream ending) it reconnects with a jittered backoff from the saved cursor. A cursor the
  matcher no longer has (FAILED_PRECONDITION ``CURSOR_EXPIRED``: the consumer was away longer
  than the outbox is kept) or does not recognise (INVALID_ARGUMENT) stops it with a clear
  message and the cursor untouched: replaying everything, or skipping to now, is a decision
  for a human, not a default.
* **Keepalives** come with ``aicollect.rpc.client.internal_channel``: an idle stream behind
  a load balancer is noticed when it dies.

Run it (the internal token from the environment, never on the command line)::

    AICOLLECT_INTERNAL_TOKEN=... python -m examples.outreach_consumer \\
        --matcher 127.0.0.1:50052 --cursor-file .data/outreach.cursor \\
        --output .data/outreach-events.jsonl [--tenant acme]

Each handled event is one JSON line in ``--output``. Stop it with SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import grpc

from aicollect.matching.v1 import matching_service_pb2 as pb
from aicollect.matching.v1 import matching_service_pb2_grpc as pb_grpc
from aicollect.rpc.client import internal_channel
from aicollect.rpc.errors import error_info

log = logging.getLogger("outreach-consumer")

# Exit codes: 0 stopped on request, 2 bad arguments, 3 the cursor cannot be resumed from.
EXIT_CURSOR = 3


class CursorFile:
    """The last handled event's cursor, saved atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> str:
        try:
            return self.path.read_text().strip()
        except FileNotFoundError:
            return ""

    def save(self, cursor: str) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as out:
            out.write(cursor)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)


class JsonLinesHandler:
    """The example's side effect: one JSON line per event, each event id at most once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: set[str] = set()
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    self.seen.add(json.loads(line)["event_id"])

    def handle(self, event: pb.OutreachEvent) -> bool:
        """Handles one event; False when it had been handled already (a redelivery)."""
        if event.event_id in self.seen:
            return False
        record = {
            "event_id": event.event_id,
            "tenant_id": event.tenant_id,
            "placement_id": event.placement_id,
            "type": pb.OutreachEventType.Name(event.type),
            "status": pb.PlacementStatus.Name(event.status),
            "balance_minor_units": event.balance.minor_units,
            "currency_code": event.balance.currency_code,
            "reason": event.reason,
        }
        with open(self.path, "a") as out:
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
            out.flush()
            os.fsync(out.fileno())
        self.seen.add(event.event_id)
        return True


class CursorUnusable(Exception):
    """The matcher cannot resume from the saved cursor; a human decides what to do."""


async def consume(
    address: str,
    token: str,
    cursors: CursorFile,
    handler: JsonLinesHandler,
    *,
    tenant: str = "",
    stop: asyncio.Event,
    max_backoff_s: float = 30.0,
) -> None:
    """Reads the stream until ``stop`` is set, resuming after every break."""
    failures = 0
    async with internal_channel(address, token) as channel:
        stub = pb_grpc.MatchingServiceStub(channel)
        while not stop.is_set():
            cursor = cursors.load()
            call = stub.StreamOutreachEvents(
                pb.StreamOutreachEventsRequest(cursor=cursor, tenant_id=tenant)
            )
            stopping = asyncio.ensure_future(stop.wait())
            log.info("stream opened after cursor %r", cursor)
            try:
                async for message in _until(call, stopping):
                    fresh = handler.handle(message.event)
                    log.info(
                        "%s %s %s%s",
                        message.event.event_id,
                        pb.OutreachEventType.Name(message.event.type),
                        message.event.placement_id,
                        "" if fresh else " (handled before)",
                    )
                    cursors.save(message.event.cursor)  # after handling: at least once
                    failures = 0
            except grpc.aio.AioRpcError as exc:
                info = error_info(exc)
                reason = info.reason if info is not None else ""
                if exc.code() in (
                    grpc.StatusCode.FAILED_PRECONDITION,
                    grpc.StatusCode.INVALID_ARGUMENT,
                ):
                    raise CursorUnusable(
                        f"the matcher refused cursor {cursor!r}: {exc.code().name} "
                        f"{reason} {exc.details()}"
                    ) from exc
                failures += 1
                log.warning("stream broke (%s %s); resuming", exc.code().name, reason)
            finally:
                call.cancel()
                stopping.cancel()
            if not stop.is_set():
                # Full jitter, so a fleet of consumers does not reconnect in step.
                delay = random.uniform(0, min(max_backoff_s, 0.2 * 2**failures))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)


async def _until(
    call: grpc.aio.UnaryStreamCall[pb.StreamOutreachEventsRequest, pb.StreamOutreachEventsResponse],
    stopping: asyncio.Future[Literal[True]],
) -> AsyncIterator[pb.StreamOutreachEventsResponse]:
    """The stream's messages until it ends or ``stopping`` completes."""
    iterator = call.__aiter__()
    while True:
        nxt: asyncio.Future[pb.StreamOutreachEventsResponse] = asyncio.ensure_future(
            iterator.__anext__()
        )
        waiting: list[asyncio.Future[Any]] = [nxt, stopping]
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if nxt not in done:
            nxt.cancel()
            return
        try:
            yield nxt.result()
        except StopAsyncIteration:
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--matcher", required=True, help="the matcher's gRPC address")
    parser.add_argument("--cursor-file", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path, help="JSON lines, one per event")
    parser.add_argument("--tenant", default="", help="only this tenant's events")
    args = parser.parse_args(argv)
    token = os.environ.get("AICOLLECT_INTERNAL_TOKEN", "")
    if not token:
        parser.error("set AICOLLECT_INTERNAL_TOKEN (kept off the command line)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await consume(
                args.matcher,
                token,
                CursorFile(args.cursor_file),
                JsonLinesHandler(args.output),
                tenant=args.tenant,
                stop=stop,
            )
        except CursorUnusable as exc:
            log.error("%s; the cursor file is left as it was", exc)
            return EXIT_CURSOR
        return 0

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
