#!/bin/sh
# C-ABI benchmark: libkqueue.so (this project) against the raw Linux primitives (eventfd,
# epoll, epoll_ctl), each scenario's variants interleaved in the same run.
#   sh benches/c/run.sh [reps] [pingpong round trips] [trigger ops] [scenario...]
# Scenarios: pingpong trigger idle adddel echo (default: all; see the top of bench.c).
# Builds the library in release mode, compiles benches/c/bench.c with -O2 and runs it,
# after a line saying which machine it runs on.
# With KQLIB=/path/to/another/libkqueue.so in the environment (`make bench KQLIB=...`), the
# same program then runs again with that library as libkqueue.so.0 (any kqueue library
# with libkqueue 2.x's ABI), for a side-by-side.
# Not run by CI: the numbers depend on the machine and its load.
set -eu

cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}/release"

"${CARGO:-cargo}" build --release -p kqueue-capi
[ -e "$target/libkqueue.so.0" ] || ln -sf libkqueue.so "$target/libkqueue.so.0"

mkdir -p "$target/benches"
${CC:-cc} -Wall -Werror -O2 -Iinclude benches/c/bench.c -L"$target" -lkqueue -lpthread \
	-o "$target/benches/bench-c"

cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
[ -n "$cpu" ] || cpu=$(sed -n 's/^\(Model\|Hardware\|cpu model\)[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
echo "machine: Linux $(uname -r), $(nproc) CPUs, ${cpu:-unknown CPU}"

echo "== libkqueue.so.0: this project's ($target/libkqueue.so)"
LD_LIBRARY_PATH="$target" "$target/benches/bench-c" "$@"

if [ -n "${KQLIB:-}" ]; then
	lib=$(readlink -f "$KQLIB")
	[ -f "$lib" ] || { echo "KQLIB: no such file: $KQLIB" >&2; exit 1; }
	# A directory holding only that library, under the name the program needs.
	other="$target/benches/kqlib"
	rm -rf "$other"
	mkdir -p "$other"
	ln -s "$lib" "$other/libkqueue.so.0"
	echo "== libkqueue.so.0: $lib"
	LD_LIBRARY_PATH="$other" "$target/benches/bench-c" "$@"
fi
