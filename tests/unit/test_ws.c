/* test_ws.c - the WebSocket face's sans-I/O parts (face/ws): the handshake's
 * accept key (RFC 6455's own example) and the client messages (create keeps
 * the body's bytes, follow, cancel, and every way a message can be wrong).
 * The socket side is tested over real sockets in tests/integration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "face/ws.h"

static void test_accept_key_rfc_example(void **state)
{
    (void)state;
    char out[SL_WS_ACCEPT_CHARS + 1];
    /* RFC 6455 section 1.3. */
    assert_int_equal(sl_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out), SL_OK);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* The key is read by length, not up to a NUL. */
    assert_int_equal(sl_ws_accept_key("AAAAAAAAAAAAAAAAAAAAAA==trailing", 24, out), SL_OK);
    assert_int_equal(strlen(out), SL_WS_ACCEPT_CHARS);
}

static void test_accept_key_rejects_bad_keys(void **state)
{
    (void)state;
    char out[SL_WS_ACCEPT_CHARS + 1];
    const char *bad[] = {
        "",
        "dGhlIHNhbXBsZSBub25jZQ=",   /* short */
        "dGhlIHNhbXBsZSBub25jZQ===", /* long */
        "dGhlIHNhbXBsZSBub25jZQAA",  /* no padding: 18 bytes */
        "dGhlIHNhbXBsZSBub25jZ*==",  /* not base64 */
        "dGhlIHNhbXBsZSBub25j ZQ=",  /* a space */
        "dGhlIHNhbXBsZSBub25jZ-==",  /* URL-safe alphabet */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sl_ws_accept_key(bad[i], strlen(bad[i]), out), SL_EINVAL);
}

static int parse(const char *text, struct sl_ws_msg *m, char *err)
{
    return sl_ws_parse_msg(text, strlen(text), m, err, 256);
}

static void test_create_keeps_body_bytes(void **state)
{
    (void)state;
    struct sl_ws_msg m;
    char err[256];
    /* Floats would change in a JSON round trip; spaces are kept too. */
    const char *body = "{ \"model\": \"m\", \"temperature\": 0.1000, \"top_p\": 1e-7,"
                       " \"messages\": [{\"role\":\"user\",\"content\":\"a \\\"q\\\" }\"}] }";
    char text[512];
    snprintf(text, sizeof text, "{\"type\":\"create\",\n \"body\" :  %s , \"ref\":\"r1\"}", body);
    assert_int_equal(parse(text, &m, err), SL_OK);
    assert_int_equal(m.type, SL_WS_MSG_CREATE);
    assert_int_equal(m.body_len, strlen(body));
    assert_memory_equal(m.body, body, strlen(body));
    assert_int_equal(m.ref_len, 4);
    assert_memory_equal(m.ref, "\"r1\"", 4);
}

static void test_create_with_escaped_member_names(void **state)
{
    (void)state;
    struct sl_ws_msg m;
    char err[256];
    /* jansson reads escaped names; the body's bytes are found by a name
     * written plainly only, which the message says. */
    const char *text = "{\"typ\\u0065\":\"create\",\"body\":{\"a\":[1,{\"b\":\"}\"}]}}";
    assert_int_equal(parse(text, &m, err), SL_OK);
    assert_int_equal(m.type, SL_WS_MSG_CREATE);
    assert_int_equal(m.body_len, strlen("{\"a\":[1,{\"b\":\"}\"}]}"));
    assert_memory_equal(m.body, "{\"a\":[1,{\"b\":\"}\"}]}", m.body_len);
    assert_null(m.ref);
    text = "{\"type\":\"create\",\"\\u0062ody\":{}}";
    assert_int_equal(parse(text, &m, err), SL_EINVAL);
    assert_non_null(strstr(err, "without escapes"));
}

