# common/: what every folder may use and nothing of ours below it: logging, errf,
# the monotonic clock, restricted io_uring rings (blk and the uffd handler), argument
# vectors for the programs thaw-pool and thaw-oci start.
# libcommon.a is the last of our libraries on every link line.
COMMON_SRCS := \
	common/argv.c \
	common/log.c \
	common/uring.c

LIBS += $(B)/libcommon.a
$(B)/libcommon.a: $(COMMON_SRCS:%.c=$(B)/%.o)
# What a program of this layer links, in order (the Makefile's link rule says why).
COMMON_LINK := $(B)/libcommon.a
