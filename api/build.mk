# api/: the HTTP API server the VMM embeds (libapi.a), its client half, thawctl and the
# fuzz target.
API_SRCS := \
	api/server.c \
	api/route.c \
	api/mmds.c \
	api/jsonfile.c \
	api/client.c

LIBS += $(B)/libapi.a
$(B)/libapi.a: $(API_SRCS:%.c=$(B)/%.o)
# The VMM calls the API (vmm/control.c), never the reverse.
API_LINK := $(B)/libapi.a $(B)/libcommon.a

PROGRAMS += $(B)/thawctl
$(B)/thawctl: $(B)/api/thawctl.o $(API_LINK)
	$(link)

# libFuzzer over request parsing and routing, built with clang apart from the rest (its
# own objects, so the gcc build is untouched). FUZZ_TIME bounds the run in seconds.
FUZZ_TIME ?= 20
FUZZ_DIR  := $(B)/fuzz
API_FUZZ_SRCS := tests/fuzz/api_fuzz.c $(API_SRCS) common/log.c
$(FUZZ_DIR)/api_fuzz: $(API_FUZZ_SRCS) api/api.h api/api_int.h common/log.h
	$(call msg,FUZZ,$@)
	@mkdir -p $(dir $@)
	$(Q)clang -std=gnu11 -O1 -g -D_GNU_SOURCE -I. -Wall -Wno-unused-parameter \
		-fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -o $@ $(API_FUZZ_SRCS) -ljson-c -lhttp_parser

fuzz-api: $(FUZZ_DIR)/api_fuzz
	@mkdir -p $(FUZZ_DIR)/api_corpus $(FUZZ_DIR)/api_crashes
	$(FUZZ_DIR)/api_fuzz -max_total_time=$(FUZZ_TIME) -max_len=70000 -timeout=10 \
		-rss_limit_mb=1024 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/api_crashes/ \
		$(FUZZ_DIR)/api_corpus tests/fuzz/api_corpus

.PHONY: fuzz-api