static void test_numbers_and_nul(void **state)
{
    (void)state;
    struct sl_ws_msg m;
    char err[256];
    /* A seed past int64 is fine JSON, as on the HTTP faces. */
    const char *body = "{\"seed\":18446744073709551615,\"s\":\"a\\u0000b\"}";
    char text[256];
    snprintf(text, sizeof text, "{\"type\":\"create\",\"body\":%s}", body);
    assert_int_equal(parse(text, &m, err), SL_OK);
    assert_memory_equal(m.body, body, strlen(body));
    assert_int_equal(
        parse("{\"type\":\"follow\",\"id\":\"0123456789012345678901\",\"after\":3.0}", &m, err),
        SL_OK);
    assert_int_equal(m.after, 3);
    assert_int_equal(parse("{\"type\":\"follow\",\"id\":\"0123456789012345678901\","
                           "\"after\":9007199254740992}",
                           &m, err),
                     SL_OK);
    assert_int_equal(m.after, 9007199254740992ull);
    assert_int_equal(parse("{\"type\":\"follow\",\"id\":\"0123456789012345678901\","
                           "\"after\":1e300}",
                           &m, err),
                     SL_EINVAL);
    /* A NUL inside the type is no type of ours. */
    assert_int_equal(parse("{\"type\":\"create\\u0000\",\"body\":{}}", &m, err), SL_EINVAL);
    assert_int_equal(
        parse("{\"type\":\"cancel\",\"id\":\"012345678901234567890\\u0000\"}", &m, err),
        SL_ENOTFOUND);
}

static void test_follow_and_cancel(void **state)
{
    (void)state;
    struct sl_ws_msg m;
    char err[256];
    assert_int_equal(
        parse("{\"type\":\"follow\",\"id\":\"abcdefghijklmnopqrstu-\",\"after\":12}", &m, err),
        SL_OK);
    assert_int_equal(m.type, SL_WS_MSG_FOLLOW);
    assert_string_equal(m.id, "abcdefghijklmnopqrstu-");
    assert_int_equal(m.after, 12);
    assert_false(m.has_token);

    assert_int_equal(parse("{\"type\":\"follow\",\"id\":\"abcdefghijklmnopqrstu_\","
                           "\"token\":\"ABCDEFGHIJKLMNOPQRSTUV\"}",
                           &m, err),
                     SL_OK);
    assert_int_equal(m.after, 0); /* from the start */
    assert_true(m.has_token);
    assert_string_equal(m.token, "ABCDEFGHIJKLMNOPQRSTUV");

    /* A token of another length is kept as one that never matches. */
    assert_int_equal(
        parse("{\"type\":\"follow\",\"id\":\"abcdefghijklmnopqrstu_\",\"token\":\"x\"}", &m, err),
        SL_OK);
    assert_true(m.has_token);
    assert_string_equal(m.token, "");

    assert_int_equal(
        parse("{\"ref\":[1,2],\"type\":\"cancel\",\"id\":\"0123456789012345678901\"}", &m, err),
        SL_OK);
    assert_int_equal(m.type, SL_WS_MSG_CANCEL);
    assert_string_equal(m.id, "0123456789012345678901");
    assert_memory_equal(m.ref, "[1,2]", m.ref_len);
}

