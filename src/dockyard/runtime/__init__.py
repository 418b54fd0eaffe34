"""dockyard-runc: the OCI runtime (runc's command line), and the library the shim calls."""
