"""dockyardd: the daemon, composing the engine's services and the Engine API server."""
