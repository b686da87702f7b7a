"""The operator console: deferred steps in a live inbox, answered by accept, correct or
acceptable alternative, and a sample of unattended steps to audit as right or wrong. Start with
:func:`selective_autonomy.console.app.create_app`.

Its settings are the ``console`` section, :class:`selective_autonomy.config.ConsoleSettings`.
"""
