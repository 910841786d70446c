"""Entrypoints: settings, the composition root, the CLI and the Starlette app."""
