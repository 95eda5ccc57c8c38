/*
 * The cases of closegaps.c through the NetBSD-flavour ABI (include/netbsd/sys/event.h: the
 * library's __kqueue_netbsd_* entry points, whose kqueues have the NetBSD personality).
 * Their kevent() waits inside the library, so a signal handler that closes the kqueue its
 * thread waits in has its work kept for the return of that kevent().
 */
#define CLOSEGAPS_NETBSD_ABI
#include "closegaps.c"
