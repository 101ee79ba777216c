#ifndef RSRE_DAEMON_WIRE_ABSL_H
#define RSRE_DAEMON_WIRE_ABSL_H

/*
 * Turns off abseil's mutex deadlock detection for the whole process, as the agent does
 * (agent/footprint.c). Debian 12's abseil is built with it on, so every absl::Mutex that gRPC
 * core takes records lock-order edges in a global graph (GraphCycles): 5-6 % of the aggregator's
 * CPU at 100k signals/s (docs/performance.md, "Aggregator under load"). Release builds of
 * abseil (NDEBUG) have it off; nothing else changes. The setter is a C++ function, looked up
 * by its mangled name with dlsym; when this abseil does not export it, nothing happens.
 * Call once, early in main(). Returns 1 when detection was turned off, 0 otherwise.
 */
int rsre_absl_deadlock_detection_off(void);

#endif
