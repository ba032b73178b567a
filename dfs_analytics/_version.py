"""The package's version, in one place: the User-Agent, the report footer and
``dfs_analytics.__version__`` read it here.

pyproject.toml reads it from here (``[tool.hatch.version]``). It never holds or imports
anything else (every module may import it without pulling in the package).
"""

__version__ = "0.1.0"
