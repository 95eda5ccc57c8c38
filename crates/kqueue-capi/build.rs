use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // libkqueue 2.x ships as libkqueue.so.0: keep the same soname so binaries linked
    // against either library load the other.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libkqueue.so.0");
    // The dynamic symbol table: the public API and the interposed functions, nothing else
    // (libkqueue.map; the test exported_symbols_exact checks the result). rustc passes a
    // version script of its own, listing the crate's exported functions; the linker
    // exports what either script makes global, so this one states the ABI and hides
    // anything else a future dependency might bring.
    let map = Path::new(env!("CARGO_MANIFEST_DIR")).join("libkqueue.map");
    println!("cargo:rerun-if-changed={}", map.display());
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        map.display()
    );

    // A program linked with `-Ltarget/<profile> -lkqueue` records the soname
    // (libkqueue.so.0) as its dependency, so the dynamic loader looks for that name at run
    // time. Cargo only produces libkqueue.so; put the soname link beside it so that
    // `LD_LIBRARY_PATH=target/<profile> ./prog` works right after `cargo build`.
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out. This is best effort: the
    // test harness and the scripts make the same link themselves if it is missing.
    if let Some(out_dir) = std::env::var_os("OUT_DIR") {
        if let Some(profile_dir) = Path::new(&out_dir).ancestors().nth(3) {
            let link = profile_dir.join("libkqueue.so.0");
            if std::fs::symlink_metadata(&link).is_err() {
                if let Err(e) = std::os::unix::fs::symlink("libkqueue.so", &link) {
                    println!("cargo:warning=could not create {}: {e}", link.display());
                }
            }
        }
    }
}
