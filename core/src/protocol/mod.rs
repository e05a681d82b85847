//! Protocol v1 wire types (being written).

pub mod otpauth;
