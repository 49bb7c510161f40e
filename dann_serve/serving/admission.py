"""Which REST requests the server takes on, and when: the bounds a peer cannot exhaust
by being slow.

A request is taken on in two steps. While its body arrives it holds no slot: a client
that declares 100 kB and sends a byte a second (or never) delays no one, and gives up
at the request's deadline. What all the bodies arriving or waiting hold at once is
bounded in bytes actually received (``max_in_flight`` x ``max_message_bytes``, what the
slots held before), so many slow bodies cost what they sent, and a flood of fast ones
waits for room instead of growing the heap. Once its body is in, a request waits for
one of ``max_in_flight`` slots, and holds it until its worker is done.

The counts (requests receiving, requests waiting for a slot) have bounds of their own,
past which a request is refused with 429 at once rather than queued without end.
Everything here runs on the event loop's thread: no locks.
"""

from __future__ import annotations

import asyncio

from dann_serve.serving.limits import Limits

# Requests that may be receiving their bodies at once, per slot (memory is bounded
# apart, by bytes received).
RECEIVING_PER_SLOT = 16
# Requests with their bodies in that may wait for a slot, per slot.
WAITING_PER_SLOT = 4


class Refused(Exception):
    """A request answered before its route runs (and the connection closed after)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ByteBudget:
    """Bytes held at once, up to ``total``; a taker past it waits until some are given
    back (one taker alone may exceed it, so that no request waits for ever)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._freed = asyncio.Event()

    async def take(self, size: int) -> None:
        while self.used and self.used + size > self.total:
            await self._freed.wait()
        self.used += size

    def give_back(self, size: int) -> None:
        self.used -= size
        freed, self._freed = self._freed, asyncio.Event()
        freed.set()  # wakes every waiter; each checks again


class Admission:
    """The REST front end's bounds; create it on the event loop that uses it."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.bodies = ByteBudget(limits.max_in_flight * limits.max_message_bytes)
        self._slots = asyncio.Semaphore(limits.max_in_flight)
        self.receiving = 0
        self.waiting = 0
        self.busy = 0  # requests holding a slot

    def start_receiving(self) -> None:
        """Count a request whose body is about to be read; 429 past the bound."""
        bound = RECEIVING_PER_SLOT * self.limits.max_in_flight
        if self.receiving >= bound:
            raise Refused(429, f"{bound} requests are sending their bodies; try again later")
        self.receiving += 1

    def stop_receiving(self) -> None:
        self.receiving -= 1

    async def take_slot(self) -> None:
        """Wait for a slot (the caller's deadline bounds the wait); 429 past the bound
        on waiting requests."""
        if self.waiting >= WAITING_PER_SLOT * self.limits.max_in_flight:
            raise Refused(429, f"more than {self.waiting} requests waiting; try again later")
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.busy += 1

    def give_slot_back(self) -> None:
        self.busy -= 1
        self._slots.release()
