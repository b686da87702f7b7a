"""Streaming benchmark: three pipelines on one embedded Tansu broker, measured the same way.

* ``raw``: a confluent-kafka producer to a confluent-kafka consumer (assigned, no group): the
  broker and client floor, one hop.
* ``passthrough``: a faust agent that reads ``ui.state`` and writes every record, unchanged, to an
  output topic (two hops, no decoding).
* ``decide``: the decide agent as ``selauto worker`` runs it (``build_worker``) with models trained
  on a Helpdesk slice, in the selective stage with a threshold set so that both executions and
  deferrals happen; it writes ``actions.executed`` / ``operator.deferrals``.

Modules, in the order a run uses them:

* :mod:`.settings`: the command line, :class:`~.settings.BenchConfig` and the setting variants.
* :mod:`.models`: trains and publishes the policy and critic, and picks the cases to replay.
* :mod:`.load`: the load generator (records from replayed cases, sent at a rate or flat out).
* :mod:`.metering`: the measuring consumer, latency percentiles, CPU time and RSS from ``/proc``.
* :mod:`.child`: a faust app in its own OS process, as ``selauto worker`` starts one.
* :mod:`.phases`: one pipeline on fresh topics and workers, phase after phase; scaling, tuning,
  variants, and the profiled run.
* :mod:`.profile`: py-spy on a worker, and the table of where its CPU went.
* :mod:`.report`: environment, summary, plot.

Run ``python -m bench.streaming --help`` from the repository root; ``bench/README.md`` has the method.
"""
