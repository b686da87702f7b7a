"""faust's consumer, acknowledging only the records delivered to an agent (docs/guarantees.md)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger(__name__)


class DeliveredOnlyAcks(faust_aiokafka.Consumer):
    """faust's consumer, except that only records delivered to an agent can be acknowledged.

    faust acks a record that its stream skips without delivering it: one fetched under the previous
    consumer generation, or read while flow control is suspended for a rebalance
    (``Stream._py_aiter``: ``if event is not None and (do_ack or value is skipped_value)``). Such an
    ack moves the committable offset past a record no agent has seen, and the commit that faust makes
    when partitions are revoked stores it; the member that gets the partition next (or this one,
    after it seeks to the committed offset) starts behind the record, so it is never decided. Read
    in faust's code, not yet seen in a test (docs/guarantees.md). Refusing those acks leaves a gap
    in the acked offsets, the commit stops before it, and the record is read again after the
    rebalance. Invariant: an offset of an agent's topic is committed only once every
    record up to it was delivered to the agent and acknowledged by it.

    The same invariant needs a second guard, on what is fetched (:meth:`getmany`): faust delivers
    a partition's records in offset order and, when a fetched record lies further than one past the
    last one delivered, counts the offsets between as acknowledged (meant for compacted topics and
    transaction markers) and drops every record below the new position when it is fetched later.
    Around a rebalance the fetcher and faust's seek to the committed offsets can disagree on a
    partition's position (measured in the chaos test: a worker delivered offset 405, its next
    record was 432, and 406..431 were counted as acknowledged without being read; when those offsets
    had not been decided elsewhere, a state was lost; when the jump left faust's position ahead of
    records it still had to read, they were dropped and the partition stalled until the next
    rebalance). So a forward jump is not delivered: the partition is sought back to the last
    delivered offset and read on from there (the one record read again is a redelivery, which the
    agents skip). Only if the records are still missing after that (a real hole in the log) does
    faust's gap handling apply, logged.

    A third guard covers records that faust fetches and then drops before any agent sees them
    (:meth:`on_dropped`): aiokafka's position has already moved past them, nothing fetches them
    again until the next rebalance or restart, and as they are never acknowledged the commit stops
    before them, so the partition stalls (the restart test's stalls, docs/guarantees.md). Invariant:
    aiokafka's position for a partition never stays past a record of an agent's topic that was
    neither delivered to the agent nor committed; such a partition is read again from that record.

    A fourth guard covers batches that outlive a rebalance (:meth:`_getmany`): faust reads the
    consumer generation only once a fetch has returned, so records fetched before a rebalance and
    handed over after it pass as records of the new generation. For a changelog partition the worker
    read as a standby and now restores as an active one, a single such record (from the standby's
    position, far past offset 0 where the restore starts) is enough: faust's recovery applies a record
    only if its offset is above the highest it has seen (``Recovery._slurp_changelogs``), so it skips
    every earlier record and declares the partition restored, and the session table lacks that
    partition's sessions. Invariant: a partition's records reach faust only from where the consumer
    stands; when the generation changed while a fetch was out, the records of a partition that a
    seek has repositioned since (aiokafka's position is not past them) are not delivered, and reading
    goes on from where the seek put it.
    """

    refused_acks: int = 0
    stale: int = 0
    gaps: int = 0
    jumps: int = 0
    head_waits: int = 0
    rereads: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reread_from: dict[Any, int] = {}  # partition -> the last delivered offset read again from
        # Partition -> its committed offset, the record the fetch must deliver first after a seek to it.
        self._first_after_seek: dict[Any, int] = {}
        # Partition -> (offset, generation, why): the first record faust dropped after fetching it, to
        # read again from while the consumer generation it was fetched in lasts.
        self._dropped: dict[Any, tuple[int, int, str]] = {}
        # The batch faust's getmany iterates (partition -> fetched offsets) and the generation it was fetched in.
        self._fetched: dict[Any, list[int]] = {}
        self._fetched_generation = 0

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        for tp in revoked:
            self._reread_from.pop(tp, None)
            self._first_after_seek.pop(tp, None)
            self._dropped.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def seek_to_committed(self) -> Any:
        # faust stores a committed offset (the next record to read) where it otherwise keeps the
        # last record read, so its gap test (and ours below) let the first record fetched after this
        # seek lie one past it: the committed record itself could be skipped unnoticed. Seen in the
        # restart test: a worker read and committed every offset of ui.state, yet one state never
        # reached the agent (no jump, no gap). So the first record after the seek must be this one.
        committed = await super().seek_to_committed()
        for tp, offset in committed.items():
            if offset is not None and offset >= 0:
                self._first_after_seek[tp] = offset
        return committed

    def _new_offset(self, tp: Any) -> int | None:
        # faust commits when the lowest acked offset is at most one past the committed one
        # (``min(acked) - committed > 1`` is its only test), but the committed offset is the next
        # record to read: a commit would pass over that record while it is unread or in flight.
        acked, committed = self._acked[tp], self._committed_offset[tp]
        if acked and committed is not None and not self._gap[tp] and min(acked) > committed:
            self.head_waits += 1
            log.info("%s: not committing past offset %d: acked from %d only", tp, committed, min(acked))
            return None
        return super()._new_offset(tp)

    def on_dropped(self, tp: Any, offset: int, generation: int, why: str) -> None:
        """Note that faust dropped the record at ``offset`` of ``tp``, fetched in consumer generation
        ``generation``, before it reached an agent: the partition is read again from there."""
        if not self.app.topics.acks_enabled_for(tp.topic) or self.should_stop:
            return
        committed = self._committed_offset.get(tp)
        if committed is not None and offset < committed:
            return  # acknowledged and committed before (a redelivery)
        known = self._dropped.get(tp)
        if known is None or known[1] != generation or offset < known[0]:
            self._dropped[tp] = (offset, generation, why)

    def _position(self, tp: Any) -> int | None:
        """aiokafka's position for ``tp`` (the next offset it returns); None when it has none."""
        try:
            consumer: Any = self._thread._ensure_consumer()
            state = consumer._subscription.subscription.assignment.state_value(tp)
        except Exception:  # not assigned any more
            return None
        return None if state is None else state._position

    async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
        generation = self.app.consumer_generation_id
        records = await super()._getmany(active_partitions, timeout)
        now = self.app.consumer_generation_id
        if not records or now == generation:
            return records
        fresh = {}
        for tp, batch in records.items():
            position = self._position(tp)
            if batch and position is not None and position > batch[-1].offset:
                fresh[tp] = batch
                continue
            self.stale += len(batch)
            log.warning(
                "%s: offsets %d..%d were fetched in consumer generation %d and reached faust in %d, "
                "after a seek to %s: not delivered",
                tp,
                batch[0].offset,
                batch[-1].offset,
                generation,
                now,
                position,
            )
        return fresh

    async def _wait_next_records(self, timeout: float) -> Any:
        records, active_partitions = await super()._wait_next_records(timeout)
        # faust's getmany takes the generation right after this; a record it does not yield is dropped.
        self._fetched_generation = self.app.consumer_generation_id
        self._fetched = {tp: [record.offset for record in batch] for tp, batch in (records or {}).items()}
        return records, active_partitions

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        if self.flow_active:  # else a rebalance is under way: the next generation drops these
            for tp in list(self._dropped):
                await self._read_dropped_again(tp)  # before the fetch, which then reads from there
        sought: set[Any] = set()
        self._fetched = {}
        handed: dict[Any, set[int]] = {}
        try:
            async for tp, message in super().getmany(timeout):
                handed.setdefault(tp, set()).add(message.offset)
                if tp in self._dropped and tp not in sought and await self._read_dropped_again(tp):
                    sought.add(tp)
                if tp in sought:
                    continue  # the rest of the partition's batch: read again after the seek
                back_to = self._seek_back_to(tp, message)
                if back_to is not None:
                    try:
                        await self.seek(tp, back_to)
                    except Exception as exc:  # revoked meanwhile: faust's own handling applies
                        log.warning("%s: could not read again from %d: %s", tp, back_to, exc)
                    else:
                        sought.add(tp)
                        continue
                yield tp, message
        finally:
            # faust's getmany drops fetched records without yielding them when flow stops or the
            # generation changes mid-batch (both ``break``) and for a partition missing from its
            # active set (paused meanwhile: the set is mutated while the batch is iterated).
            for tp, offsets in self._fetched.items():
                missing = [offset for offset in offsets if offset not in handed.get(tp, ())]
                if missing and tp not in sought:
                    self.on_dropped(tp, missing[0], self._fetched_generation, "fetched, not delivered by faust")
            self._fetched = {}

    async def _read_dropped_again(self, tp: Any) -> bool:
        """Seek ``tp`` back to the first record faust dropped, unless a rebalance has repositioned
        it since (a new generation starts at the committed offsets); True if sought."""
        offset, generation, why = self._dropped.pop(tp)
        if generation != self.app.consumer_generation_id:
            return False
        try:
            await self.seek(tp, offset)
        except Exception as exc:  # revoked meanwhile: the next assignment starts at the committed offset
            log.warning("%s: could not read again from %d: %s", tp, offset, exc)
            return False
        # faust's seek keeps the offset as if it were the last one read: this record must come first.
        self._first_after_seek[tp] = offset
        self.rereads += 1
        log.warning(
            "%s: offset %d was fetched but never reached the agent (%s); reading again from %d", tp, offset, why, offset
        )
        return True

    def _seek_back_to(self, tp: Any, message: Any) -> int | None:
        """The offset to read ``tp`` again from when ``message`` jumps past unread records, once
        per position; None to deliver it (a record still missing after reading again is a hole in
        the log, left to faust's ``_add_gap``)."""
        if not self.app.topics.acks_enabled_for(message.topic):
            return None
        first = self._first_after_seek.get(tp)
        if first is not None:
            # After a seek, the committed record must come first (an older one is dropped by faust).
            if message.offset <= first or self._reread_from.get(tp) == first:
                if message.offset >= first:
                    del self._first_after_seek[tp]
                return None
            return self._read_again(tp, first, first, message.offset)
        last = self._read_offset.get(tp)
        # faust's own gap test (Consumer._drain_messages): a last offset, and this one more than one past it.
        if not last or message.offset - last <= 1 or self._reread_from.get(tp) == last:
            return None
        return self._read_again(tp, int(last), int(last) + 1, message.offset)

    def _read_again(self, tp: Any, position: int, unread_from: int, fetched: int) -> int:
        """Count a jump past ``unread_from..fetched - 1`` and read ``tp`` again from ``position``."""
        self._reread_from[tp] = position
        self.jumps += 1
        log.warning(
            "%s: fetched offset %d without %d..%d; reading again from %d instead of counting them as read",
            tp,
            fetched,
            unread_from,
            fetched - 1,
            position,
        )
        return position

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        # Reached only when the records are missing after a seek back (see getmany): a hole in the
        # log, which faust counts as acknowledged.
        self.gaps += 1
        log.warning(
            "offsets %d..%d of %s skipped by the fetch: faust counts them as acknowledged", offset_from, offset_to, tp
        )
        await super()._add_gap(tp, offset_from, offset_to)

    def ack(self, message: Any) -> bool:
        if not message.tracked and self.app.topics.acks_enabled_for(message.topic):
            committed = self._committed_offset[message.tp]
            if committed is None or message.offset >= committed:
                self.refused_acks += 1
                log.info(
                    "not acknowledging %s[%d]@%d: faust skipped it during a rebalance; it is read again after",
                    message.topic,
                    message.partition,
                    message.offset,
                )
            return False
        return super().ack(message)
