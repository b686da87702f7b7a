"""``with`` support for objects that hold something to release in ``close()`` (clients, consumers, stores)."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class ClosedOnExit:
    """``with obj:`` gives ``obj`` itself and calls ``obj.close()`` when the block ends, however it ends
    (what ``contextlib.closing`` does, without wrapping the object)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
