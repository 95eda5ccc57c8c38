# Builds and installs the C library, libkqueue, as libkqueue 2.x installs itself: the same
# soname, the header at <prefix>/include/kqueue/sys/event.h, a pkg-config file.
# This Makefile only drives cargo and install(1).
#
#   make                      release build (target/release/libkqueue.so and libkqueue.a)
#   make install              build, then install under PREFIX (default /usr/local)
#   make uninstall            remove exactly the files `make install` puts there
#   make bench [KQLIB=path]   run the C benchmark (benches/c/run.sh); with KQLIB, also
#                             against another kqueue library, for a side-by-side
#
# Variables: PREFIX, DESTDIR (staged installs: files go to $(DESTDIR)$(PREFIX), the
# pkg-config file still says PREFIX), LIBDIR, INCLUDEDIR, MANDIR, PKGCONFIGDIR, CARGO,
# CARGO_TARGET_DIR (the environment's is used), INSTALL.
# NOBUILD=1 installs the libraries already in BUILDDIR (default $(CARGO_TARGET_DIR)/release)
# without running cargo.

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR ?=

CARGO ?= cargo
CARGO_TARGET_DIR ?= target
BUILDDIR ?= $(CARGO_TARGET_DIR)/release
INSTALL ?= install
NOBUILD ?=
KQLIB ?=
BENCH_ARGS ?=

# The version is the C library crate's. The soname's major number stays 0, libkqueue's,
# so that programs built against either library load the other; the file name carries the
# crate's minor version.
VERSION := $(shell sed -n 's/^version *= *"\([^"]*\)".*/\1/p' crates/kqueue-capi/Cargo.toml | head -n 1)
MINOR := $(word 2,$(subst ., ,$(VERSION)))
SONAME := libkqueue.so.0
REALNAME := $(SONAME).$(MINOR)

# The pkg-config file names its directories relative to ${prefix} where they are under it
# (so that pkg-config --define-prefix can relocate an unpacked tree).
PC_LIBDIR := $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCLUDEDIR := $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))

# What `make install` puts under $(DESTDIR), and so what `make uninstall` removes.
INSTALLED := \
	$(LIBDIR)/$(REALNAME) \
	$(LIBDIR)/$(SONAME) \
	$(LIBDIR)/libkqueue.so \
	$(LIBDIR)/libkqueue.a \
	$(INCLUDEDIR)/kqueue/sys/event.h \
	$(INCLUDEDIR)/kqueue/netbsd/sys/event.h \
	$(PKGCONFIGDIR)/libkqueue.pc \
	$(PKGCONFIGDIR)/libkqueue-netbsd.pc \
	$(MANDIR)/man3/kqueue.3 \
	$(MANDIR)/man3/kevent.3 \
	$(MANDIR)/man3/kqueue_netbsd.3

.PHONY: all build install uninstall bench installed-files

all: build

build:
ifeq ($(NOBUILD),)
	CARGO_TARGET_DIR='$(CARGO_TARGET_DIR)' $(CARGO) build --release -p kqueue-capi
endif
	@test -f '$(BUILDDIR)/libkqueue.so' && test -f '$(BUILDDIR)/libkqueue.a' || \
		{ echo 'no libkqueue.so and libkqueue.a in $(BUILDDIR)' >&2; exit 1; }

install: build
	@test -n '$(MINOR)' || { echo 'no version in crates/kqueue-capi/Cargo.toml' >&2; exit 1; }
	$(INSTALL) -d '$(DESTDIR)$(LIBDIR)' '$(DESTDIR)$(PKGCONFIGDIR)' \
		'$(DESTDIR)$(INCLUDEDIR)/kqueue/sys' '$(DESTDIR)$(INCLUDEDIR)/kqueue/netbsd/sys' \
		'$(DESTDIR)$(MANDIR)/man3'
	$(INSTALL) -m 755 '$(BUILDDIR)/libkqueue.so' '$(DESTDIR)$(LIBDIR)/$(REALNAME)'
	ln -sf '$(REALNAME)' '$(DESTDIR)$(LIBDIR)/$(SONAME)'
	ln -sf '$(SONAME)' '$(DESTDIR)$(LIBDIR)/libkqueue.so'
	$(INSTALL) -m 644 '$(BUILDDIR)/libkqueue.a' '$(DESTDIR)$(LIBDIR)/libkqueue.a'
	$(INSTALL) -m 644 include/sys/event.h '$(DESTDIR)$(INCLUDEDIR)/kqueue/sys/event.h'
	$(INSTALL) -m 644 include/netbsd/sys/event.h \
		'$(DESTDIR)$(INCLUDEDIR)/kqueue/netbsd/sys/event.h'
	$(INSTALL) -m 644 docs/man/kqueue.3 '$(DESTDIR)$(MANDIR)/man3/kqueue.3'
	$(INSTALL) -m 644 docs/man/kqueue_netbsd.3 '$(DESTDIR)$(MANDIR)/man3/kqueue_netbsd.3'
	printf '.so man3/kqueue.3\n' > '$(DESTDIR)$(MANDIR)/man3/kevent.3'
	chmod 644 '$(DESTDIR)$(MANDIR)/man3/kevent.3'
	printf '%s\n' \
		'prefix=$(PREFIX)' \
		'libdir=$(PC_LIBDIR)' \
		'includedir=$(PC_INCLUDEDIR)' \
		'' \
		'Name: libkqueue' \
		'Description: BSD kqueue(2) and kevent(2) on Linux (kq project)' \
		'Version: $(VERSION)' \
		'Cflags: -I$${includedir}/kqueue' \
		'Libs: -L$${libdir} -lkqueue -lpthread' \
		> '$(DESTDIR)$(PKGCONFIGDIR)/libkqueue.pc'
	chmod 644 '$(DESTDIR)$(PKGCONFIGDIR)/libkqueue.pc'
	printf '%s\n' \
		'prefix=$(PREFIX)' \
		'libdir=$(PC_LIBDIR)' \
		'includedir=$(PC_INCLUDEDIR)' \
		'' \
		'Name: libkqueue-netbsd' \
		'Description: BSD kqueue(2) and kevent(2) on Linux, NetBSD 10 flavour (kq project)' \
		'Version: $(VERSION)' \
		'Cflags: -I$${includedir}/kqueue/netbsd' \
		'Libs: -L$${libdir} -lkqueue -lpthread' \
		> '$(DESTDIR)$(PKGCONFIGDIR)/libkqueue-netbsd.pc'
	chmod 644 '$(DESTDIR)$(PKGCONFIGDIR)/libkqueue-netbsd.pc'

# Only the library's own directories are removed with its files (when empty); lib/,
# include/ and the man directories may hold other packages' files.
uninstall:
	rm -f $(foreach f,$(INSTALLED),'$(DESTDIR)$(f)')
	rmdir '$(DESTDIR)$(INCLUDEDIR)/kqueue/netbsd/sys' '$(DESTDIR)$(INCLUDEDIR)/kqueue/netbsd' \
		'$(DESTDIR)$(INCLUDEDIR)/kqueue/sys' '$(DESTDIR)$(INCLUDEDIR)/kqueue' 2>/dev/null || true

# The list of installed paths, one a line (for tests and packagers).
installed-files:
	@printf '%s\n' $(INSTALLED)

bench:
	CARGO_TARGET_DIR='$(CARGO_TARGET_DIR)' CARGO='$(CARGO)' KQLIB='$(KQLIB)' \
		sh benches/c/run.sh $(BENCH_ARGS)
