//! uniffi bindings of the Countersign core.
#![deny(missing_docs)]
uniffi::setup_scaffolding!("countersign");
