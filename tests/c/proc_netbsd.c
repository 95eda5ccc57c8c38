/*
 * EVFILT_PROC through the NetBSD-flavour header (built with -Iinclude/netbsd first): the
 * cases of proc.c, where kqueue() is the NetBSD entry point and every case expects
 * NetBSD's rules.
 */
#define KQT_NETBSD_ABI 1
#include "proc.c"
