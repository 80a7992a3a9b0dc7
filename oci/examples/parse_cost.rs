//! A measuring aid, not a tool: parses one of four typical image references `N` times so that
//! `valgrind --tool=callgrind` can count instructions per parse (run once with `N` = 0 and once
//! with a large `N`; the difference divided by `N` is the cost of one parse).
//!
//! `cargo build --release -p signet-oci --example parse_cost`
//! `valgrind --tool=callgrind target/release/examples/parse_cost INPUT N`
//! where INPUT is `attested`, `ghcr`, `busybox`, `hub` or `digest` (a `Digest` alone).
#![allow(clippy::print_stdout)]

use std::hint::black_box;

use signet_oci::{Digest, Reference};

const HEX: &str = "5a14bda5e1efcea97d029d1bb39b0b0c02f7f44ab015a79a393d1e05e6e3d381";

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_default();
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let input = match which.as_str() {
        "attested" => format!("127.0.0.1:38205/bench/attested/app@sha256:{HEX}"),
        "ghcr" => "ghcr.io/org/app:v1.2.3".to_string(),
        "busybox" => "busybox".to_string(),
        "hub" => format!("docker.io/library/nginx:1.27@sha256:{HEX}"),
        "digest" => format!("sha256:{HEX}"),
        other => panic!("unknown input {other:?}"),
    };
    let mut ok = 0usize;
    for _ in 0..count {
        if which == "digest" {
            ok += usize::from(black_box(black_box(input.as_str()).parse::<Digest>()).is_ok());
        } else {
            ok += usize::from(black_box(black_box(input.as_str()).parse::<Reference>()).is_ok());
        }
    }
    println!("{ok} of {count} parsed");
}
