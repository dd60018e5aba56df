/* fault.c - strict parser of the simulator's fault JSON (see fault.h).
 * Owns: kind names, defaults, bounds and the error messages a client sees.
 * Does not own: what a fault does to a response. */
#include "sim/fault.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    enum sl__sim_fault_kind kind;
} kinds[] = {
    {"error_before_first", SL__SIM_FAULT_ERROR_BEFORE_FIRST},
    {"drop_after", SL__SIM_FAULT_DROP_AFTER},
    {"stall_after", SL__SIM_FAULT_STALL_AFTER},
    {"inband_error_after", SL__SIM_FAULT_INBAND_ERROR_AFTER},
    {"done_without_finish", SL__SIM_FAULT_DONE_WITHOUT_FINISH},
};

#define KIND_LIST                                                                                  \
    "error_before_first, drop_after, stall_after, inband_error_after, done_without_finish"

static int get_int(const json_t *obj, const char *key, int64_t lo, int64_t hi, int64_t *out,
                   char *err, size_t errlen)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(err, errlen, "x_fault: \"%s\" must be an integer from %lld to %lld", key,
                 (long long)lo, (long long)hi);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

int sl__sim_fault_parse_json(const json_t *v, struct sl__sim_fault *f, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    f->ms = -1;
    f->status = 500;
    if (!json_is_object(v)) {
        snprintf(err, errlen,
                 "x_fault must be a JSON object such as {\"kind\": \"drop_after\", "
                 "\"n\": 3}");
        return -1;
    }
    const char *key;
    const json_t *member;
    json_object_foreach((json_t *)v, key, member)
    {
        if (strcmp(key, "kind") != 0 && strcmp(key, "n") != 0 && strcmp(key, "ms") != 0 &&
            strcmp(key, "status") != 0) {
            snprintf(err, errlen, "x_fault: unknown member \"%.64s\" (known: kind, n, ms, status)",
                     key);
            return -1;
        }
    }
    const json_t *kind = json_object_get(v, "kind");
    if (!json_is_string(kind)) {
        snprintf(err, errlen, "x_fault: \"kind\" must be a string, one of " KIND_LIST);
        return -1;
    }
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(json_string_value(kind), kinds[i].name) == 0)
            f->kind = kinds[i].kind;
    if (f->kind == SL__SIM_FAULT_NONE) {
        snprintf(err, errlen, "x_fault: unknown kind \"%.64s\" (known: " KIND_LIST ")",
                 json_string_value(kind));
        return -1;
    }
    int64_t status = 500;
    if (get_int(v, "n", 0, SL__SIM_FAULT_MAX_N, &f->n, err, errlen) < 0 ||
        get_int(v, "ms", 0, SL__SIM_FAULT_MAX_MS, &f->ms, err, errlen) < 0 ||
        get_int(v, "status", 400, 599, &status, err, errlen) < 0)
        return -1;
    f->status = (int)status;
    return 0;
}

int sl__sim_fault_parse_str(const char *s, size_t len, struct sl__sim_fault *f, char *err,
                            size_t errlen)
{
    memset(f, 0, sizeof *f);
    f->ms = -1;
    f->status = 500;
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    if (i == len)
        return 0;
    json_error_t je;
    json_t *v = json_loadb(s, len, 0, &je);
    if (v == NULL) {
        snprintf(err, errlen, "x_fault is not valid JSON: %s (at byte %d)", je.text, je.position);
        return -1;
    }
    int rc = sl__sim_fault_parse_json(v, f, err, errlen);
    json_decref(v);
    return rc;
}
