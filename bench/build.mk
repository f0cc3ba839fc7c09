# bench: filled in by its subsystem
