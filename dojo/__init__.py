"""dojo: the tooling beside the katas.

- ``dojo.manifest``: the ordered list of katas (``manifest.toml``) and where things live.
- ``dojo.impl``: the one switch that chooses which code the specs exercise.
- ``dojo.plugin``: the pytest plugin (``--impl``, the ``task`` marker, shared fixtures).
- ``dojo.timeline``, ``dojo.fakes``: what the shared fixtures are made of.
"""
