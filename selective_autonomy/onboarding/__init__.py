"""Put a process and its models in service by hand: ``selauto process ...`` and ``selauto models ...``.

``processes`` registers a process schema, ``deploy`` puts policy and critic artefacts in service
and rolls them back, ``rules`` says what each change does to the service pointer (pure), and
``cli`` holds the thin typer commands. Every change is published through the models registry
(workers hot-reload it), recorded in the feedback store with who, when and why, and its stage
changes go out on ``stage.changes``.
"""
