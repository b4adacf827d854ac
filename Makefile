# Thin wrapper: the real work is in scripts/ and CMakePresets.json.
.PHONY: demo test build idle peers clean
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
clean:
	rm -rf build
