//! The `options` fuzz target: see `hypstub_fuzz::options`.
#![no_main]
hypstub_fuzz::target!(options);
