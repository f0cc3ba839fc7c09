# oci/: thaw-oci, the OCI runtime command line (docs/oci.md). liboci.a holds the
# bundle and state logic so the unit tests reach it.
OCI_SRCS := \
	oci/bundle.c \
	oci/net.c \
	oci/pool.c \
	oci/snapdev.c \
	oci/state.c

LIBS += $(B)/liboci.a
$(B)/liboci.a: $(OCI_SRCS:%.c=$(B)/%.o)
# thaw-oci runs thaw and thaw-jailer as programs and talks to thaw's API as a client.
# It reads a snapshot's device list (libsnap) to decide the load's overrides up front.
# With a pool's prepared VMM it makes the container's cgroups itself and moves the VMM
# in (libjailer's jail_cg_adopt, the jail's own cgroup code).
OCI_LINK := $(B)/liboci.a $(B)/libapi.a $(B)/libsnap.a $(B)/libjailer.a $(B)/libcommon.a

PROGRAMS += $(B)/thaw-oci
$(B)/thaw-oci: $(B)/oci/main.o $(OCI_LINK)
	$(link)
