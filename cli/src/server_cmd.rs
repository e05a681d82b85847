//! `countersign server`: the reference server, optionally with the demo pages.
//! The command line lives in the server crate (`countersign_server::cli`), so
//! that the `countersign-server` alias is the same command.

pub use countersign_server::cli::{ServerArgs, run};
