"""The engine: flow runner (and, with the delivery engine, scheduler and workers)."""

from erpbridge.engine.runner import FlowRunner, RunResult

__all__ = ["FlowRunner", "RunResult"]
