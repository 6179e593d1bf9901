"""edge-agent: the industrial edge data-collection agent.

``__version__`` is the project's one version: pyproject.toml reads it from here
(``[tool.setuptools.dynamic]``), release/build_deb.py too, so the wheel, the .deb, the
venv's pin and what the agent reports (``--version``, /metrics, /status, Sparkplug) can
never disagree. A plain literal, so setuptools reads it without importing anything, and
importing the package stays free.
"""

__version__ = "0.1.0"
