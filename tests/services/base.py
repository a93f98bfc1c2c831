"""Moved to `harness.processes`; kept so existing imports still work."""

from harness.processes import ManagedProcess, ServiceFailed, free_port, port_open, wait_port

__all__ = ["ManagedProcess", "ServiceFailed", "free_port", "port_open", "wait_port"]
