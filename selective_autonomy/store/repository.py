"""The durable feedback store: proposals, operator feedback, applied actions, stages, model versions
and the UI traces recorded from ``ui.state``.

:class:`FeedbackStore` is the union of the repositories beside this module, all over one engine:
:class:`FeedbackRepository` (proposals and feedback), :class:`TraceRepository` (UI traces),
:class:`ActionLedger` (applied actions), :class:`StageRepository` (stages and hand controls) and
:class:`ModelVersionRepository` (model versions and hand changes to what is in service). Each can
also be built alone on an engine.

Every insert of something that arrives from a topic is idempotent on its id (a redelivery is a
no-op that returns False; a trace's id is its process, session and state version); feedback, traces
and stage transitions are append-only. One store may be used
from several threads; several processes may share one database.
"""

from __future__ import annotations

from sqlalchemy import Engine

from selective_autonomy.closing import ClosedOnExit
from selective_autonomy.store.action_ledger import ActionLedger
from selective_autonomy.store.engine import create_store_engine
from selective_autonomy.store.feedback_repository import FeedbackRepository
from selective_autonomy.store.migration import check_schema
from selective_autonomy.store.migration import migrate as migrate_schema
from selective_autonomy.store.model_repository import ModelVersionRepository
from selective_autonomy.store.stage_repository import StageRepository
from selective_autonomy.store.trace_repository import TraceRepository


class FeedbackStore(
    FeedbackRepository, TraceRepository, ActionLedger, StageRepository, ModelVersionRepository, ClosedOnExit
):
    """Typed access to the store's tables; build it with :meth:`open`."""

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> FeedbackStore:
        """Connect to ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

        :param migrate: create or upgrade the schema first (default True); when False, raise
            :class:`~selective_autonomy.store.errors.SchemaNotReady` unless it is already at head.
        """
        engine = create_store_engine(url)
        try:
            if migrate:
                migrate_schema(engine)
            else:
                check_schema(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()
