"""Micro-batching: requests that arrive together share one model call, behind a bounded queue.

Each request puts its decoded image in the queue and waits. One task takes the first image waiting, then
every image that arrives within ``window_s`` (up to ``max_batch``), and runs the batch in the one model
thread: one forward pass for all of them. A full queue is refused at once (:class:`Busy`, the server's
503 with ``Retry-After``) rather than left to grow, so a burst past capacity costs the clients a retry,
not the server its memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

LOG = logging.getLogger("skinlesion.serve")


class Busy(Exception):
    """The queue is full: the request is refused (503), not queued."""


class Batcher:
    """Collect queued items into batches and run each batch once in a single worker thread.

    Args:
        run_batch: Called with a list of items in the worker thread; returns one result per item, in order.
        max_batch: The most items per call (``--max-batch``).
        window_s: How long the first item of a batch waits for more.
        queue_size: The most items waiting (``--queue``); one more is :class:`Busy`.
    """

    def __init__(self, run_batch: Callable[[list], list], max_batch: int, window_s: float, queue_size: int):
        self.run_batch, self.max_batch, self.window_s = run_batch, max_batch, window_s
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=queue_size)
        # One thread: the model is called by one batch at a time, which is what batching is for.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        """Start taking batches (inside the server's event loop)."""
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop the loop and the model thread."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.executor.shutdown(wait=True)

    @property
    def waiting(self) -> int:
        """Items in the queue now."""
        return self.queue.qsize()

    async def submit(self, item: Any) -> Any:
        """Queue ``item`` and wait for its result.

        Raises:
            Busy: When the queue is full.
            Exception: What ``run_batch`` raised for the batch the item was in.
        """
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait((item, future))
        except asyncio.QueueFull:
            raise Busy from None
        return await future

    async def _collect(self) -> list:
        batch = [await self.queue.get()]
        deadline = time.monotonic() + self.window_s
        while len(batch) < self.max_batch:
            if not self.queue.empty():
                batch.append(self.queue.get_nowait())
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), left))
            except TimeoutError:
                break
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            live = [(item, future) for item, future in batch if not future.done()]  # a client gone: skip
            if not live:
                continue
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self.executor, self.run_batch, [item for item, _ in live])
            except Exception as exc:  # the model failed: every request of the batch gets the error
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            # Sizes and times only: no image bytes, no file names (patient data).
            LOG.info("batch of %d in %.1f ms", len(live), 1000 * (time.perf_counter() - started))
            for (_, future), result in zip(live, results, strict=True):
                if not future.done():
                    future.set_result(result)
