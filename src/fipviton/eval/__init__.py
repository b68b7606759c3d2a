"""Evaluation: metrics and the `fipviton eval` implementations."""
