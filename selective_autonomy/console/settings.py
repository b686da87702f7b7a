"""The operator console's settings: the ``console`` section of :class:`~selective_autonomy.config.Settings`,
defined in :mod:`selective_autonomy.config` (a leaf: every section lives there).

Environment examples: ``SELAUTO_CONSOLE__OPERATORS='{"alice": "a-long-random-token"}'``,
``SELAUTO_CONSOLE__SECRET_KEY=...``, ``SELAUTO_CONSOLE__PORT=8080``.
"""

from selective_autonomy.config import ConsoleSettings

__all__ = ["ConsoleSettings"]
