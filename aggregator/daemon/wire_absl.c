/* abseil deadlock detection off: contract in wire_absl.h. */
#include "daemon/wire_absl.h"

#include <dlfcn.h>
#include <string.h>

#include "common/log.h"

/* absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle): Debian 12's abseil (LTS
 * 20220623, inline namespace "debian3"), then a build without an inline namespace.
 * OnDeadlockCycle::kIgnore is 0. */
static const char *const setters[] = {
    "_ZN4absl7debian329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE",
    "_ZN4absl29SetMutexDeadlockDetectionModeENS_15OnDeadlockCycleE",
};

int rsre_absl_deadlock_detection_off(void) {
    for (size_t i = 0; i < sizeof(setters) / sizeof(setters[0]); i++) {
        void *sym = dlsym(RTLD_DEFAULT, setters[i]);
        if (sym) {
            void (*set_mode)(int);
            memcpy(&set_mode, &sym, sizeof(set_mode)); /* object to function pointer */
            set_mode(0);
            RSRE_LOG(RSRE_LOG_DEBUG, "aggregator", "abseil mutex deadlock detection off");
            return 1;
        }
    }
    RSRE_LOG(RSRE_LOG_DEBUG, "aggregator", "abseil deadlock-detection setter not exported");
    return 0;
}
