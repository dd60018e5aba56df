/* test_buf.c - the bounded buffer and its JSON string escaper (core/buf). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/buf.h"
#include "http/status.h"
#include "oai/error.h"

static void test_append_within_ceiling(void **state)
{
    (void)state;
    struct sl_buf b;
    sl_buf_init(&b, 8);
    assert_int_equal(sl_buf_append(&b, "abcd", 4), SL_OK);
    assert_int_equal(sl_buf_append(&b, "efgh", 4), SL_OK);
    assert_int_equal(sl_buf_size(&b), 8);
    assert_int_equal(sl_buf_append(&b, "i", 1), SL_ETOOBIG);
    assert_int_equal(sl_buf_size(&b), 8);
    assert_memory_equal(sl_buf_ptr(&b), "abcdefgh", 8);
    sl_buf_free(&b);
}

static void test_consume_frees_room(void **state)
{
    (void)state;
    struct sl_buf b;
    sl_buf_init(&b, 6);
    assert_int_equal(sl_buf_append(&b, "abcdef", 6), SL_OK);
    sl_buf_consume(&b, 4);
    assert_int_equal(sl_buf_size(&b), 2);
    assert_int_equal(sl_buf_append(&b, "ghij", 4), SL_OK);
    assert_memory_equal(sl_buf_ptr(&b), "efghij", 6);
    sl_buf_consume(&b, 6);
    assert_int_equal(sl_buf_size(&b), 0);
    sl_buf_free(&b);
}

static void test_printf_long(void **state)
{
    (void)state;
    struct sl_buf b;
    sl_buf_init(&b, 4096);
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(sl_buf_printf(&b, "<%s>", big), SL_OK);
    assert_int_equal(sl_buf_size(&b), 601);
    assert_int_equal(sl_buf_printf(&b, "%s%s%s%s%s%s%s", big, big, big, big, big, big, big),
                     SL_ETOOBIG);
    assert_int_equal(sl_buf_size(&b), 601);
    sl_buf_free(&b);
}

static void test_integers(void **state)
{
    (void)state;
    struct sl_buf b;
    sl_buf_init(&b, 256);
    assert_int_equal(sl_buf_put_u64(&b, 0), SL_OK);
    assert_int_equal(sl_buf_puts(&b, " "), SL_OK);
    assert_int_equal(sl_buf_put_u64(&b, UINT64_MAX), SL_OK);
    assert_int_equal(sl_buf_puts(&b, " "), SL_OK);
    assert_int_equal(sl_buf_put_i64(&b, INT64_MIN), SL_OK);
    assert_int_equal(sl_buf_append(&b, "", 1), SL_OK);
    assert_string_equal(sl_buf_ptr(&b), "0 18446744073709551615 -9223372036854775808");
    sl_buf_free(&b);
}

static void test_json_escaping(void **state)
{
    (void)state;
    struct sl_buf b;
    sl_buf_init(&b, 256);
    const char in[] = "a\"b\\c\n\r\t\b\f\x01\x1f \xf0\x9f\x98\x8a/";
    assert_int_equal(sl_buf_put_json_str(&b, in, sizeof in - 1), SL_OK);
    const char want[] = "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f \xf0\x9f\x98\x8a/\"";
    assert_int_equal(sl_buf_size(&b), sizeof want - 1);
    assert_memory_equal(sl_buf_ptr(&b), want, sizeof want - 1);
    sl_buf_free(&b);
}

static void test_json_escaping_is_all_or_nothing(void **state)
{
    (void)state;
    struct sl_buf b;
    sl_buf_init(&b, 10);
    assert_int_equal(sl_buf_append(&b, "ab", 2), SL_OK);
    assert_int_equal(sl_buf_put_json_str(&b, "\n\n\n\n", 4), SL_ETOOBIG);
    assert_int_equal(sl_buf_size(&b), 2);
    sl_buf_free(&b);
}

static void test_take(void **state)
{
    (void)state;
    struct sl_buf b;
    sl_buf_init(&b, 64);
    assert_int_equal(sl_buf_append(&b, "hello world", 11), SL_OK);
    sl_buf_consume(&b, 6);
    size_t n;
    char *p = sl_buf_take(&b, &n);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "world", 5);
    assert_int_equal(sl_buf_size(&b), 0);
    free(p);
    assert_null(sl_buf_take(&b, &n));
    sl_buf_free(&b);
}

static void test_error_shape(void **state)
{
    (void)state;
    struct sl_buf b;
    sl_buf_init(&b, 512);
    assert_int_equal(sl_error_render(&b, 404, NULL, "The model `x\"` does not exist.", "model"),
                     SL_OK);
    assert_int_equal(sl_buf_append(&b, "", 1), SL_OK);
    assert_string_equal(sl_buf_ptr(&b),
                        "{\"error\":{\"message\":\"The model `x\\\"` does not exist.\","
                        "\"type\":\"NotFoundError\",\"param\":\"model\",\"code\":404}}");
    sl_buf_reset(&b);
    assert_int_equal(sl_error_render(&b, 431, NULL, "too big", NULL), SL_OK);
    assert_int_equal(sl_buf_append(&b, "", 1), SL_OK);
    assert_non_null(strstr(sl_buf_ptr(&b), "\"param\":null,\"code\":431}}"));
    assert_string_equal(sl_http_reason(431), "Request Header Fields Too Large");
    sl_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_within_ceiling),
        cmocka_unit_test(test_consume_frees_room),
        cmocka_unit_test(test_printf_long),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_json_escaping_is_all_or_nothing),
        cmocka_unit_test(test_take),
        cmocka_unit_test(test_error_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
