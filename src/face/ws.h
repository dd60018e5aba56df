/* ws.h - the WebSocket face (GET /v1/ws): the stream face's events as JSON
 * text frames over RFC 6455 (framing, ping/pong and close by wslay).
 * Owns: the handshake, the client's messages (create, follow, cancel), the
 * server's messages (created, event, error), following several streams on
 * one socket. Does not own: the log, the store, rendering events (render.c),
 * following (follow.c), HTTP (server.c). */
#ifndef SL_FACE_WS_H
#define SL_FACE_WS_H

#include <stddef.h>
#include <stdint.h>

#include "face/openai.h"

/* Sec-WebSocket-Accept: base64 of a SHA-1 digest, without the NUL. */
#define SL_WS_ACCEPT_CHARS 28
/* The longest "ref" a client may tag a message with (raw JSON bytes): it is
 * echoed in the answers to that message. */
#define SL_WS_REF_MAX 256

/* Computes Sec-WebSocket-Accept for the client's Sec-WebSocket-Key (key,
 * len bytes, not NUL-terminated) into out (NUL-terminated). SL_EINVAL when
 * the key is not 16 bytes in base64 (RFC 6455 4.2.1), SL_ENOMEM. */
SL_WARN_UNUSED int sl_ws_accept_key(const char *key, size_t len, char out[SL_WS_ACCEPT_CHARS + 1]);

enum sl_ws_msg_type {
    SL_WS_MSG_CREATE, /* {"type":"create","body":{...}} */
    SL_WS_MSG_FOLLOW, /* {"type":"follow","id":"...","after":N,"token":"..."} */
    SL_WS_MSG_CANCEL, /* {"type":"cancel","id":"..."} */
};

/* A client message. Pointers borrow from the message's bytes. */
struct sl_ws_msg {
    enum sl_ws_msg_type type;
    char id[SL_STREAM_ID_CHARS + 1]; /* follow, cancel */
    uint64_t after;                  /* follow: events after this seq (0: all) */
    bool has_token;                  /* follow: a read token was given */
    char token[SL_STREAM_ID_CHARS + 1];
    const char *body; /* create: the body object exactly as the client wrote it */
    size_t body_len;
    const char *ref; /* any message: the "ref" value's JSON text, or NULL */
    size_t ref_len;
};

/* Parses one text message (len bytes) into out. SL_OK; SL_ENOTFOUND when
 * the id is a string that no stream can have (answer 404); SL_EJSON when it
 * is not a JSON object; SL_EINVAL for an unknown type, a missing or
 * mistyped member, or a ref over SL_WS_REF_MAX. On an error err gets a
 * message for the client, and out->ref is set when the message had one. */
SL_WARN_UNUSED int sl_ws_parse_msg(const char *p, size_t len, struct sl_ws_msg *out, char *err,
                                   size_t errlen);

/* Appends s (NUL-terminated) to b as a JSON string, cut at 2048 bytes,
 * with every byte that does not begin a whole UTF-8 sequence replaced by
 * '?': the message of an error message. SL_ETOOBIG, SL_ENOMEM from b. */
SL_WARN_UNUSED int sl_ws_put_message(struct sl_buf *b, const char *s);

/* Answers GET /v1/ws: checks the handshake (400, 405, or 426 for another
 * Sec-WebSocket-Version), then upgrades and serves the socket until either
 * side closes. Takes over ex. */
void sl_ws_handle(struct sl_openai *oa, struct sl_http_exchange *ex);

#endif
