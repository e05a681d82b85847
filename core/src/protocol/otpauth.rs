//! `otpauth://` key URIs (being written).