static void test_bad_messages(void **state)
{
    (void)state;
    struct sl_ws_msg m;
    char err[256];
    static const struct {
        const char *text;
        int rc;
    } cases[] = {
        {"", SL_EJSON},
        {"not json", SL_EJSON},
        {"[1,2]", SL_EJSON},
        {"\"create\"", SL_EJSON},
        {"{\"type\":\"create\"", SL_EJSON},
        {"{\"type\":\"create\",\"type\":\"cancel\"}", SL_EJSON}, /* duplicate keys */
        {"{}", SL_EINVAL},
        {"{\"type\":7}", SL_EINVAL},
        {"{\"type\":\"delete\",\"id\":\"0123456789012345678901\"}", SL_EINVAL},
        {"{\"type\":\"create\"}", SL_EINVAL},
        {"{\"type\":\"create\",\"body\":[]}", SL_EINVAL},
        {"{\"type\":\"create\",\"body\":\"{}\"}", SL_EINVAL},
        {"{\"type\":\"follow\"}", SL_EINVAL},
        {"{\"type\":\"follow\",\"id\":5}", SL_EINVAL},
        {"{\"type\":\"follow\",\"id\":\"short\"}", SL_ENOTFOUND},
        {"{\"type\":\"cancel\",\"id\":\"0123456789012345678901x\"}", SL_ENOTFOUND},
        {"{\"type\":\"cancel\",\"id\":\"0123456789 12345678901\"}", SL_ENOTFOUND},
        {"{\"type\":\"follow\",\"id\":\"0123456789012345678901\",\"after\":-1}", SL_EINVAL},
        {"{\"type\":\"follow\",\"id\":\"0123456789012345678901\",\"after\":1.5}", SL_EINVAL},
        {"{\"type\":\"follow\",\"id\":\"0123456789012345678901\",\"after\":true}", SL_EINVAL},
        {"{\"type\":\"follow\",\"id\":\"0123456789012345678901\",\"after\":\"3\"}", SL_EINVAL},
        {"{\"type\":\"follow\",\"id\":\"0123456789012345678901\",\"token\":1}", SL_EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        strcpy(err, "");
        int rc = parse(cases[i].text, &m, err);
        if (rc != cases[i].rc)
            fail_msg("%s: got %d, want %d (%s)", cases[i].text, rc, cases[i].rc, err);
        assert_true(strlen(err) > 0);
    }
}

static void test_ref_bound_and_echo_on_error(void **state)
{
    (void)state;
    struct sl_ws_msg m;
    char err[256];
    /* An error after the ref was read still carries it. */
    assert_int_equal(parse("{\"ref\":{\"n\":1},\"type\":\"nope\"}", &m, err), SL_EINVAL);
    assert_non_null(m.ref);
    assert_memory_equal(m.ref, "{\"n\":1}", m.ref_len);

    char text[SL_WS_REF_MAX + 64];
    char ref[SL_WS_REF_MAX + 8];
    memset(ref, 'x', sizeof ref);
    ref[0] = '"';
    ref[SL_WS_REF_MAX - 1] = '"'; /* exactly SL_WS_REF_MAX bytes of JSON */
    ref[SL_WS_REF_MAX] = '\0';
    snprintf(text, sizeof text,
             "{\"type\":\"cancel\",\"id\":\"0123456789012345678901\",\"ref\":%s}", ref);
    assert_int_equal(parse(text, &m, err), SL_OK);
    assert_int_equal(m.ref_len, SL_WS_REF_MAX);
    ref[SL_WS_REF_MAX - 1] = 'x';
    ref[SL_WS_REF_MAX] = '"';
    ref[SL_WS_REF_MAX + 1] = '\0';
    snprintf(text, sizeof text,
             "{\"type\":\"cancel\",\"id\":\"0123456789012345678901\",\"ref\":%s}", ref);
    assert_int_equal(parse(text, &m, err), SL_EINVAL);
}

/* The message of an error message: UTF-8 JSON even when the text quotes
 * the client's cut anywhere, and bounded. */
static void test_put_message(void **state)
{
    (void)state;
    struct sl_buf b;
    sl_buf_init(&b, 1 << 16);
    assert_int_equal(sl_ws_put_message(&b, "unknown \"\xc3\xa9\xc3\" x"), SL_OK);
    assert_string_equal(sl_buf_cstr(&b), "\"unknown \\\"\xc3\xa9?\\\" x\"");
    sl_buf_reset(&b);
    char big[3000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(sl_ws_put_message(&b, big), SL_OK);
    assert_int_equal(sl_buf_size(&b), 2048 + 2);
    sl_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key_rfc_example),
        cmocka_unit_test(test_accept_key_rejects_bad_keys),
        cmocka_unit_test(test_create_keeps_body_bytes),
        cmocka_unit_test(test_create_with_escaped_member_names),
        cmocka_unit_test(test_numbers_and_nul),
        cmocka_unit_test(test_follow_and_cancel),
        cmocka_unit_test(test_bad_messages),
        cmocka_unit_test(test_ref_bound_and_echo_on_error),
        cmocka_unit_test(test_put_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
