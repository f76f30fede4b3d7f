"""Asking models for text: OpenAI-compatible endpoints (api_client, cache), teacher collection, the LLM judge,
evaluation tables, local generation and the judge-free diagnostics (metrics)."""
