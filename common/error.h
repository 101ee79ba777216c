#ifndef RSRE_ERROR_H
#define RSRE_ERROR_H

/*
 * Error codes. Every fallible function returns int: 0 on success, a negative errno value
 * (-ENOMEM, -EINVAL, ...) for system-level failures, or one of the RSRE_E* codes below,
 * which live in a reserved negative range that no errno value reaches.
 */

enum {
    RSRE_EBASE = -30600,
    RSRE_EPARSE = RSRE_EBASE,  /* malformed input text (expression, YAML, JSON) */
    RSRE_EINVALID,             /* well-formed but semantically invalid input */
    RSRE_EBOUNDARY,            /* operator input crosses a safety boundary of the spec */
    RSRE_ENOTFOUND,            /* no such record, class, action or key */
    RSRE_ELIMIT,               /* a size/count/depth limit was exceeded */
    RSRE_ESCHEMA,              /* store schema version is not the one this binary knows */
    RSRE_ECORRUPT,             /* a stored record failed to decode or verify */
    RSRE_EMAPFULL,             /* the LMDB map is full */
    RSRE_ECHAIN,               /* the audit hash chain does not verify */
    RSRE_ETRANSITION,          /* illegal incident lifecycle transition */
    RSRE_EEXIST,               /* record already exists (e.g. duplicate id) */
    RSRE_ESTORE,               /* other store failure (the original code is logged) */
    RSRE_ELAST
};

/* Returns a static, human-readable string for any code above or a negative errno value. */
const char *rsre_strerror(int err);

#endif
