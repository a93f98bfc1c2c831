"""Filled by the s3 work (issue 3)."""
