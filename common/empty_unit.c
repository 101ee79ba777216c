/* Keeps a library target valid while its module has no sources of its own. */
typedef int rsre_empty_unit;
