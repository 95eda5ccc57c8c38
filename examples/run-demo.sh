#!/bin/sh
# Builds everything in release mode, then builds and runs the C demo (examples/demo.c)
# against target/release/libkqueue.so: worker threads wake an event loop through
# EVFILT_USER, with an EVFILT_TIMER tick. Run from anywhere: sh examples/run-demo.sh
set -eu

cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}/release"

cargo build --release

# Programs linked with -lkqueue load the soname, libkqueue.so.0: the build script links it
# to libkqueue.so; make sure it is there.
[ -e "$target/libkqueue.so.0" ] || ln -sf libkqueue.so "$target/libkqueue.so.0"

mkdir -p "$target/examples"
${CC:-cc} -Wall -Werror -O2 -Iinclude examples/demo.c -L"$target" -lkqueue -lpthread \
	-o "$target/examples/demo"

echo "+ LD_LIBRARY_PATH=$target $target/examples/demo"
LD_LIBRARY_PATH="$target" "$target/examples/demo"
