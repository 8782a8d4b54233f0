/* container.h: container_of, which finds the struct that embeds a member: how a libuv or NNG
 * callback gets back from its handle to the object that owns it (docs/style.md, "Event loops
 * and callbacks"). Header only; any thread. */
#ifndef NANO_CONTAINER_H
#define NANO_CONTAINER_H

#include <stddef.h>

/* container_of: the TYPE whose field MEMBER ptr points at. ptr must point into a live TYPE
 * (a handle embedded in its owner); nothing is checked. */
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
