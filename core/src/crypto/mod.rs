//! Cryptographic primitives for protocol v1 (being written).
