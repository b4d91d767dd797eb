"""The benchmark harness for issue 7: `make bench` (bench.run) and `make soak` (bench.soak).

Everything here runs on 127.0.0.1 only, with every load loop bounded in time. The
gateway is pinned to CPU 0; the mock upstream and the load clients share CPU 1, so the
gateway's numbers are per core and the clients never steal its cycles.
"""
