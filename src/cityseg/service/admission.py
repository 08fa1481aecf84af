"""Admission control: how many requests may hold an image in memory at once.

A request is admitted (or refused with 503) before a byte of its body is read, so an
overload costs nothing but the headers. Admitted requests read their body, then wait for one
of `max_active` slots before decoding: at most `max_active` images are decoded, segmented and
rendered at once, which is what bounds memory (see `Settings.memory_budget_mb`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cityseg.service.worker import QueueFullError


class Admission:
    """`max_active` requests work at once and `max_waiting` more may wait; the rest get 503.

    Example:
        >>> admission = Admission(max_active=4, max_waiting=32)
        >>> # async with admission.admit():            # 503 here when full, body unread
        >>> #     body = await read()                  # bounded by its timeout
        >>> #     async with admission.active():       # at most 4 images decoded at once
        >>> #         ...
    """

    def __init__(self, max_active: int, max_waiting: int) -> None:
        self.max_active = max_active
        self.limit = max_active + max_waiting
        self.admitted = 0
        self._slots = asyncio.Semaphore(max_active)

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Count the request in, or raise `QueueFullError` at once when the service is full."""
        if self.admitted >= self.limit:
            raise QueueFullError(f"{self.admitted} requests already admitted")
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    @asynccontextmanager
    async def active(self) -> AsyncIterator[None]:
        """Wait for one of the `max_active` slots in which an image may be held in memory."""
        async with self._slots:
            yield
