"""The `dockyard` command line (a docker-compatible client of the daemon)."""
