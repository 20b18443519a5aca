"""Metrics, request logs, the per-request trace record, prices and cost."""
