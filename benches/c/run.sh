#!/bin/sh
# C-ABI benchmark: libkqueue.so (this project) against the raw Linux primitives (eventfd,
# epoll, epoll_ctl), each scenario's variants interleaved in the same run.
#   sh benches/c/run.sh [reps] [pingpong round trips] [trigger ops] [scenario...]
# Scenarios: pingpong trigger idle adddel echo (default: all; see the top of bench.c).
# Builds the library in release mode, compiles benches/c/bench.c with -O2 and runs it.
# Not run by CI: the numbers depend on the machine and its load.
set -eu

cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}/release"

cargo build --release -p kqueue-capi
[ -e "$target/libkqueue.so.0" ] || ln -sf libkqueue.so "$target/libkqueue.so.0"

mkdir -p "$target/benches"
${CC:-cc} -Wall -Werror -O2 -Iinclude benches/c/bench.c -L"$target" -lkqueue -lpthread \
	-o "$target/benches/bench-c"

LD_LIBRARY_PATH="$target" "$target/benches/bench-c" "$@"
