"""What every repository of the store shares: the engine it reads and writes through."""

from __future__ import annotations

from sqlalchemy import Engine


class Repository:
    """Typed access to some of the store's tables over one engine (the caller owns the engine)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
