/* splice.h - changing one top-level member of a client's JSON body while
 * every other byte stays as the client sent it (no float or big-integer
 * rewriting by a JSON round trip). Sans-I/O. */
#ifndef SL_PIPELINE_SPLICE_H
#define SL_PIPELINE_SPLICE_H

#include <stddef.h>

#include "core/buf.h"

/* Writes body to out with the value of the top-level member named key
 * replaced by value (every occurrence), or, when there is none, with
 * "key":value added as the last member; every other byte is copied as it
 * was. body must be a valid JSON object (the caller has parsed it); value
 * is JSON text. SL_EJSON when body is not an object, SL_ETOOBIG at out's
 * ceiling (out is then as it was). */
SL_WARN_UNUSED int sl_json_splice_member(const char *body, size_t len, const char *key,
                                         const char *value, size_t value_len, struct sl_buf *out);

/* Finds the value of the last top-level member named key in a JSON object
 * (validated by the caller): SL_OK with its offset and length, SL_ENOTFOUND,
 * or SL_EJSON when body is not an object. */
SL_WARN_UNUSED int sl_json_find_member(const char *body, size_t len, const char *key, size_t *voff,
                                       size_t *vlen);

#endif
