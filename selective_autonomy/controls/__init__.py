"""Hand controls: a person sets a cluster's stage, or pauses and resumes autonomy, without Python.

- :mod:`.hand`: the pure changes to the service pointer, and the rule they follow;
- :mod:`.service`: :class:`~.service.HandControls` applies one: pointer, store history, ``stage.changes``;
- :mod:`.cli`: ``selauto stage set|release|show``, ``selauto pause``, ``selauto resume``.

The console's JSON API offers the same controls to supervisors (``console.supervisors``).
"""
