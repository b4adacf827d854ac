# Thin wrapper: the real work is in scripts/ and CMakePresets.json.
.PHONY: demo test build idle peers bigdata clean
demo:            ## set up, build, run the ~20 s live demo (server + load + report + drain)
	bash scripts/demo.sh
test:            ## set up, build, run every test (release, ASan+UBSan, TSan) and the fuzzers
	bash scripts/test.sh
build:
	bash scripts/setup.sh && cmake --preset release >/dev/null && cmake --build --preset release
idle:            ## hold 19,000 idle connections on each engine, print RSS and bytes/conn
	bash experiments/idle_conns.sh
peers:           ## c10m (epoll, thread) vs Asio, libuv, Go, Tokio, echo_peer: table, JSON, chart (~11 min)
	bash experiments/peers.sh
bigdata: build   ## Stage-1 experiments (FINDINGS 9): vs iperf3, zero copy, allocations, Nagle, slow consumers, buffer sizing, 100 GB (~40 min, root)
	experiments/throughput.py run --rounds 3 && experiments/throughput.py report
	experiments/zerocopy.py run --rounds 2 && experiments/zerocopy.py profile && experiments/zerocopy.py report
	experiments/pool_alloc.py run && experiments/pool_alloc.py report
	experiments/nagle.py run && experiments/nagle.py report
	experiments/slow_consumer.py run && experiments/slow_consumer.py report
	experiments/bufsize.py run && experiments/bufsize.py report
	experiments/bigrun.py run --seconds 90 && experiments/bigrun.py report
clean:
	rm -rf build
