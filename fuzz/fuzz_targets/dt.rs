//! The `dt` fuzz target: see `hypstub_fuzz::dt`.
#![no_main]
hypstub_fuzz::target!(dt);
