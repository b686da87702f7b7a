"""The BPM edges: what connects the platform to the topics.

- ``ingest``: the platform's webhook. ``POST /v1/ui-state`` authenticates the caller, validates the
  body against the ``UIStateChanged`` contract and the process schema, publishes it to ``ui.state``
  keyed by session and answers once the broker acknowledged it (``selauto ingest http``).
- ``executor``: consumes ``actions.executed`` and applies each action to the platform through an
  adapter (HTTP, or any callable), at most once per action id (claims are kept in the feedback store);
  what cannot be applied becomes ``ActionFailed`` plus an operator deferral (``selauto executor``).

Their settings (the ``ingest`` and ``executor`` sections) live in :mod:`selective_autonomy.config.edges`.
This root imports nothing, so importing one edge does not pull the other's FastAPI or Kafka clients in.
"""
