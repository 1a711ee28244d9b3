//! The `fit` fuzz target: see `hypstub_fuzz::fit`.
#![no_main]
hypstub_fuzz::target!(fit);
