# api: filled in by its subsystem
