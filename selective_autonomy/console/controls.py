"""The hand controls in the console: supervisors set stages, pause or resume autonomy and confirm
the promotions the learning loop proposed for the processes they see; every operator who sees a
process may read its controls and their history.

A thin layer over :class:`~selective_autonomy.controls.service.HandControls`: who may do what
(``console.supervisors``, ``console.operator_processes``), the store opened on first use (the
inbox needs none), stage moves announced through the console's producer, and the views.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from selective_autonomy.config import ConsoleSettings, Settings
from selective_autonomy.console.delivery import Delivery
from selective_autonomy.console.errors import (
    ControlHeld,
    ControlRefused,
    NothingToControl,
    NotSupervisor,
    StoreUnavailable,
)
from selective_autonomy.console.inbox import Visibility, visible
from selective_autonomy.console.protocol import (
    ClusterControlsView,
    ConfirmRequest,
    ControlResponse,
    ControlsView,
    HandControlView,
    HandStageView,
    PauseRequest,
    PauseView,
    PendingPromotionView,
    ReleaseRequest,
    ResumeRequest,
    StageMoveView,
    StageRequest,
)
from selective_autonomy.schemas.events import StageChanged

if TYPE_CHECKING:  # the store (SQLAlchemy, alembic) is imported when the first control is used
    from selective_autonomy.controls.hand import HandChange
    from selective_autonomy.controls.service import ControlResult, HandControls
    from selective_autonomy.inference.registry import Pause, PendingPromotion
    from selective_autonomy.store.repository import FeedbackStore


class NoSuchProcess(LookupError):
    """No process of this id for this operator (the route answers 404)."""


class ConsoleControls:
    """Hand controls for console callers.

    :param open_store: opens the feedback store; default ``FeedbackStore.open`` at the settings' URL.
    """

    def __init__(
        self,
        settings: Settings,
        config: ConsoleSettings,
        delivery: Delivery,
        open_store: Callable[[], FeedbackStore] | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.delivery = delivery
        self._open_store = open_store
        self._controls: HandControls | None = None
        self._store: FeedbackStore | None = None
        self._lock = threading.Lock()

    def controls(self) -> HandControls:
        with self._lock:
            if self._controls is None:
                from selective_autonomy.controls.service import HandControls
                from selective_autonomy.inference.registry import ModelRegistry
                from selective_autonomy.store.repository import FeedbackStore

                try:
                    store = (
                        self._open_store()
                        if self._open_store
                        else FeedbackStore.open(self.settings.store.resolved_url(self.settings.data_dir))
                    )
                except Exception as exc:  # a store that is down costs this request, not the console
                    raise StoreUnavailable(f"the feedback store could not be opened: {exc}") from exc
                self._store = store
                self._controls = HandControls(ModelRegistry(self.settings.models_dir), store, self._announce)
            return self._controls

    def close(self) -> None:
        with self._lock:
            store, self._store, self._controls = self._store, None, None
        if store is not None:
            store.close()

    def _announce(self, changes: list[StageChanged]) -> None:
        topic = self.settings.topics.stage_changes
        self.delivery.announce([(topic, c, f"{c.process_id}/{c.business_cluster}") for c in changes])

    # -- reading -----------------------------------------------------------------------------------

    def view(self, operator_id: str, visibility: Visibility, process_id: str, newest: int = 50) -> ControlsView:
        from selective_autonomy.controls.errors import UnknownProcess

        self._visible(visibility, process_id)
        try:
            overview = self.controls().overview(process_id, newest)
        except UnknownProcess as exc:
            raise NoSuchProcess(str(exc)) from exc
        return ControlsView(
            process_id=overview.process_id,
            pointer_revision=overview.pointer_revision,
            clusters=[
                ClusterControlsView(
                    business_cluster=c.business_cluster,
                    stage=c.stage,
                    held_by_hand=HandStageView(**c.held_by_hand.model_dump()) if c.held_by_hand else None,
                    paused=_pause_view(_scope_of(overview.paused, c.business_cluster), c.paused) if c.paused else None,
                    certified=c.certified,
                    pending_promotion=_pending_view(c.pending_promotion) if c.pending_promotion else None,
                )
                for c in overview.clusters
            ],
            pauses=[_pause_view(scope, pause) for scope, pause in sorted(overview.paused.items())],
            history=[
                HandControlView(
                    control=h.control.value,
                    scope=h.scope,
                    stage=h.stage,
                    reason=h.reason,
                    changed_by=h.changed_by,
                    at=h.at,
                )
                for h in overview.history
            ],
            stage_history=[
                StageMoveView(
                    business_cluster=t.business_cluster,
                    from_stage=t.from_stage,
                    to_stage=t.to_stage,
                    reason=t.reason,
                    changed_by=t.changed_by,
                    at=t.at,
                )
                for t in overview.stage_history
            ],
        )

    # -- the controls ------------------------------------------------------------------------------

    def set_stage(
        self, operator_id: str, visibility: Visibility, process_id: str, body: StageRequest
    ) -> ControlResponse:
        change = self._change(operator_id, visibility, process_id, body.reason)
        return self._apply(operator_id, lambda c: c.set_stage(change, body.business_cluster, body.stage))

    def release(
        self, operator_id: str, visibility: Visibility, process_id: str, body: ReleaseRequest
    ) -> ControlResponse:
        change = self._change(operator_id, visibility, process_id, body.reason)
        return self._apply(operator_id, lambda c: c.release(change, body.business_cluster))

    def confirm(
        self, operator_id: str, visibility: Visibility, process_id: str, body: ConfirmRequest
    ) -> ControlResponse:
        change = self._change(operator_id, visibility, process_id, body.reason)
        return self._apply(operator_id, lambda c: c.confirm(change, body.business_cluster))

    def pause(self, operator_id: str, visibility: Visibility, process_id: str, body: PauseRequest) -> ControlResponse:
        change = self._change(operator_id, visibility, process_id, body.reason)
        return self._apply(operator_id, lambda c: c.pause(change, body.business_cluster))

    def resume(self, operator_id: str, visibility: Visibility, process_id: str, body: ResumeRequest) -> ControlResponse:
        change = self._change(operator_id, visibility, process_id, body.reason)
        return self._apply(operator_id, lambda c: c.resume(change, body.business_cluster))

    # -- helpers -----------------------------------------------------------------------------------

    @staticmethod
    def _visible(visibility: Visibility, process_id: str) -> None:
        if not visible(visibility, process_id):
            raise NoSuchProcess(f"no process {process_id!r} for this operator")

    def _change(self, operator_id: str, visibility: Visibility, process_id: str, reason: str) -> HandChange:
        from selective_autonomy.controls.hand import HandChange

        # Who may not control a process learns nothing about it: 404 before 403 for an unseen one.
        self._visible(visibility, process_id)
        if not self.config.is_supervisor(operator_id):
            raise NotSupervisor(f"operator {operator_id!r} is not a supervisor (console.supervisors)")
        return HandChange(process_id=process_id, reason=reason, by=operator_id)

    def _apply(self, operator_id: str, control: Callable[[HandControls], ControlResult]) -> ControlResponse:
        from selective_autonomy.controls.errors import HeldByHand, NothingToChange, UnknownCluster, UnknownProcess

        try:
            result = control(self.controls())
        except UnknownProcess as exc:
            raise NoSuchProcess(str(exc)) from exc
        except UnknownCluster as exc:
            raise ControlRefused(str(exc)) from exc
        except NothingToChange as exc:
            raise NothingToControl(str(exc)) from exc
        except HeldByHand as exc:
            raise ControlHeld(str(exc)) from exc
        return ControlResponse(
            process_id=result.process_id,
            scope=result.scope,
            control=result.control.value,
            changed=result.changed,
            stage=result.stage,
            stage_moved=result.stage_change is not None,
            published=result.published,
            publish_error=result.publish_error,
            pointer_revision=result.pointer_revision,
            pauses=[_pause_view(scope, pause) for scope, pause in sorted(result.paused.items())],
            operator_id=operator_id,
            message=result.message,
        )


def _scope_of(paused: dict[str, Pause], cluster: str) -> str:
    return cluster if cluster in paused else "*"


def _pending_view(pending: PendingPromotion) -> PendingPromotionView:
    certificate = pending.certificate
    return PendingPromotionView(
        reason=pending.reason,
        certified_coverage=pending.certified_coverage,
        proposed_at=pending.proposed_at,
        certificate_issued_at=certificate.issued_at,
        policy_version=certificate.policy_version,
        critic_version=certificate.critic_version,
        target_precision=certificate.target_precision,
    )


def _pause_view(scope: str, pause: Pause) -> PauseView:
    return PauseView(scope=scope, reason=pause.reason, by=pause.by, at=pause.at)
