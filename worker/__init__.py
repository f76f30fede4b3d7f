"""Celery workers: thin, idempotent tasks that take ids and call gad / app.services."""
