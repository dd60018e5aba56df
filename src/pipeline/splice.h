/* splice.h - changing one top-level member of a client's JSON body while
 * every other byte stays as the client sent it (no float or big-integer
 * rewriting by a JSON round trip). Sans-I/O. */
#ifndef SL_PIPELINE_SPLICE_H
#define SL_PIPELINE_SPLICE_H

#include <stddef.h>

#include "core/buf.h"

/* Writes body to out with every top-level member named key removed and
 * "key":value inserted first. body must be a valid JSON object (the caller
 * has parsed it); value is JSON text. SL_EJSON when body is not an object,
 * SL_ETOOBIG at out's ceiling. */
SL_WARN_UNUSED int sl_json_splice_member(const char *body, size_t len, const char *key,
                                         const char *value, size_t value_len, struct sl_buf *out);

#endif
