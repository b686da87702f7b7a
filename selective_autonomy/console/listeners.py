"""What the inbox and the audit book share: a lock, and the listeners told of each change under it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

C = TypeVar("C")


class ChangeNotifier(Generic[C]):
    """Holds listeners of changes of type ``C``; the owner calls :meth:`_notify` with its lock held,
    so every listener sees changes in the order they happened."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._listeners: list[Callable[[list[C]], None]] = []

    def subscribe(self, listener: Callable[[list[C]], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[list[C]], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _notify(self, changes: list[C]) -> None:
        """Called with the lock held, so every listener sees changes in the order they happened."""
        if changes:
            for listener in list(self._listeners):
                listener(changes)
