"""The platform's webhook: ``POST /v1/ui-state`` (and ``:batch``) onto ``ui.state``.

``create_ingest_app`` (in ``app``) builds the FastAPI app; ``auth`` checks bearer tokens and HMAC
signatures, ``validation`` checks bodies against the contract and the process schema, ``service``
publishes, ``protocol`` holds the request and response models, ``cli`` the ``selauto ingest`` commands.
"""
