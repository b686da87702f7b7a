"""Settings of the edges: the ``ingest`` and ``executor`` sections of :class:`~selective_autonomy.config.Settings`.

Environment examples: ``SELAUTO_INGEST__TOKENS='{"crm": "a-long-random-token"}'``,
``SELAUTO_INGEST__HMAC_SECRETS='{"crm": "shared-signing-secret"}'``,
``SELAUTO_EXECUTOR__HTTP__BASE_URL=https://bpm.internal/api``,
``SELAUTO_EXECUTOR__HTTP__SECRET_HEADERS='{"Authorization": "Bearer ..."}'``.

Defined in :mod:`selective_autonomy.config` (a leaf: every section lives there).
"""

from selective_autonomy.config import (
    DEFAULT_BODY,
    MIN_SECRET_CHARS,
    ExecutorSettings,
    HttpAdapterSettings,
    HttpRoute,
    IngestAuthMode,
    IngestSettings,
    RetrySettings,
)

__all__ = [
    "DEFAULT_BODY",
    "MIN_SECRET_CHARS",
    "ExecutorSettings",
    "HttpAdapterSettings",
    "HttpRoute",
    "IngestAuthMode",
    "IngestSettings",
    "RetrySettings",
]
