"""dfs-analytics: Field Services data in pandas, audits of AI verdicts, safe corrections."""

__version__ = "0.1.0"
