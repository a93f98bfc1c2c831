"""Filled by the dynamodb work (issue 3)."""
