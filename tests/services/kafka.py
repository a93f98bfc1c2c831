"""Filled by the kafka work (issue 3)."""
