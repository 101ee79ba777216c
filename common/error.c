#include "common/error.h"

#include <string.h>

static const char *const rsre_messages[] = {
    [RSRE_EPARSE - RSRE_EBASE] = "malformed input",
    [RSRE_EINVALID - RSRE_EBASE] = "invalid value",
    [RSRE_EBOUNDARY - RSRE_EBASE] = "crosses a safety boundary",
    [RSRE_ENOTFOUND - RSRE_EBASE] = "not found",
    [RSRE_ELIMIT - RSRE_EBASE] = "limit exceeded",
    [RSRE_ESCHEMA - RSRE_EBASE] = "store schema version mismatch",
    [RSRE_ECORRUPT - RSRE_EBASE] = "corrupt record",
    [RSRE_EMAPFULL - RSRE_EBASE] = "store map is full",
    [RSRE_ECHAIN - RSRE_EBASE] = "audit hash chain does not verify",
    [RSRE_ETRANSITION - RSRE_EBASE] = "illegal lifecycle transition",
    [RSRE_EEXIST - RSRE_EBASE] = "already exists",
    [RSRE_ESTORE - RSRE_EBASE] = "store failure",
};

const char *rsre_strerror(int err) {
    if (err == 0) {
        return "success";
    }
    if (err >= RSRE_EBASE && err < RSRE_ELAST) {
        return rsre_messages[err - RSRE_EBASE];
    }
    if (err < 0 && err > -4096) {
        return strerror(-err);
    }
    return "unknown error";
}
