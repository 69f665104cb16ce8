"""Durable state: the undo journal, baselines, step progress, run state, and the backups."""
