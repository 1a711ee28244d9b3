//! The `dtfacts` fuzz target: see `hypstub_fuzz::dtfacts`.
#![no_main]
hypstub_fuzz::target!(dtfacts);
