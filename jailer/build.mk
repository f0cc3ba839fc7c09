# jailer: filled in by its subsystem
