# ngx_dynamo top-level build.
#   make          build everything into build/
#   make test     unit tests, then the t/ suite (prove)
#   make bench    every benchmark; tables on stdout, JSON + plots under build/bench/
#   make fuzz     build the libFuzzer targets and run each briefly
#   make run      start nginx + module + Redis on 127.0.0.1 (make stop ends it)
#   make run-disagg  the same with a prefill and a decode worker
#   make test-gpu the CUDA backend's GPU tests (skipped without a device)
#   make bench-gpu the CUDA backend against the GPU's bounds (bench/gpu/)

B        := build
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Werror -Wpointer-arith -Wno-unused-parameter
KVR_INC  := -Ikvrouter/include
LIBS     := -lhiredis -lxxhash -ljansson -lpcre2-8 -lutf8proc -lmd -lm -lpthread
CMOCKA   := -lcmocka
ifneq ($(SAN),)
CFLAGS   += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=$(SAN)
endif

KVR_SRC  := $(wildcard kvrouter/src/*.c)
KVR_OBJ  := $(KVR_SRC:%.c=$(B)/obj/%.o)
KVR_LIB  := $(B)/lib/libkvrouter.a

TOOL_SRC := $(wildcard kvrouter/tools/*.c)
TOOL_OBJ := $(TOOL_SRC:%.c=$(B)/obj/%.o)

TSUP_SRC := $(wildcard kvrouter/test/support/*.c)
TSUP_OBJ := $(TSUP_SRC:%.c=$(B)/obj/%.o)
TEST_SRC := $(wildcard kvrouter/test/test_*.c)
TEST_BIN := $(TEST_SRC:kvrouter/test/%.c=$(B)/test/%)

FUZZ_SRC := $(wildcard kvrouter/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:kvrouter/fuzz/%.c=$(B)/fuzz/%)

# worker/: src/ is the daemon's library (no main), cmd/<name>.c are the
# programs (build/bin/<name>), test/test_*.c cmocka tests with test/support/,
# fuzz/fuzz_*.c libFuzzer targets. Kernels want the host's vector units:
# CI builds where it runs, so -march=native is safe; override WCFLAGS to
# build for another machine.
WCFLAGS  ?= -O3 -march=native -g
W_INC    := -Iworker/include -Iworker/src $(KVR_INC)
# UCX only where a program uses it (--as-needed): loading it installs
# libucm's memory hooks, which crash under TSan (see sanitize).
W_LIBS   := -levent -levent_pthreads -lopenblas \
            -Wl,--as-needed -lucp -lucs -Wl,--no-as-needed $(LIBS)
W_SRC    := $(wildcard worker/src/*.c)
W_OBJ    := $(W_SRC:%.c=$(B)/wobj/%.o)
W_LIB    := $(B)/lib/libdw.a
W_CMD    := $(patsubst worker/cmd/%.c,$(B)/bin/%,$(wildcard worker/cmd/*.c))
WSUP_SRC := $(wildcard worker/test/support/*.c)
WSUP_OBJ := $(WSUP_SRC:%.c=$(B)/wobj/%.o)
WTEST_SRC:= $(wildcard worker/test/test_*.c)
WTEST_BIN:= $(WTEST_SRC:worker/test/%.c=$(B)/wtest/%)
WFUZZ_SRC:= $(wildcard worker/fuzz/fuzz_*.c)
WFUZZ_BIN:= $(WFUZZ_SRC:worker/fuzz/%.c=$(B)/fuzz/%)
W_HDR    := $(wildcard worker/include/*.h worker/src/*.h kvrouter/include/*.h)

# worker/cuda/: the cuda backend (worker/cuda/README.md), built into
# libdwcuda.a when $(CUDA)/bin/nvcc exists (NOCUDA=1 skips it); without
# it libdwcuda.a holds only a stub whose create says the worker was built
# without CUDA. Programs and worker tests link libdwcuda.a; the CUDA
# libraries are needed only where a program uses the backend
# (--as-needed; NCCL for --tensor-parallel-size). test/test_*.c there are
# the GPU tests (make test-gpu).
CUDA     ?= /usr/local/cuda
NVCC     := $(CUDA)/bin/nvcc
HAVE_CUDA:= $(if $(NOCUDA),,$(wildcard $(NVCC)))
CU_ARCH  ?= -gencode arch=compute_80,code=sm_80 \
            -gencode arch=compute_90,code=sm_90
NVFLAGS  ?= -O3 -std=c++17 -lineinfo $(CU_ARCH) -Xcompiler -fPIC \
            -Xcompiler -Wall
CU_LIB   := $(B)/lib/libdwcuda.a
CU_HDR   := $(wildcard worker/cuda/*.h)
ifneq ($(HAVE_CUDA),)
CU_SRC   := $(wildcard worker/cuda/*.cu)
CU_CSRC  := $(filter-out worker/cuda/dw_backend_cuda_none.c, \
                         $(wildcard worker/cuda/*.c))
CU_INC   := -Iworker/cuda -I$(CUDA)/include
CU_LIBS  := -L$(CUDA)/lib64 -Wl,-rpath,$(CUDA)/lib64 -Wl,--as-needed \
            -lnccl -lcublasLt -lcublas -lcudart -lstdc++ -Wl,--no-as-needed
else
CU_SRC   :=
CU_CSRC  := worker/cuda/dw_backend_cuda_none.c
CU_INC   := -Iworker/cuda
CU_LIBS  :=
endif
CU_OBJ   := $(CU_SRC:%.cu=$(B)/cuobj/%.o) $(CU_CSRC:%.c=$(B)/cuobj/%.o)
CU_CMD   := $(if $(HAVE_CUDA),$(patsubst worker/cuda/cmd/%.c,$(B)/bin/%, \
                                  $(wildcard worker/cuda/cmd/*.c)))
CUTEST_SRC:= $(wildcard worker/cuda/test/test_*.c)
CUTEST_BIN:= $(if $(HAVE_CUDA), \
                 $(CUTEST_SRC:worker/cuda/test/%.c=$(B)/cutest/%))

# ngx_dynamo_module/: the pure parts (no nginx types) are also built alone
# for cmocka tests (test/test_*.c) and libFuzzer targets (fuzz/fuzz_*.c).
GW_INC   := -Ingx_dynamo_module $(KVR_INC)
GW_PURE  := ngx_dynamo_module/ngx_http_dynamo_oai.c \
            ngx_dynamo_module/ngx_http_dynamo_stream.c \
            ngx_dynamo_module/ngx_http_dynamo_frame.c
GW_OBJ   := $(GW_PURE:%.c=$(B)/obj/%.o)
GTEST_SRC:= $(wildcard ngx_dynamo_module/test/test_*.c)
GTEST_BIN:= $(GTEST_SRC:ngx_dynamo_module/test/%.c=$(B)/gtest/%)
GFUZZ_SRC:= $(wildcard ngx_dynamo_module/fuzz/fuzz_*.c)
GFUZZ_BIN:= $(GFUZZ_SRC:ngx_dynamo_module/fuzz/%.c=$(B)/fuzz/%)

# bench/: dynamo-bench. src/ is its library (db_*), cmd/dynamo-bench.c the
# program, test/test_*.c cmocka tests, fuzz/fuzz_*.c libFuzzer targets.
D_INC    := -Ibench/src $(KVR_INC)
D_LIBS   := -lcurl -levent $(LIBS)
D_SRC    := $(wildcard bench/src/*.c)
D_OBJ    := $(D_SRC:%.c=$(B)/obj/%.o)
D_LIB    := $(B)/lib/libdb.a
D_HDR    := $(wildcard bench/src/*.h kvrouter/include/*.h)
DTEST_SRC:= $(wildcard bench/test/test_*.c)
DTEST_BIN:= $(DTEST_SRC:bench/test/%.c=$(B)/dtest/%)
DFUZZ_SRC:= $(wildcard bench/fuzz/fuzz_*.c)
DFUZZ_BIN:= $(DFUZZ_SRC:bench/fuzz/%.c=$(B)/fuzz/%)

MODULE   := $(B)/modules/ngx_dynamo_module.so
MOD_SRC  := config $(wildcard ngx_dynamo_module/*.[ch]) $(KVR_SRC) \
            $(wildcard kvrouter/include/*.h)

DEPS     := $(B)/.deps-ok

.PHONY: all deps test unit test-t sanitize fuzz-smoke bench fuzz run stop clean
.DELETE_ON_ERROR:
.SECONDARY:

all: $(KVR_LIB) $(B)/bin/dynamo-kv $(MODULE) $(W_LIB) $(CU_LIB) $(W_CMD) \
     $(CU_CMD) $(CUTEST_BIN) $(B)/bin/dynamo-bench

deps: $(DEPS)
$(DEPS): scripts/install-deps.sh
	@sh scripts/install-deps.sh
	@mkdir -p $(B) && touch $@

$(B)/obj/%.o: %.c $(wildcard kvrouter/include/*.h) | $(DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) $(GW_INC) -MMD -c $< -o $@

$(B)/obj/bench/%.o: bench/%.c $(D_HDR) | $(DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) $(D_INC) -MMD -c $< -o $@

$(D_LIB): $(D_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(B)/bin/dynamo-bench: bench/cmd/dynamo-bench.c $(D_LIB) $(KVR_LIB) $(D_HDR) \
                       | $(DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $(WARN) $(D_INC) -o $@ $< $(D_LIB) $(KVR_LIB) \
	    $(D_LIBS)

$(B)/dtest/%: bench/test/%.c $(D_LIB) $(KVR_LIB) $(D_HDR) | $(DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $(WARN) $(D_INC) -Ikvrouter/test -o $@ $< \
	    $(D_LIB) $(KVR_LIB) $(D_LIBS) $(CMOCKA)

$(B)/gtest/%: ngx_dynamo_module/test/%.c $(GW_OBJ) $(KVR_LIB) | $(DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $(WARN) $(GW_INC) -Ikvrouter/test -o $@ $< \
	    $(GW_OBJ) $(KVR_LIB) $(LIBS) $(CMOCKA)

$(KVR_LIB): $(KVR_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(B)/bin/dynamo-kv: $(TOOL_OBJ) $(KVR_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(TOOL_OBJ) $(KVR_LIB) $(LIBS)

$(B)/test/test_tokenizer: kvrouter/test/tokenizer/components.inc

$(B)/test/%: kvrouter/test/%.c $(TSUP_OBJ) $(KVR_LIB) | $(DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $(WARN) $(KVR_INC) -Ikvrouter/test -o $@ $< \
	    $(TSUP_OBJ) $(KVR_LIB) $(LIBS) $(CMOCKA)

$(B)/wobj/%.o: %.c $(W_HDR) | $(DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(WCFLAGS) $(filter -fsanitize% -fno-%,$(CFLAGS)) $(WARN) -pthread \
	    $(W_INC) -MMD -c $< -o $@

$(W_LIB): $(W_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(B)/cuobj/%.o: %.cu $(CU_HDR) | $(DEPS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -Iworker/cuda -Iworker/include -c $< -o $@

$(B)/cuobj/%.o: %.c $(W_HDR) $(CU_HDR) | $(DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(WCFLAGS) $(filter -fsanitize% -fno-%,$(CFLAGS)) $(WARN) -pthread \
	    $(W_INC) $(CU_INC) -MMD -c $< -o $@

$(CU_LIB): $(CU_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(B)/bin/%: worker/cmd/%.c $(W_LIB) $(CU_LIB) $(KVR_LIB) $(W_HDR) | $(DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(WCFLAGS) $(filter -fsanitize% -fno-%,$(CFLAGS)) $(LDFLAGS) $(WARN) \
	    -pthread $(W_INC) -o $@ $< $(CU_LIB) $(W_LIB) $(KVR_LIB) $(CU_LIBS) \
	    $(W_LIBS)

$(B)/wtest/%: worker/test/%.c $(WSUP_OBJ) $(W_LIB) $(CU_LIB) $(KVR_LIB) \
              | $(DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(WCFLAGS) $(filter -fsanitize% -fno-%,$(CFLAGS)) $(LDFLAGS) $(WARN) \
	    -pthread $(W_INC) -Iworker/test -Ikvrouter/test -o $@ $< $(WSUP_OBJ) \
	    $(CU_LIB) $(W_LIB) $(KVR_LIB) $(CU_LIBS) $(W_LIBS) $(CMOCKA)

# GPU programs (dw-cuda-bench): only with CUDA.
$(B)/bin/%: worker/cuda/cmd/%.c $(W_LIB) $(CU_LIB) $(KVR_LIB) $(CU_HDR) \
            | $(DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(WCFLAGS) $(filter -fsanitize% -fno-%,$(CFLAGS)) $(LDFLAGS) $(WARN) \
	    -pthread $(W_INC) $(CU_INC) -o $@ $< $(CU_LIB) $(W_LIB) $(KVR_LIB) \
	    $(CU_LIBS) $(W_LIBS)

# GPU tests: each checks kernels against CPU references and skips (cmocka
# skip) when no device is present.
$(B)/cutest/%: worker/cuda/test/%.c $(WSUP_OBJ) $(W_LIB) $(CU_LIB) $(KVR_LIB) \
               $(CU_HDR) | $(DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(WCFLAGS) $(filter -fsanitize% -fno-%,$(CFLAGS)) $(LDFLAGS) $(WARN) \
	    -pthread $(W_INC) $(CU_INC) -Iworker/test -o $@ $< $(WSUP_OBJ) \
	    $(CU_LIB) $(W_LIB) $(KVR_LIB) $(CU_LIBS) $(W_LIBS) $(CMOCKA)

# The GPU suite (not in make test: CI has no GPU). Without nvcc it says so
# and passes; without a device every test is skipped. Under
# compute-sanitizer: make test-gpu CUDA_RUN="compute-sanitizer --error-exitcode 1"
.PHONY: test-gpu
ifneq ($(HAVE_CUDA),)
test-gpu: $(CUTEST_BIN)
	@sh scripts/run-unit-tests.sh $(foreach t,$(CUTEST_BIN),"$(CUDA_RUN) $(t)")
else
test-gpu:
	@echo "test-gpu: skipped: no $(NVCC), this build has no CUDA backend"
endif

$(MODULE): $(MOD_SRC) scripts/build-module.sh | $(DEPS)
	bash scripts/build-module.sh $(B)

unit: $(TEST_BIN) $(WTEST_BIN) $(GTEST_BIN) $(DTEST_BIN) $(B)/bin/dynamo-kv \
      $(W_CMD)
	@sh scripts/run-unit-tests.sh $(TEST_BIN) $(WTEST_BIN) $(GTEST_BIN) \
	    $(DTEST_BIN) \
	    "sh kvrouter/test/cli_test.sh $(B)/bin/dynamo-kv" \
	    "sh kvrouter/test/template/conformance.sh $(B)" \
	    "sh kvrouter/test/tokenizer/cli.sh $(B)/bin/dynamo-kv"

test-t: all
	TEST_NGINX_LOAD_MODULES=$(CURDIR)/$(MODULE) DYNAMO_BUILD=$(CURDIR)/$(B) \
	    prove -I t/lib -r t/

# The unit tests again under ASan+UBSan, and the index's concurrency test
# and the engine's thread test under TSan, each in its own build directory.
sanitize:
	$(MAKE) B=$(B)-asan SAN=address,undefined unit
	$(MAKE) B=$(B)-tsan SAN=thread $(B)-tsan/test/test_index_concurrency \
	    $(B)-tsan/wtest/test_engine_thread $(B)-tsan/wtest/test_engine_disagg
	$(B)-tsan/test/test_index_concurrency
	UCX_MEM_EVENTS=no $(B)-tsan/wtest/test_engine_thread   # no libucm hooks
	UCX_MEM_EVENTS=no $(B)-tsan/wtest/test_engine_disagg

fuzz-smoke:
	$(MAKE) FUZZ_SECONDS=$${FUZZ_SECONDS:-5} fuzz

test: unit test-t sanitize fuzz-smoke

bench: $(B)/bin/dynamo-kv $(W_CMD)
	@mkdir -p $(B)/bench
	$(B)/bin/dynamo-kv bench --out $(B)/bench/kvrouter.json
	sh kvrouter/bench/tokenizer_bench.sh $(B)
	sh kvrouter/bench/tokenizer_plot.sh $(B)
	$(B)/bin/dw-proto-bench --json > $(B)/bench/proto.json
	$(B)/bin/dynamo-worker-bench --models $(B)/bench/models \
	    --out $(B)/bench/worker.json
	sh worker/bench/plot.sh $(B)
	$(MAKE) --no-print-directory B=$(B) bench-gateway
	$(MAKE) --no-print-directory B=$(B) bench-client
	$(MAKE) --no-print-directory B=$(B) bench-xfer
	$(MAKE) --no-print-directory B=$(B) bench-disagg

# KV block transfer over UCX against ucx_perftest (worker/XFER.md).
.PHONY: bench-xfer
bench-xfer: $(B)/bin/dw-xfer-bench
	@mkdir -p $(B)/bench
	sh worker/bench/xfer.sh $(B)

# Aggregated against disaggregated serving (mock engines behind the
# gateway): short chat streams while long prompts keep arriving
# (bench/disagg/README.md).
.PHONY: bench-disagg
bench-disagg: $(B)/bin/dynamo-bench $(B)/bin/dynamo-worker $(MODULE)
	@mkdir -p $(B)/bench
	sh bench/disagg/run.sh $(B)

# bench-disagg at several long-prompt rates (about 3 min a rate; not in
# make bench): DISAGG_SWEEP_RATES="3 4.5 6 7.5"
.PHONY: bench-disagg-sweep
bench-disagg-sweep: $(B)/bin/dynamo-bench $(B)/bin/dynamo-worker $(MODULE)
	sh bench/disagg/sweep.sh $(B)

# The cuda backend on a Llama 3.1 8B-shaped model against the GPU's
# bandwidth and GEMM bounds (bench/gpu/README.md; not in make bench).
# Says "skipped" without CUDA or without a GPU.
.PHONY: bench-gpu
bench-gpu: $(B)/bin/dynamo-mkmodel $(CU_CMD)
	sh bench/gpu/run.sh $(B)

# dynamo-bench's own overhead: its measurements against a server with
# scripted timings, from 1 to 1,000 concurrent streams.
.PHONY: bench-client
bench-client: $(B)/bin/dynamo-bench
	@mkdir -p $(B)/bench
	sh bench/client/run.sh $(B)

# Gateway overhead: the same mock workers behind stock proxy_pass and
# behind dynamo_pass (wrk), and tokenize + hash + route on one core.
.PHONY: bench-gateway
bench-gateway: $(B)/bin/dynamo-route-bench $(B)/bin/dynamo-worker \
               $(B)/bin/dynamo-kv $(MODULE)
	@mkdir -p $(B)/bench
	sh bench/gateway/run.sh $(B)

$(B)/bin/dynamo-route-bench: bench/gateway/route_bench.c $(KVR_LIB) | $(DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $(WARN) $(KVR_INC) -o $@ $< $(KVR_LIB) $(LIBS)

$(B)/fuzz/%: kvrouter/fuzz/%.c $(KVR_SRC) $(TOOL_SRC) | $(DEPS)
	@mkdir -p $(dir $@)
	clang -g -O1 -fsanitize=fuzzer,address,undefined $(KVR_INC) -o $@ $< \
	    $(KVR_SRC) $(LIBS)

$(B)/fuzz/%: worker/fuzz/%.c $(W_SRC) $(KVR_SRC) $(W_HDR) | $(DEPS)
	@mkdir -p $(dir $@)
	clang -g -O1 -fsanitize=fuzzer,address,undefined -pthread $(W_INC) -o $@ $< \
	    $(W_SRC) $(KVR_SRC) $(W_LIBS)

$(B)/fuzz/%: ngx_dynamo_module/fuzz/%.c $(GW_PURE) $(KVR_SRC) | $(DEPS)
	@mkdir -p $(dir $@)
	clang -g -O1 -fsanitize=fuzzer,address,undefined $(GW_INC) -o $@ $< \
	    $(GW_PURE) $(KVR_SRC) $(LIBS)

$(B)/fuzz/%: bench/fuzz/%.c $(D_SRC) $(KVR_SRC) $(D_HDR) | $(DEPS)
	@mkdir -p $(dir $@)
	clang -g -O1 -fsanitize=fuzzer,address,undefined $(D_INC) -o $@ $< \
	    $(D_SRC) $(KVR_SRC) $(D_LIBS)

fuzz: $(FUZZ_BIN) $(WFUZZ_BIN) $(GFUZZ_BIN) $(DFUZZ_BIN)
	@for f in $(FUZZ_BIN) $(WFUZZ_BIN) $(GFUZZ_BIN) $(DFUZZ_BIN); do \
	    n=$$(basename $$f); mkdir -p $(B)/fuzz/corpus/$$n; \
	    echo "fuzz: $$n for $${FUZZ_SECONDS:-20}s"; \
	    if ! $$f -max_total_time=$${FUZZ_SECONDS:-20} \
	        -artifact_prefix=$(B)/fuzz/$$n- $(B)/fuzz/corpus/$$n \
	        > $(B)/fuzz/$$n.log 2>&1; then \
	        tail -n 40 $(B)/fuzz/$$n.log; echo "fuzz: $$n FAILED"; exit 1; \
	    fi; \
	    grep -E '^Done [0-9]+ runs' $(B)/fuzz/$$n.log || true; \
	done

run: all
	@sh scripts/run.sh start $(B)

# One prefill and one decode worker behind the gateway (same port, make
# stop); ends with a completion and where its prompt was prefilled.
.PHONY: run-disagg
run-disagg: all
	@sh scripts/run.sh start-disagg $(B)

stop:
	@sh scripts/run.sh stop $(B)

clean:
	rm -rf $(B)

-include $(shell find $(B)/obj $(B)/wobj $(B)/cuobj -name '*.d' 2>/dev/null)
