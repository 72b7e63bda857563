"""skinlesion-serve under load over loopback: throughput and latency at 1, 8 and 32 clients, beside the CLI.

Usage: python benchmarks/bench_serve.py [--models SINGLE_RUN_DIR HEADLINE_DIR] [--clients 1 8 32]
    [--workers 1 2] [--requests 160] [--images 64] [--out bench_serve.json]

For each model folder (by default a single run, ``mobilenet`` seed 0's model folder, and the headline,
an ensemble where ``model: auto`` chose one), in one run:

1. the CLI's own speed: ``predict_files`` (what ``skinlesion-predict`` runs, batches of 32) over the same
   images, the model already loaded, in images per second;
2. for each ``--workers`` count, ``skinlesion-serve`` started on a free loopback port with its defaults
   (``--max-batch 16``, a 5 ms window, ``--queue 64``), then, at each client count, ``--requests`` POSTs of
   real HAM10000 JPEGs by that many concurrent httpx clients (after a warm-up of two per client): requests
   per second, p50/p95/p99 latency, and the errors (any status but 200; the target is 0).

The speed-up is the throughput at 8 clients over the one at 1 client (sequential single requests); the
issue's target for a single-run model is at least 3x.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
HAM = REPO.parent / "shared" / "data" / "ham10000-224"
sys.path.insert(0, str(REPO))

CLI_SPEED = """
import sys, time
from pathlib import Path
from skinlesion.deploy.predict import load_model_and_labels, predict_files
forward, classes = load_model_and_labels(Path(sys.argv[1]) / "model.keras")
files = [Path(p) for p in sys.argv[2:]]
predict_files(forward, classes, files[:32], progress=False)  # warm-up: the graph is built
start = time.perf_counter()
predict_files(forward, classes, files, progress=False)
print(len(files) / (time.perf_counter() - start))
"""


def cli_speed(model_dir: Path, images: list[Path]) -> float:
    """Images per second of predict's own loop (batches of 32), the model loaded, in a process of its own."""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", CLI_SPEED, str(model_dir), *map(str, images)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return float(proc.stdout.strip().splitlines()[-1])


async def drive(url: str, payloads: list[bytes], clients: int, requests: int) -> dict:
    """``requests`` POSTs by ``clients`` concurrent clients: throughput, latency percentiles, errors."""
    import httpx

    latencies, errors = [], 0
    counter = iter(range(requests))

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal errors
        for i in counter:
            started = time.perf_counter()
            answer = await client.post(url, files={"file": ("x.jpg", payloads[i % len(payloads)], "image/jpeg")})
            latencies.append(time.perf_counter() - started)
            errors += answer.status_code != 200

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        warm = iter(range(2 * clients))
        await asyncio.gather(*(_warm(client, url, payloads, warm) for _ in range(clients)))
        start = time.perf_counter()
        await asyncio.gather(*(one(client) for _ in range(clients)))
        wall = time.perf_counter() - start
    ms = 1000 * np.array(latencies)
    return {
        "clients": clients,
        "requests": requests,
        "errors": errors,
        "per_s": requests / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


async def _warm(client, url: str, payloads: list[bytes], counter) -> None:
    for i in counter:
        await client.post(url, files={"file": ("x.jpg", payloads[i % len(payloads)], "image/jpeg")})


def serve_levels(model_dir: Path, workers: int, payloads: list[bytes], args: argparse.Namespace) -> list[dict]:
    """Start the server with ``workers`` processes and drive it at every client count."""
    sys.path.insert(0, str(REPO / "tools"))
    from serve_page import free_port, server

    port = free_port()
    with server(str(model_dir), port, workers=workers) as base:
        return [asyncio.run(drive(base + "/predict", payloads, c, args.requests)) for c in args.clients]


def default_models() -> list[Path]:
    """A single run's model folder and the headline's."""
    from skinlesion.core.layout import HEADLINE_MODEL, RunPaths

    return [REPO / RunPaths("mobilenet", 0).model_dir, REPO / HEADLINE_MODEL]


def name_of(model_dir: Path) -> str:
    """The model's name, from its metadata.json (a run: backbone and seed; the headline: its candidate name)."""
    from skinlesion.deploy.description import read_description
    from skinlesion.serve.served import summary_line

    description = read_description(model_dir)
    return summary_line(description, model_dir.name).split(" (")[0] if description else model_dir.name


def main() -> int:
    """Run every model, worker count and client count; print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", type=Path, default=None)
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("bench_serve.json"))
    args = parser.parse_args()
    images = sorted(HAM.rglob("*.jpg"))[:: max(1, len(sorted(HAM.rglob("*.jpg"))) // args.images)][: args.images]
    payloads = [p.read_bytes() for p in images]
    results = []
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# {platform.node()}, {os.cpu_count()} cores, load average {load} at the start")
    print(f"# {len(images)} HAM10000 JPEGs (224 px), {args.requests} requests per row")
    print("| model | CLI img/s | workers | clients | req/s | p50 ms | p95 ms | p99 ms | errors | × 1 client |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model_dir in args.models or default_models():
        name, cli = name_of(model_dir), cli_speed(model_dir, images)
        for workers in args.workers:
            levels = serve_levels(model_dir, workers, payloads, args)
            for level in levels:
                ratio = level["per_s"] / levels[0]["per_s"]
                print(
                    f"| {name} | {cli:.1f} | {workers} | {level['clients']} | {level['per_s']:.1f} | "
                    f"{level['p50_ms']:.0f} | {level['p95_ms']:.0f} | {level['p99_ms']:.0f} | {level['errors']} | "
                    f"{ratio:.2f} |",
                    flush=True,
                )
                results.append({"model": name, "cli_per_s": cli, "workers": workers, **level, "speedup": ratio})
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
