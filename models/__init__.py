"""Upgrade and change models: format, schema, lint, compile, plans and the model library.

See docs/models.md. The flows use `changeline.models.compile`.
"""
