/* sd.c: systemd notifications (contract in sd.h). */
#include "sd.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"

#ifdef NANO_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

bool nano_sd_enabled(void)
{
#ifdef NANO_HAVE_SYSTEMD
    return getenv("NOTIFY_SOCKET") != NULL;
#else
    return false;
#endif
}

void nano_sd_notify(const char *state)
{
#ifdef NANO_HAVE_SYSTEMD
    if (getenv("NOTIFY_SOCKET") == NULL)
        return;
    /* unset_environment 0: the load checks nano-dp spawns must not notify as it (sd.c is
     * never called there); a failed send is logged once, the service goes on. */
    int rc = sd_notify(0, state);
    static bool warned;
    if (rc < 0 && !warned) {
        warned = true;
        NANO_WARN("nano.sd_notify_failed",
                  "error=%d (the supervisor does not hear this "
                  "process; see NOTIFY_SOCKET)",
                  rc);
    }
#else
    static bool warned;
    if (getenv("NOTIFY_SOCKET") != NULL && !warned) {
        warned = true;
        NANO_WARN("nano.sd_unavailable",
                  "state=%.40s (NOTIFY_SOCKET is set but this binary was "
                  "built without libsystemd: rebuild with libsystemd-dev, or use Type=simple)",
                  state);
    }
#endif
}

void nano_sd_notifyf(const char *fmt, ...)
{
    char state[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(state, sizeof state, fmt, ap);
    va_end(ap);
    nano_sd_notify(state);
}

uint64_t nano_sd_watchdog_usec(void)
{
#ifdef NANO_HAVE_SYSTEMD
    uint64_t usec = 0;
    return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
#else
    return 0;
#endif
}
