"""Hand controls: a person sets a cluster's stage, pauses and resumes autonomy, or confirms a
promotion the learning loop proposed (``learning.promotion = confirmed``), without Python.

- :mod:`.hand`: the pure changes to the service pointer, and the rule they follow;
- :mod:`.service`: :class:`~.service.HandControls` applies one: pointer, store history, ``stage.changes``;
- :mod:`.cli`: ``selauto stage set|release|confirm|show``, ``selauto pause``, ``selauto resume``.

The console's JSON API offers the same controls to supervisors (``console.supervisors``).
"""
