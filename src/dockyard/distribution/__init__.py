"""Distribution: the registry client (pull, push, auth) and, in server/, the registry."""
