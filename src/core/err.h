/* err.h - the one list of sluice error codes.
 * Owns: the SL_E* codes (0 or negative), their names and messages.
 * Does not own: HTTP statuses or OpenAI error JSON (http/status.h, oai/error.h). */
#ifndef SL_ERR_H
#define SL_ERR_H

#define SL_WARN_UNUSED __attribute__((warn_unused_result))

/* X(name, value, message) */
#define SL_ERRNO_MAP(X)                                                                            \
    X(SL_OK, 0, "success")                                                                         \
    X(SL_EAGAIN, -1, "need more input")                                                            \
    X(SL_EINVAL, -2, "invalid argument")                                                           \
    X(SL_ENOMEM, -3, "out of memory")                                                              \
    X(SL_ETOOBIG, -4, "over a configured bound")                                                   \
    X(SL_EBADREQ, -5, "malformed request")                                                         \
    X(SL_EURITOOLONG, -6, "request target too long")                                               \
    X(SL_EHDRTOOBIG, -7, "request header fields too large")                                        \
    X(SL_ETOOMANYHDRS, -8, "too many header fields")                                               \
    X(SL_EBODYTOOBIG, -9, "request body too large")                                                \
    X(SL_EVERSION, -10, "HTTP version not supported")                                              \
    X(SL_ENOTIMPL, -11, "not implemented")                                                         \
    X(SL_ETIMEDOUT, -12, "timed out")                                                              \
    X(SL_EUNAVAIL, -13, "unavailable")                                                             \
    X(SL_ECLOSED, -14, "connection closed")                                                        \
    X(SL_EJSON, -15, "invalid JSON")                                                               \
    X(SL_ENOTFOUND, -16, "not found")                                                              \
    X(SL_EPROTO, -17, "peer does not speak HTTP")                                                  \
    X(SL_EGONE, -18, "no longer held")

enum sl_err {
#define SL__ERR_ENUM(name, value, msg) name = value,
    SL_ERRNO_MAP(SL__ERR_ENUM)
#undef SL__ERR_ENUM
};

/* Returns a static message for an SL_E* code ("unknown error" otherwise). */
const char *sl_strerror(int err);
/* Returns the code's name, for example "SL_EBADREQ". */
const char *sl_errname(int err);

#endif
