"""The BPM edges: what connects the platform to the topics.

- ``ingest``: the platform's webhook. ``POST /v1/ui-state`` authenticates the caller, validates the
  body against the ``UIStateChanged`` contract and the process schema, publishes it to ``ui.state``
  keyed by session and answers once the broker acknowledged it (``selauto ingest http``).
- ``executor``: consumes ``actions.executed`` and applies each action to the platform through an
  adapter (HTTP, or any callable), at most once per action id (claims are kept in the feedback store);
  what cannot be applied becomes ``ActionFailed`` plus an operator deferral (``selauto executor``).

This root imports nothing on purpose: ``config`` imports :mod:`selective_autonomy.edges.settings`,
and that must not pull FastAPI or Kafka clients in.
"""
