"""Celery task modules: thin entry points that call the apps' services."""
