/* status.h - the HTTP statuses sluice sends or passes on, by number.
 * Owns: each status's reason phrase (RFC 9110 section 15; 499 is nginx's).
 * Does not own: error bodies and their type names (oai/error.h). */
#ifndef SL_HTTP_STATUS_H
#define SL_HTTP_STATUS_H

/* The reason phrase of an HTTP status ("Not Found"), "Unknown" otherwise. */
const char *sl_http_reason(int status);

#endif
