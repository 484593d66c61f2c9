"""Developer and operator tools: the CLI, dev server, simulator, demo, replay and reprocess (outside the core)."""
