//! The `args` fuzz target: see `hypstub_fuzz::args`.
#![no_main]
hypstub_fuzz::target!(args);
