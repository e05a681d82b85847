//! The Rust side of the FFI overhead (`cargo xtask bench-device`): `ping` called
//! directly, and through its C ABI scaffolding (`uniffi_countersign_ffi_fn_func_ping`,
//! what Kotlin's JNA and Swift call), so the Kotlin and Swift figures have their
//! baseline from the same library in the same run.
//!
//! `cargo bench -p countersign-ffi --bench ffi_baseline`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // benchmark code

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

unsafe extern "C" {
    /// The exported scaffolding of `ping` (uniffi's naming).
    fn uniffi_countersign_ffi_fn_func_ping(value: u64, status: &mut uniffi::RustCallStatus) -> u64;
}

fn ffi(c: &mut Criterion) {
    assert_eq!(countersign_ffi::ping(7), 7);
    let mut status = uniffi::RustCallStatus::default();
    // SAFETY: the scaffolding takes a u64 and a call status to fill, nothing else.
    let echoed = unsafe { uniffi_countersign_ffi_fn_func_ping(7, &mut status) };
    assert_eq!(echoed, 7);
    assert!(!countersign_ffi::core_version().is_empty());

    let mut group = c.benchmark_group("ffi");
    group.bench_function("ping_rust", |b| {
        b.iter(|| countersign_ffi::ping(black_box(42)))
    });
    group.bench_function("ping_c_abi", |b| {
        b.iter(|| {
            let mut status = uniffi::RustCallStatus::default();
            // SAFETY: as above.
            unsafe { uniffi_countersign_ffi_fn_func_ping(black_box(42), &mut status) }
        })
    });
    group.bench_function("core_version_rust", |b| {
        b.iter(countersign_ffi::core_version)
    });
    group.finish();
}

criterion_group!(benches, ffi);
criterion_main!(benches);
