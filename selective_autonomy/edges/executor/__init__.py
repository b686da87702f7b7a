"""The BPM executor: ``actions.executed`` in, platform calls out, failures handed to an operator.

``adapters`` holds the adapter protocol and the in-process adapters, ``http_adapter`` the HTTP one
(routes per action type, ``templates`` renders them), ``retry`` the backoff, ``ledger`` the durable
claim of each action id, ``service`` applies one action, ``failures`` builds what a failure
publishes, ``runner`` runs the consumer group, ``meters`` and ``health`` expose its counters,
``wiring`` builds and runs it all from the settings (the composition root), and ``cli`` is the
``selauto executor`` command.
"""
