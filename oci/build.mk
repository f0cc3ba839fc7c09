# oci/: thaw-oci, the OCI runtime command line (docs/oci.md). liboci.a holds the
# bundle and state logic so the unit tests reach it.
OCI_SRCS := \
	oci/bundle.c \
	oci/net.c \
	oci/snapdev.c \
	oci/state.c

LIBS += $(B)/liboci.a
$(B)/liboci.a: $(OCI_SRCS:%.c=$(B)/%.o)
# thaw-oci runs thaw and thaw-jailer as programs and talks to thaw's API as a client.
# It reads a snapshot's device list (libsnap) to decide the load's overrides up front.
OCI_LINK := $(B)/liboci.a $(B)/libapi.a $(B)/libsnap.a $(B)/libcommon.a

PROGRAMS += $(B)/thaw-oci
$(B)/thaw-oci: $(B)/oci/main.o $(OCI_LINK)
	$(link)
