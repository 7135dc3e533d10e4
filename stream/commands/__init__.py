"""Subcommands of the llmwatch CLI, one module each (see stream.cli)."""
