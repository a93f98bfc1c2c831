"""Dashboards that ship with Argus (JSON documents, docs/dashboards.md)."""
