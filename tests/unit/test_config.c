/* test_config.c - the settings table: defaults, flags, ranges, help. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "core/config.h"

static void test_defaults(void **state)
{
    (void)state;
    struct sl_config c;
    sl_config_defaults(&c);
    assert_string_equal(c.listen, "127.0.0.1:8080");
    assert_int_equal(c.max_header_bytes, 16384);
    assert_int_equal(c.max_body_bytes, 4 * 1024 * 1024);
    assert_string_equal(c.model, "Qwen/Qwen3-0.6B");
    assert_false(c.reasoning_parser);
    /* sluice closes an idle upstream connection before uvicorn (vLLM) does,
     * at 5 s: else requests are sent on connections being closed. */
    assert_true(c.upstream_idle_timeout_ms > 0 && c.upstream_idle_timeout_ms < 5000);
    sl_config_free(&c);
}

static void test_every_row_is_named_well(void **state)
{
    (void)state;
    for (size_t i = 0; i < sl_config_nrows; i++) {
        const struct sl_cfg_row *r = &sl_config_rows[i];
        for (const char *p = r->name; *p; p++)
            assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_');
        assert_true(strlen(r->help) > 0);
        if (r->type == SL_CFG_INT)
            assert_true(r->min <= r->max);
        /* Durations and sizes carry their unit in the name. */
        if (!strcmp(r->unit, "ms"))
            assert_non_null(strstr(r->name, "_ms"));
        if (!strcmp(r->unit, "bytes"))
            assert_non_null(strstr(r->name, "_bytes"));
    }
}

static void test_flags(void **state)
{
    (void)state;
    struct sl_config c;
    sl_config_defaults(&c);
    char err[256];
    char *argv[] = {"--listen",           "0.0.0.0:9000",  "--itl-ms=7",
                    "--reasoning-parser", "--max_headers", "50"};
    assert_int_equal(sl_config_parse_args(&c, SL_SCOPE_SIM, 6, argv, err, sizeof err), SL_OK);
    assert_string_equal(c.listen, "0.0.0.0:9000");
    assert_int_equal(c.itl_ms, 7);
    assert_true(c.reasoning_parser);
    assert_int_equal(c.max_headers, 50);
    char *argv2[] = {"--no-reasoning-parser"};
    assert_int_equal(sl_config_parse_args(&c, SL_SCOPE_SIM, 1, argv2, err, sizeof err), SL_OK);
    assert_false(c.reasoning_parser);
    sl_config_free(&c);
}

static void test_bad_flags(void **state)
{
    (void)state;
    struct sl_config c;
    sl_config_defaults(&c);
    char err[256];
    char *unknown[] = {"--frobnicate", "1"};
    assert_int_equal(sl_config_parse_args(&c, SL_SCOPE_ALL, 2, unknown, err, sizeof err),
                     SL_ENOTFOUND);
    assert_non_null(strstr(err, "frobnicate"));
    char *range[] = {"--max-header-bytes", "10"};
    assert_int_equal(sl_config_parse_args(&c, SL_SCOPE_ALL, 2, range, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "outside"));
    char *notint[] = {"--itl-ms", "5x"};
    assert_int_equal(sl_config_parse_args(&c, SL_SCOPE_ALL, 2, notint, err, sizeof err), SL_EINVAL);
    char *novalue[] = {"--itl-ms"};
    assert_int_equal(sl_config_parse_args(&c, SL_SCOPE_ALL, 1, novalue, err, sizeof err),
                     SL_EINVAL);
    char *notbool[] = {"--reasoning-parser=maybe"};
    assert_int_equal(sl_config_parse_args(&c, SL_SCOPE_ALL, 1, notbool, err, sizeof err),
                     SL_EINVAL);
    assert_int_equal(c.itl_ms, 20); /* unchanged by the failures */
    sl_config_free(&c);
}

static void test_help_lists_every_row(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    sl_config_print_help(f, SL_SCOPE_ALL);
    fclose(f);
    assert_non_null(strstr(text, "--max-header-bytes"));
    assert_non_null(strstr(text, "--idle-timeout-ms"));
    for (size_t i = 0; i < sl_config_nrows; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s ", sl_config_rows[i].name);
        for (char *p = flag; *p; p++)
            if (*p == '_')
                *p = '-';
        assert_non_null(strstr(text, flag));
    }
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_row_is_named_well),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_bad_flags),
        cmocka_unit_test(test_help_lists_every_row),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
