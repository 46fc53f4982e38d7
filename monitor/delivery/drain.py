"""Draining the outbox: claim due alerts, send each to its channel, record every attempt.

Orchestration only: rendering and timing rules are in `alerts` (pure), SQL in `store.outbox`,
Apprise in `delivery.channels`. Each channel is drained on its own, so one slow or dead
channel never holds back the others, and a failure on one channel never re-sends to a channel
that succeeded (each row is one rule × subject × channel). Apprise's blocking call runs in a
worker thread.

Each channel gets a time budget per drain (`BUDGET`); what it has not sent by then is released
to the next drain. Without it a hung channel (200 rows × a 20 s timeout) would keep one drain
running for an hour: longer than the lease, so another worker could claim and send the same
rows again, and the daemon's next drains (one at a time) would hold back every other channel.
Quiet hours are checked again at send time, so a retry or a rate-limit hold that falls inside
them waits for their end like a new alert does; an alert several rules matched (one message
per article and channel) goes as soon as any of them allows. Each channel has its own rate
limit (`[channels.NAME] rate_limit`, else `[monitor] rate_limit`): what is over it is held, not
lost, until the window lets it through.
If the database goes away mid-drain (a PostgreSQL restart), a channel stops there: the outcome
of the send it made and the release of the rows it did not reach are kept in `late`
(store/late.py) and written once the database is back, within the rows' lease, so that alert
is not sent a second time, and the others do not wait for the lease to run out.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TextIO

from monitor.alerts.plan import STDOUT
from monitor.alerts.timing import backoff_delay, hold_until, rate_limit_until
from monitor.errors import StorageError
from monitor.models import Delivery, DeliveryPolicy, DrainResult, Message, Pending
from monitor.store import OutboxStore
from monitor.store.late import LateWrites

LEASE = timedelta(minutes=5)  # a claimed row returns to the queue if its worker dies
BUDGET = 60.0  # seconds of sending per channel per drain; plus one send's timeout, < LEASE

Sender = Callable[[str, Message], Delivery]


def print_alert(message: Message, stream: TextIO | None = None) -> Delivery:
    """The stdout channel: the plain-text alert, framed so consecutive alerts stay readable."""
    out = stream or sys.stdout
    out.write(f"\n=== {message.title}\n{message.text}\n")
    out.flush()
    return Delivery(ok=True)


def group(rows: Sequence[Pending]) -> list[list[Pending]]:
    """One message per row, except digest rows: one per (rule, channel, due time)."""
    groups: dict[tuple, list[Pending]] = defaultdict(list)
    for row in rows:
        key = (row.rule, row.channel, row.due_at) if row.digest else ("row", row.id)
        groups[key].append(row)
    return list(groups.values())


async def drain_outbox(
    outbox: OutboxStore,
    policy: DeliveryPolicy,
    *,
    now: Callable[[], datetime],
    digest_message: Callable[[Sequence[Pending]], Message],
    send: Sender | None = None,
    stream: TextIO | None = None,
    jitter: Callable[[], float] = random.random,
    limit: int = 200,
    budget: float = BUDGET,
    stopping: Callable[[], bool] = lambda: False,
    late: LateWrites | None = None,
) -> DrainResult:
    """Send every due alert once; failures are rescheduled with backoff or marked dead.

    When `stopping()` turns true, unsent rows are handed back at once: a send cut off at the
    stop deadline could arrive and still be sent again after restart.
    """
    started = now()
    rows = outbox.claim_alerts(started, started + LEASE, limit=limit)
    by_channel: dict[str, list[list[Pending]]] = defaultdict(list)
    for batch in group(rows):
        by_channel[batch[0].channel].append(batch)
    send = send or _apprise_send
    drain = _Drain(outbox, policy, now, digest_message, send, stream, jitter, budget, stopping,
                   late, started + LEASE)  # fmt: skip
    await asyncio.gather(*(drain.channel(c, b) for c, b in by_channel.items()))
    return drain.result


def _apprise_send(*args: Any, **kwargs: Any) -> Any:
    """`channels.send`, imported when a channel first sends: Apprise and its plugins cost
    ~0.2 s of start-up, which a `once` printing to the terminal never needs."""
    from monitor.delivery.channels import send

    return send(*args, **kwargs)


@dataclass
class _Drain:
    """One drain's collaborators, shared by the channels it drains side by side; `result` adds
    up what they did."""

    outbox: OutboxStore
    policy: DeliveryPolicy
    now: Callable[[], datetime]
    digest_message: Callable[[Sequence[Pending]], Message]
    send: Sender
    stream: TextIO | None
    jitter: Callable[[], float]
    budget: float
    stopping: Callable[[], bool]
    late: LateWrites | None  # None: a database error ends the drain (see the module doc)
    lease_until: datetime  # the claimed rows'
    result: DrainResult = field(default_factory=DrainResult)

    async def channel(self, channel: str, batches: list[list[Pending]]) -> None:
        """One channel's batches in order, until its budget runs out or the monitor stops."""
        target = self.policy.channels.get(channel)
        deadline = time.monotonic() + self.budget
        for n, batch in enumerate(batches):
            rest = [row.id for later in batches[n:] for row in later]
            if time.monotonic() >= deadline or self.stopping():
                self.outbox.release_alerts(rest)
                return
            try:
                delivery = await self.attempt(channel, target, batch)
            except StorageError as exc:  # nothing sent; the rest goes back once the database is
                self.later(partial(self.outbox.release_alerts, rest), exc)
                return
            if delivery is not None and (exc := self.record(batch, delivery)) is not None:
                self.later(partial(self.outbox.release_alerts, rest[len(batch) :]), exc)
                return

    async def attempt(
        self, channel: str, target: str | None, batch: Sequence[Pending]
    ) -> Delivery | None:
        """Send one batch, unless quiet hours or the rate limit hold it (None)."""
        if channel != STDOUT and target is None:
            # a failed attempt, not instant death: a typo in a reloaded config that is
            # fixed within the retry schedule loses nothing
            return Delivery(ok=False, error=f"channel {channel!r} is not configured")
        if self.held(channel, batch):
            return None
        return await self.deliver(channel, target, batch)

    def held(self, channel: str, batch: Sequence[Pending]) -> bool:
        """Postpone the batch if quiet hours or the channel's rate limit hold it now."""
        hold = _quiet_hold(self.policy, batch[0], self.now())
        hold = hold or _rate_hold(self.outbox, self.policy, channel, self.now())
        if hold is None:
            return False
        self.outbox.postpone_alerts([row.id for row in batch], hold)
        self.result.postponed += len(batch)
        return True

    async def deliver(self, channel: str, target: str | None, batch: Sequence[Pending]) -> Delivery:
        """Render (a digest) and send one batch; any error is this batch's failed attempt."""
        try:  # a rendering bug must cost this batch an attempt, not the whole drain
            message = self.digest_message(batch) if batch[0].digest else batch[0].message
            if channel == STDOUT:
                return print_alert(message, self.stream)
            return await asyncio.to_thread(self.send, target, message)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001
            return Delivery(ok=False, error=f"internal error: {type(exc).__name__}: {exc}")

    def record(self, batch: Sequence[Pending], delivery: Delivery) -> StorageError | None:
        """Record one attempt; if the database is away, once it is back (and say why)."""
        args = (self.outbox, self.policy, batch, delivery, self.now(), self.jitter())
        try:
            _record(*args, self.result)
        except StorageError as exc:
            self.later(partial(_record, *args, DrainResult()), exc)
            return exc
        return None

    def later(self, write: Callable[[], object], error: StorageError) -> None:
        """Keep `write` for when the database is back; without `late`, raise `error`."""
        if self.late is None:
            raise error
        self.late.add(self.lease_until, write)


