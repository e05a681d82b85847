//! One-time passwords (being written).
