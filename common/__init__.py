"""Helpers that belong to no app and import nothing of ours (apps may import them)."""
