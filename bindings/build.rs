//! Link settings of the shared library (`cdylib`) only; the Rust `lib` and the
//! `staticlib` (iOS) are unaffected.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        // Packed relative relocations (DT_RELR): the library's ~15,000 pointers
        // to itself (vtables, the GOT, string tables) take 8 bytes per run of
        // them instead of 24 bytes each in `.rela.dyn`, about 0.35 MB less.
        // Needs lld or binutils >= 2.38 to link (rustc links with its lld on
        // x86_64 Linux) and glibc >= 2.36 to load (Debian 12, Ubuntu 22.10,
        // Fedora 37 and later); an older glibc refuses the library with a
        // missing GLIBC_ABI_DT_RELR version instead of misloading it. Android
        // (bionic has its own packed formats, which recent NDK clang drivers
        // pass by API level) and Apple (chained fixups) are not touched here.
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,pack-relative-relocs");
    }
}
