/* sd.h: telling a supervisor how the process is doing, by systemd's notify protocol
 * (sd_notify(3); units with Type=notify: docs/install.md). nano-dp and nanocp send READY=1
 * once they serve, RELOADING=1 while re-reading their config, STOPPING=1 when a drain starts,
 * STATUS= lines people read in `systemctl status`, and WATCHDOG=1 pings while they are
 * healthy (each binary decides what proves that: nano-dp, that every worker thread's loop
 * still turns).
 *
 * Built with libsystemd (libsystemd-dev, optional at build time: NANO_HAVE_SYSTEMD) these talk
 * to $NOTIFY_SOCKET; without it, or when no supervisor set $NOTIFY_SOCKET, they do nothing,
 * and a build without libsystemd logs once (nano.sd_unavailable) if a supervisor asks for
 * notifications it cannot send. Any thread. */
#ifndef NANO_SD_H
#define NANO_SD_H

#include <stdbool.h>
#include <stdint.h>

/* nano_sd_notify: sends state, one or more "KEY=VALUE" lines ("READY=1\nSTATUS=serving"). */
void nano_sd_notify(const char *state);

/* nano_sd_notifyf: nano_sd_notify of a formatted state. */
void nano_sd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* nano_sd_watchdog_usec: the watchdog interval the supervisor asks pings within ($WATCHDOG_USEC
 * for this process), or 0 when it asks for none (or notifications cannot be sent). Ping at
 * least twice per interval. */
uint64_t nano_sd_watchdog_usec(void);

/* nano_sd_enabled: whether notifications go anywhere (built with libsystemd and
 * $NOTIFY_SOCKET set). */
bool nano_sd_enabled(void);

#endif
