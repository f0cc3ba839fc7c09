# uffd: filled in by its subsystem
