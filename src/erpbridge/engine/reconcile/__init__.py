"""Reconciliation: compare a channel's side of a flow with the hub, and repair on request."""
