/* config.c - defaults, flag parsing and help for the config table (config.h). */
#include "core/config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const struct sl_cfg_row sl_config_rows[] = {
#define SL__CFG_ROW(name, type, unit, min, max, def, scope, help)                                  \
    {#name, SL_CFG_##type, unit, min, max, def, scope, help, offsetof(struct sl_config, name)},
    SL_CONFIG_ROWS(SL__CFG_ROW)
#undef SL__CFG_ROW
};
const size_t sl_config_nrows = sizeof sl_config_rows / sizeof sl_config_rows[0];

/* Copied strings are chained: each block starts with the previous block. */
static const char *keep_string(struct sl_config *cfg, const char *s)
{
    size_t n = strlen(s);
    char *blk = malloc(sizeof(char *) + n + 1);
    if (blk == NULL)
        return NULL;
    memcpy(blk, &cfg->owned_, sizeof(char *));
    memcpy(blk + sizeof(char *), s, n + 1);
    cfg->owned_ = blk;
    return blk + sizeof(char *);
}

void sl_config_free(struct sl_config *cfg)
{
    char *blk = cfg->owned_;
    while (blk != NULL) {
        char *next;
        memcpy(&next, blk, sizeof(char *));
        free(blk);
        blk = next;
    }
    cfg->owned_ = NULL;
}

static int parse_value(struct sl_config *cfg, const struct sl_cfg_row *row, const char *value,
                       char *err, size_t errlen)
{
    char *field = (char *)cfg + row->offset;
    switch (row->type) {
    case SL_CFG_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0') {
            snprintf(err, errlen, "--%s: '%s' is not an integer", row->name, value);
            return SL_EINVAL;
        }
        if (v < row->min || v > row->max) {
            snprintf(err, errlen, "--%s: %lld is outside %lld..%lld %s", row->name, v,
                     (long long)row->min, (long long)row->max, row->unit);
            return SL_EINVAL;
        }
        int64_t v64 = v;
        memcpy(field, &v64, sizeof v64);
        return SL_OK;
    }
    case SL_CFG_BOOL: {
        bool b;
        if (!strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes"))
            b = true;
        else if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no"))
            b = false;
        else {
            snprintf(err, errlen, "--%s: '%s' is not true or false", row->name, value);
            return SL_EINVAL;
        }
        memcpy(field, &b, sizeof b);
        return SL_OK;
    }
    case SL_CFG_STR: {
        const char *s = keep_string(cfg, value);
        if (s == NULL) {
            snprintf(err, errlen, "out of memory");
            return SL_ENOMEM;
        }
        memcpy(field, &s, sizeof s);
        return SL_OK;
    }
    case SL_CFG_LIST: {
        struct sl_cfg_list *l = (struct sl_cfg_list *)(void *)field;
        if (l->n >= (size_t)row->max || l->n >= SL_LIMIT_UPSTREAMS) {
            snprintf(err, errlen, "--%s: at most %lld values", row->name, (long long)row->max);
            return SL_EINVAL;
        }
        const char *s = keep_string(cfg, value);
        if (s == NULL) {
            snprintf(err, errlen, "out of memory");
            return SL_ENOMEM;
        }
        l->v[l->n++] = s;
        return SL_OK;
    }
    }
    return SL_EINVAL;
}

void sl_config_defaults(struct sl_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    char err[256];
    for (size_t i = 0; i < sl_config_nrows; i++) {
        const struct sl_cfg_row *row = &sl_config_rows[i];
        char *field = (char *)cfg + row->offset;
        if (row->type == SL_CFG_STR) {
            memcpy(field, &row->def, sizeof row->def); /* static, not copied */
        } else if (row->type == SL_CFG_LIST) {
            /* empty: memset above */
        } else if (parse_value(cfg, row, row->def, err, sizeof err) != SL_OK) {
            abort(); /* a default outside its own row is a programmer error */
        }
    }
}

static const struct sl_cfg_row *find_row(unsigned scope, const char *name, size_t n)
{
    for (size_t i = 0; i < sl_config_nrows; i++) {
        const struct sl_cfg_row *row = &sl_config_rows[i];
        if (!(row->scope & scope) || strlen(row->name) != n)
            continue;
        size_t j = 0;
        for (; j < n; j++) {
            char c = name[j] == '-' ? '_' : name[j];
            if (c != row->name[j])
                break;
        }
        if (j == n)
            return row;
    }
    return NULL;
}

int sl_config_set(struct sl_config *cfg, unsigned scope, const char *name, const char *value,
                  char *err, size_t errlen)
{
    const struct sl_cfg_row *row = find_row(scope, name, strlen(name));
    if (row == NULL) {
        snprintf(err, errlen, "unknown setting '%s' (see --help)", name);
        return SL_ENOTFOUND;
    }
    return parse_value(cfg, row, value, err, errlen);
}

int sl_config_parse_args(struct sl_config *cfg, unsigned scope, int argc, char **argv, char *err,
                         size_t errlen)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", a);
            return SL_EINVAL;
        }
        a += 2;
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        const struct sl_cfg_row *row = find_row(scope, a, n);
        bool negated = false;
        if (row == NULL && n > 3 && !strncmp(a, "no-", 3)) {
            row = find_row(scope, a + 3, n - 3);
            negated = row != NULL && row->type == SL_CFG_BOOL;
            if (!negated)
                row = NULL;
        }
        if (row == NULL) {
            snprintf(err, errlen, "unknown option '--%.*s' (see --help)", (int)n, a);
            return SL_ENOTFOUND;
        }
        const char *value;
        if (eq)
            value = eq + 1;
        else if (row->type == SL_CFG_BOOL)
            value = negated ? "false" : "true";
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            snprintf(err, errlen, "option '--%s' needs a value", argv[i] + 2);
            return SL_EINVAL;
        }
        int rc = parse_value(cfg, row, value, err, errlen);
        if (rc != SL_OK)
            return rc;
    }
    return SL_OK;
}

void sl_config_print_help(FILE *out, unsigned scope)
{
    static const char *tname[] = {"int", "bool", "string", "list"};
    fprintf(out, "%-28s %-7s %-10s %-24s %-16s %s\n", "flag (yaml key a_b)", "type", "unit",
            "range", "default", "what");
    for (size_t i = 0; i < sl_config_nrows; i++) {
        const struct sl_cfg_row *row = &sl_config_rows[i];
        if (!(row->scope & scope))
            continue;
        char flag[64], range[48];
        snprintf(flag, sizeof flag, "--%s", row->name);
        for (char *p = flag + 2; *p; p++)
            if (*p == '_')
                *p = '-';
        if (row->type == SL_CFG_INT)
            snprintf(range, sizeof range, "%lld..%lld", (long long)row->min, (long long)row->max);
        else
            snprintf(range, sizeof range, "-");
        fprintf(out, "%-28s %-7s %-10s %-24s %-16s %s\n", flag, tname[row->type],
                row->unit[0] ? row->unit : "-", range, row->def[0] ? row->def : "\"\"", row->help);
    }
}