def _quiet_hold(policy: DeliveryPolicy, row: Pending, now: datetime) -> datetime | None:
    """When the row may go, if the quiet hours of every one of its rules hold it now: the
    earliest end among them (a rule no longer in the config holds nothing back)."""
    holds = []
    for name in row.rules:
        rule = policy.rules.get(name)
        hold = hold_until(rule, now, policy.timezone) if rule is not None else None
        if hold is None:
            return None
        holds.append(hold)
    return min(holds, default=None)


def _rate_hold(
    outbox: OutboxStore, policy: DeliveryPolicy, channel: str, now: datetime
) -> datetime | None:
    rate = policy.rate_limits.get(channel, policy.rate_limit)
    if rate is None or channel == STDOUT:
        return None
    limit, per = rate
    recent = outbox.sent_since(channel, now - timedelta(seconds=per))
    return rate_limit_until(recent, limit=limit, per=per, now=now)


def _record(
    outbox: OutboxStore,
    policy: DeliveryPolicy,
    batch: Sequence[Pending],
    delivery: Delivery,
    now: datetime,
    jitter: float,
    result: DrainResult,
) -> None:
    ids = [row.id for row in batch]
    if delivery.ok:
        outbox.record_attempt(ids, delivery, now)
        result.sent += len(ids)
        return
    attempt = max(row.attempts for row in batch) + 1
    if attempt >= policy.max_attempts:
        outbox.record_attempt(ids, delivery, now, retry_at=None)
        result.dead += len(ids)
    else:
        delay = backoff_delay(attempt, jitter=min(jitter, 0.999))
        outbox.record_attempt(ids, delivery, now, retry_at=now + timedelta(seconds=delay))
        result.failed += len(ids)
    result.outcomes.append(delivery.error or "failed")
