/* err.c - messages and names for the SL_E* codes of err.h. */
#include "core/err.h"

const char *sl_strerror(int err)
{
    switch (err) {
#define SL__ERR_MSG(name, value, msg)                                                              \
    case value:                                                                                    \
        return msg;
        SL_ERRNO_MAP(SL__ERR_MSG)
#undef SL__ERR_MSG
    }
    return "unknown error";
}

const char *sl_errname(int err)
{
    switch (err) {
#define SL__ERR_NAME(name, value, msg)                                                             \
    case value:                                                                                    \
        return #name;
        SL_ERRNO_MAP(SL__ERR_NAME)
#undef SL__ERR_NAME
    }
    return "SL_E?";
}
