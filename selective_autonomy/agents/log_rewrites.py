"""Telling a redelivered record from a rewritten log, and leaving when the log was rewritten.

A Kafka log never changes under a consumer. If it does (an in-memory broker restarted and the same
offsets now hold other records), the worker's offsets and session table no longer describe the
broker and faust cannot recover in place, so the worker exits with :data:`EXIT_LOG_REWRITTEN` and
its supervisor starts a fresh one.
"""

from __future__ import annotations

import array
import logging
import os
import sys
import zlib

log = logging.getLogger(__name__)

EXIT_LOG_REWRITTEN = 75
"""Exit status when the broker's log changed under the worker (EX_TEMPFAIL: restart me)."""


class LogFingerprints:
    """CRC32 of the records read at the most recent offsets of each partition (a fixed ring per
    partition), to tell a redelivery (same offset, same bytes) from a rewritten log."""

    def __init__(self, window: int = 16384) -> None:
        self.window = window
        self._rings: dict[tuple[str, int], tuple[array.array[int], array.array[int]]] = {}

    def changed(self, topic: str, partition: int, offset: int, value: bytes | None) -> bool:
        """Record this read; True when the same offset was read before with other bytes."""
        ring = self._rings.get((topic, partition))
        if ring is None:
            ring = (array.array("q", [-1]) * self.window, array.array("L", [0]) * self.window)
            self._rings[(topic, partition)] = ring
        offsets, crcs = ring
        slot, crc = offset % self.window, zlib.crc32(value or b"")
        if offsets[slot] == offset and crcs[slot] != crc:
            return True
        offsets[slot], crcs[slot] = offset, crc
        return False


def exit_for_restart(message: str) -> None:
    """Log, flush and leave at once, like a crash: nothing more is committed."""
    log.critical(message)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(EXIT_LOG_REWRITTEN)
