/*
 * bench_fake_aggregator: the test fake aggregator (tests/support/fake_aggregator.c, see its
 * header for the options) as a standalone binary, BUILD/tests/bench_fake_aggregator, so
 * benchmark scripts (tests/bench/agent_footprint.sh) can give the agent a real gRPC peer for
 * its stream. Built like every tests/bench/bench_*.c; it takes no benchmark arguments of its
 * own: run it with --listen ADDR --dir DIR [--port-file PATH] ...
 */
#include "../support/fake_aggregator.c"
