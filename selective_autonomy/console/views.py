"""HTML rendering with Jinja2 (autoescaped): pages and the fragments htmx and the live stream swap in."""

from __future__ import annotations

import re
import time
from datetime import datetime
from functools import cached_property
from importlib import resources
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape

from selective_autonomy import __version__
from selective_autonomy.console.cards import REASON_LABELS, ActionOption, ArgumentField
from selective_autonomy.console.protocol import AuditView, CardView, CountersView
from selective_autonomy.schemas.event_parts import Scalar, Stage, Verdict

HTMX_FILE = "vendor/htmx-2.0.11.min.js"

MODES: dict[str, Verdict] = {"correct": Verdict.corrected, "alternative": Verdict.acceptable_alternative}


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _scalar(value: Scalar) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def _clock(value: datetime) -> str:
    return value.strftime("%H:%M:%S")


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(max(0, seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _ago(value: datetime) -> str:
    return _duration(int(time.time() - value.timestamp()))


def _pathseg(value: str) -> str:
    return quote(value, safe="")


def _domid(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", value)


def _stage_class(stage: Stage) -> str:
    return {"logging": "stage-logging", "copilot": "stage-copilot", "selective": "stage-selective"}[stage.value]


class Views:
    """Renders the console's templates."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("selective_autonomy.console", "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            percent=_percent,
            score=_score,
            scalar=_scalar,
            epoch=_epoch,
            clock=_clock,
            duration=_duration,
            ago=_ago,
            pathseg=_pathseg,
            domid=_domid,
        )
        self.env.globals.update(
            reason_label=lambda reason: REASON_LABELS.get(reason, reason.value),
            stage_class=_stage_class,
            version=__version__,
            htmx_file=HTMX_FILE,
            Verdict=Verdict,
        )

    @cached_property
    def inline_css(self) -> str:
        """The stylesheet, for the login page (static files are only served to operators)."""
        return resources.files("selective_autonomy.console").joinpath("static/console.css").read_text()

    def render(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)

    def page(
        self,
        operator_id: str,
        csrf_token: str,
        cards: list[CardView],
        counters: CountersView,
        audits: list[AuditView] | None = None,
    ) -> str:
        return self.render(
            "inbox.html",
            operator_id=operator_id,
            csrf_token=csrf_token,
            cards=cards,
            counters=counters,
            audits=audits or [],
        )

    def login(self, csrf_token: str, error: str | None = None, operator_id: str = "", next_url: str = "/") -> str:
        return self.render(
            "login.html",
            csrf_token=csrf_token,
            error=error,
            operator_id=operator_id,
            next_url=next_url,
            css=self.inline_css,
        )

    def cards(self, cards: list[CardView]) -> str:
        return self.render("_cards.html", cards=cards)

    def card(self, card: CardView) -> str:
        return self.render("_card.html", card=card)

    def audits(self, audits: list[AuditView]) -> str:
        return self.render("_audits.html", audits=audits)

    def audit(self, audit: AuditView) -> str:
        return self.render("_audit.html", audit=audit)

    def counters(self, counters: CountersView) -> str:
        return self.render("_counters.html", counters=counters)

    def form(
        self,
        card: CardView,
        mode: str,
        actions: list[ActionOption],
        action_type: str,
        fields: list[ArgumentField],
    ) -> str:
        return self.render("_form.html", card=card, mode=mode, actions=actions, action_type=action_type, fields=fields)

    def audit_form(
        self, audit: AuditView, base: str, actions: list[ActionOption], action_type: str, fields: list[ArgumentField]
    ) -> str:
        """The "wrong" form of an audit: the correction form, posting to ``base``/wrong."""
        return self.render(
            "_form.html",
            card=audit,
            form_base=base,
            mode="wrong",
            actions=actions,
            action_type=action_type,
            fields=fields,
        )

    def arguments(
        self, card: CardView | AuditView, action_type: str, fields: list[ArgumentField], description: str
    ) -> str:
        return self.render(
            "_arguments.html", card=card, action_type=action_type, fields=fields, description=description
        )

    def errors(self, messages: list[str]) -> str:
        return self.render("_errors.html", messages=messages)
