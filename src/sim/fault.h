/* fault.h - the simulator's fault descriptions, parsed from JSON.
 * Owns: the fault kinds and the strict parser of {"kind","n","ms","status"}
 * (from a request's x_fault member, the X-Fault header or --fault). Does not
 * own: acting on a fault (sim.c does). Private to src/sim/. */
#ifndef SL_SIM_FAULT_H
#define SL_SIM_FAULT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum sl__sim_fault_kind {
    SL__SIM_FAULT_NONE = 0,
    SL__SIM_FAULT_ERROR_BEFORE_FIRST,
    SL__SIM_FAULT_DROP_AFTER,
    SL__SIM_FAULT_STALL_AFTER,
    SL__SIM_FAULT_INBAND_ERROR_AFTER,
    SL__SIM_FAULT_DONE_WITHOUT_FINISH,
};

struct sl__sim_fault {
    enum sl__sim_fault_kind kind;
    int64_t n;  /* deltas before the fault (default 0) */
    int64_t ms; /* delay (error_before_first) or stall length; -1: not given */
    int status; /* HTTP or in-band error code (default 500) */
};

/* Largest "n" and "ms" accepted: a day of stall, a billion deltas. */
#define SL__SIM_FAULT_MAX_N  1000000000LL
#define SL__SIM_FAULT_MAX_MS 86400000LL

/* Parses a fault object. Returns 0, or -1 with a message in err. An empty
 * or all-blank string parses as "no fault". */
int sl__sim_fault_parse_str(const char *s, size_t len, struct sl__sim_fault *f, char *err,
                            size_t errlen);
int sl__sim_fault_parse_json(const json_t *v, struct sl__sim_fault *f, char *err, size_t errlen);

#endif
