"""Benchmark: signed CloudEvents webhook deliveries (10 events each) against the gateway,
with the integration service storing every event in PostgreSQL before the 200.

    .venv/bin/python -m bench.webhook_ingest [--seconds 5] [--rates 100,200,400,800,1200]

The real processes run as ``aicollect run`` starts them (gateway, integration, matcher,
emulator, embedded PostgreSQL or ``AICOLLECT_BENCH_DATABASE_URL``). The kill switch is on
during the run, so the inbox workers leave the stored events alone and what is measured is
acknowledgement: verify, parse, store durably, answer. The same load generator also drives a
bare aiohttp handler that only returns 200, in another process on this machine, for the
ratio. Everything shares this machine's cores, the load generator included.

Prints the figures and writes ``bench/results/webhook_ingest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import socket
import sys
import time
import uuid
from typing import Any

import aiohttp
from google.protobuf.field_mask_pb2 import FieldMask

from aicollect.integration.v1 import admin_service_pb2 as apb
from bench._cpu import CpuMeter, describe, load_average, per_unit_ms
from bench._stack import (
    admin_call,
    connect_tenant,
    create_company,
    percentile,
    running_stack,
    write_result,
)

REALM = "9130300000000001"
# Serves on the listening socket it inherits (fd in argv): bound here, so no port race.
BARE = (
    "import socket, sys\nfrom aiohttp import web\n"
    "async def ok(request):\n    await request.read()\n    return web.Response(text='ok')\n"
    "app = web.Application(client_max_size=4*1024*1024)\napp.router.add_post('/', ok)\n"
    "sock = socket.socket(fileno=int(sys.argv[1]))\n"
    "web.run_app(app, sock=sock, print=None, access_log=None)\n"
)


def delivery(token: str) -> tuple[bytes, str]:
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    events = [
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "intuit.bench",
            "type": "qbo.invoice.updated.v1",
            "datacontenttype": "application/json",
            "time": f"{now}.{i:03d}{uuid.uuid4().int % 1000000:06d}Z",
            "intuitentityid": str(uuid.uuid4().int % 10_000_000),
            "intuitaccountid": REALM,
            "data": {},
        }
        for i in range(10)
    ]
    body = json.dumps(events).encode()
    signature = base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()
    return body, signature


async def closed_loop(url: str, token: str, seconds: float, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                body, signature = delivery(token)
                started = time.perf_counter()
                async with http.post(
                    url,
                    data=body,
                    headers={
                        "intuit-signature": signature,
                        "Content-Type": "application/cloudevents+json",
                    },
                ) as resp:
                    await resp.read()
                    if resp.status == 200:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return {
        "acknowledged": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "errors": errors,
        "concurrency": concurrency,
    }


async def open_loop(url: str, token: str, rate: float, seconds: float) -> dict[str, Any]:
    """Requests sent on a fixed schedule; latency includes any queueing at the server."""
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(at: float) -> None:
            nonlocal errors
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            body, signature = delivery(token)
            started = time.perf_counter()
            try:
                async with http.post(
                    url,
                    data=body,
                    headers={"intuit-signature": signature, "Content-Type": "application/json"},
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as resp:
                    await resp.read()
                    ok = resp.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

        begin = time.monotonic() + 0.2
        started = time.monotonic()
        await asyncio.gather(*(one(begin + i / rate) for i in range(total)))
        elapsed = time.monotonic() - started
    return {
        "target_per_s": rate,
        "acknowledged_per_s": round(len(latencies) / max(elapsed - 0.2, 1e-9), 1),
        "acknowledged": len(latencies),
        "errors": errors,
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rates", default="100,200,400,600,800,1000,1200")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    bare = await asyncio.create_subprocess_exec(
        sys.executable, "-c", BARE, str(listener.fileno()), pass_fds=(listener.fileno(),)
    )
    listener.close()  # the child holds its own copy
    try:
        async with running_stack() as stack:
            await create_company(stack, realm_id=REALM, customers=5, invoices=5)
            await connect_tenant(stack, "bench-tenant", REALM)
            await admin_call(
                stack,
                "UpdatePlatformSettings",
                apb.UpdatePlatformSettingsRequest(
                    settings=apb.PlatformSettings(qbo_kill_switch=True),
                    update_mask=FieldMask(paths=["qbo_kill_switch"]),
                    actor="bench",
                    reason="measure acknowledgement alone",
                ),
            )
            token = stack.env["QBO_WEBHOOK_VERIFIER_TOKEN"]
            ours_url = f"{stack.gateway_url}/v1/webhooks/qbo"
            bare_url = f"http://127.0.0.1:{port}/"
            await closed_loop(ours_url, token, 1.0, 4)  # warm-up
            bare_max = await closed_loop(bare_url, token, args.seconds, args.concurrency)
            meter = CpuMeter(stack)
            before = meter.snapshot()
            ours_max = await closed_loop(ours_url, token, args.seconds, args.concurrency)
            spent = CpuMeter.since(before, meter.snapshot())
            # CPU per acknowledged webhook delivery (10 events each), per process.
            ours_max["cpu_ms_per_webhook"] = per_unit_ms(spent, ours_max["acknowledged"])
            ours_max["load_average"] = load_average()
            steps = []
            for rate in rates:
                step = await open_loop(ours_url, token, rate, args.seconds)
                step["load_average"] = load_average()
                steps.append(step)
                print(
                    f"  {rate:>6.0f}/s offered: {step['acknowledged_per_s']:>7.1f}/s acknowledged, "
                    f"p50 {step['p50_ms']:.1f} ms, p99 {step['p99_ms']:.1f} ms, "
                    f"errors {step['errors']}; load average {step['load_average']}",
                    flush=True,
                )
                if step["errors"] or step["acknowledged_per_s"] < 0.95 * rate:
                    break
    finally:
        bare.terminate()
        await bare.wait()

    sustained = [
        s for s in steps if not s["errors"] and s["acknowledged_per_s"] >= 0.95 * s["target_per_s"]
    ]
    best = max(sustained, key=lambda s: s["target_per_s"]) if sustained else None
    best_p99_ok = max(
        (s for s in sustained if s["p99_ms"] < 50), key=lambda s: s["target_per_s"], default=None
    )
    ratio = ours_max["requests_per_s"] / bare_max["requests_per_s"]
    result = {
        "events_per_request": 10,
        "saturation": {"ours": ours_max, "bare_aiohttp": bare_max, "ratio": round(ratio, 3)},
        "open_loop": steps,
        "highest_sustained_rate_per_s": best["target_per_s"] if best else None,
        "highest_rate_with_p99_under_50ms_per_s": best_p99_ok["target_per_s"]
        if best_p99_ok
        else None,
    }
    path = write_result("webhook_ingest", result)
    print(
        f"saturation: ours {ours_max['requests_per_s']}/s (p99 {ours_max['p99_ms']} ms) vs bare "
        f"aiohttp {bare_max['requests_per_s']}/s -> ratio {ratio:.2f}\n"
        f"CPU ms per acknowledged webhook at saturation: "
        f"{describe(ours_max['cpu_ms_per_webhook'])} (load average {ours_max['load_average']})\n"
        f"highest sustained rate: {result['highest_sustained_rate_per_s']}/s; "
        f"with p99 < 50 ms: {result['highest_rate_with_p99_under_50ms_per_s']}/s\n"
        f"written to {path}"
    )


if __name__ == "__main__":
    asyncio.run(main())
