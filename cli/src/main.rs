//! The `signet` command-line tool: a thin clap layer over the library crates.

fn main() {}
