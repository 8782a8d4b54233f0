#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *nano_strerror(int rc)
{
    switch (rc) {
    case 0: return "ok";
    case NANO_ENOTFOUND: return "not found";
    case NANO_ESYNTAX: return "syntax error";
    case NANO_ETOOBIG: return "over the limit";
    case NANO_ESTATE: return "invalid in current state";
    case NANO_EJS: return "JavaScript exception";
    case NANO_EUNKNOWN: return "outcome unknown";
    case NANO_ECONFLICT: return "conflicting change";
    default: break;
    }
    if (rc < 0 && rc > -4096)
        return strerror(-rc);
    return "unknown error";
}

int nano_error_set(nano_error *err, int code, const char *id, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    snprintf(err->id, sizeof err->id, "%s", id);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}
