//! The `plan` fuzz target: see `hypstub_fuzz::plan`.
#![no_main]
hypstub_fuzz::target!(plan);
