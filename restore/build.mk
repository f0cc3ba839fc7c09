# restore: filled in by its subsystem
