"""Dockyard's registry server (OCI distribution spec): `dockyard registry serve`."""
