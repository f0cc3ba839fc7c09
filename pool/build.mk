# pool/: thaw-pool, the supervisor of prepared thaw processes (libpool.a: everything but
# main, so unit tests reach the request parsing and the histogram).
POOL_SRCS := \
	pool/config.c \
	pool/proc.c \
	pool/pool.c

LIBS += $(B)/libpool.a
$(B)/libpool.a: $(POOL_SRCS:%.c=$(B)/%.o)
# The pool serves HTTP with api/'s transport, reads a snapshot's shape with libsnap, and
# runs thaw and thaw-jailer as programs (it links neither libvmm nor libjailer).
POOL_LINK := $(B)/libpool.a $(B)/libapi.a $(B)/libsnap.a $(B)/libcommon.a

PROGRAMS += $(B)/thaw-pool
$(B)/thaw-pool: $(B)/pool/main.o $(POOL_LINK)
	$(link)
