# Thin wrapper: the real work is in scripts/ and CMakePresets.json.
.PHONY: demo test build ladder idle peers c100k c1m accept exhaustion bigdata clean
demo:            ## set up, build, run the ~20 s live demo (server + load + report + drain)
	bash scripts/demo.sh
test:            ## set up, build, run every test (release, ASan+UBSan, TSan) and the fuzzers
	bash scripts/test.sh
build:
	bash scripts/setup.sh && cmake --preset release >/dev/null && cmake --build --preset release
ladder: build    ## climb this box (probe, plan, C10K/C100K/C1M, walls named): results/ladder/<host>-<date>/report.html (~30 min; BUDGET=5m, RUNGS=box,c10k, FULL=1)
	experiments/ladder/c10m-ladder run --budget $${BUDGET:-30m} $${RUNGS:+--rungs $$RUNGS} $${FULL:+--full}
idle:            ## hold 19,000 idle connections on each engine, print RSS and bytes/conn
	bash experiments/idle_conns.sh
peers:           ## c10m (default config, epoll, uring, thread) vs Asio, libuv, Go, Tokio, echo_peer: table, JSON, chart (~13 min)
	bash experiments/peers.sh
c100k:           ## 100,000 connections (server --workers, client --procs/--srcips): memory, connect rate, p99, CPU per frame
	RUNG=c100k CONNS=100000 ENGINES="$${ENGINES:-epoll thread}" RATES="$${RATES:-0 20000}" DURATION=$${DURATION:-20} bash experiments/conn_rung.sh
c1m:             ## 1,000,000 connections, 5% active: 50,000 ECHO/s mixed payloads, then a drain (~6 min per rate, ~13 GiB; own netns, EHASH= for the shared table)
	RUNG=c1m CONNS=1000000 ENGINES=epoll RATES="$${RATES:-50000}" DURATION=$${DURATION:-60} RAMP=$${RAMP:-15000} EHASH=$${EHASH-2097152} bash experiments/conn_rung.sh
accept:          ## experiment 9: accept strategies under a connect-and-close storm (~2 min)
	bash experiments/accept_storm.sh
exhaustion:      ## experiment 8: server EMFILE, client EADDRNOTAVAIL and --srcips, TIME_WAIT under a storm (~1.5 min)
	bash experiments/port_exhaustion.sh
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
