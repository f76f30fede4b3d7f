"""Helpers of bench/quality_study.py: the task language, evaluation probes and the report."""
