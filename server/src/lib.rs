//! Countersign reference server (see issue 4).
